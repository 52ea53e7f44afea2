"""Tissue detection, after the source study: a pixel is tissue when its Euclidean RGB distance
from white is above 85, on a low-resolution image, then a morphological closing of radius 9.

Before the closing, simple colour rules drop what is dark or bright enough but is not tissue:
red, green and blue pen marks (H&E is pink to purple: green never dominates red, and blue
hematoxylin keeps green below red) and grey specks and lines (slide edges, dust), which have
almost no saturation. Specks smaller than ``min_object_px`` are removed.
"""
from __future__ import annotations

import numpy as np
from skimage.morphology import closing, disk, remove_small_objects

WHITE_DISTANCE = 85
CLOSING_RADIUS = 9


def colour_tissue(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel tissue rule, before morphology: far from white and not pen, dust or lines."""
    pixels = rgb.astype(np.int16)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    far_from_white = ((255 - pixels).astype(np.int32) ** 2).sum(axis=-1) > WHITE_DISTANCE**2
    green_pen = (g > r + 30) & (g > b - 30)
    blue_pen = (b > r + 40) & (g > r + 5)
    red_pen = (r > g + 40) & (b < g + 22)
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    grey = saturation < 15
    return far_from_white & ~(green_pen | blue_pen | red_pen | grey)


def tissue_mask(rgb: np.ndarray, min_object_px: int = 16) -> np.ndarray:
    """Boolean tissue mask of a low-resolution RGB image of the whole slide."""
    mask = colour_tissue(rgb)
    mask = remove_small_objects(mask, max_size=min_object_px) if min_object_px else mask
    return closing(mask, disk(CLOSING_RADIUS)).astype(bool)
