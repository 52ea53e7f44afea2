"""Nuclei masks and their Dice: a cheap stand-in for HoverNet, used by the decision agent.

A pixel is nucleus when its hematoxylin density (colour deconvolution, skimage's rgb2hed),
smoothed with a Gaussian of sigma 1 px, is above a threshold; connected specks smaller than
a nucleus are dropped. Thresholds are for H&E at 20x-40x.

The Dice of two tiles' masks is smoothed by ``SMOOTH_PX`` (Laplace smoothing, as in soft-Dice
losses): without it, a tile with one small nucleus scores 0 when compression nudges that
nucleus below the size cut, though nothing was lost that a reader would miss.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2hed
from skimage.morphology import remove_small_objects

H_THRESHOLD = 0.05
SMOOTHING_SIGMA = 1.0
MIN_NUCLEUS_PX = 30
SMOOTH_PX = 100


def hematoxylin(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> H x W hematoxylin optical density, smoothed."""
    return gaussian_filter(rgb2hed(rgb)[..., 0], SMOOTHING_SIGMA)


def nuclei_mask(rgb: np.ndarray, threshold: float = H_THRESHOLD, min_px: int = MIN_NUCLEUS_PX) -> np.ndarray:
    """Boolean H x W mask of nuclei."""
    return remove_small_objects(hematoxylin(rgb) > threshold, max_size=min_px - 1)


def dice(a: np.ndarray, b: np.ndarray, smooth: float = 0.0) -> float:
    """(2|A∩B| + smooth) / (|A| + |B| + smooth); 1.0 when both masks are empty."""
    total = int(a.sum()) + int(b.sum()) + smooth
    return 1.0 if total == 0 else (2.0 * int(np.logical_and(a, b).sum()) + smooth) / total


def nuclei_dice(original: np.ndarray, restored: np.ndarray) -> float:
    """Smoothed Dice of the nuclei masks of a tile and of its restoration."""
    return dice(nuclei_mask(original), nuclei_mask(restored), SMOOTH_PX)
