"""The decision heatmap, as in the AdaSlide figure: red where a tile is kept, blue where it is
compressed, transparent over glass. Input is a ``decisions`` page (P(compress) per tile, NaN
for glass); output is an RGBA image with one pixel per tile, to be scaled over a thumbnail."""
from __future__ import annotations

import numpy as np
from PIL import Image

KEEP_RGB = np.array([215, 25, 28], np.float32)
COMPRESS_RGB = np.array([43, 131, 186], np.float32)
ALPHA = 110


def heatmap_rgba(decisions: np.ndarray) -> np.ndarray:
    """down x across float P(compress) -> down x across x 4 uint8 (red keep ... blue compress)."""
    p = np.nan_to_num(decisions, nan=0.0)[..., None]
    rgba = np.zeros(decisions.shape + (4,), np.uint8)
    rgba[..., :3] = np.rint((1 - p) * KEEP_RGB + p * COMPRESS_RGB)
    rgba[..., 3] = np.where(np.isnan(decisions), 0, ALPHA)
    return rgba


def overlay(thumbnail: np.ndarray, decisions: np.ndarray, tile_px: float) -> np.ndarray:
    """The heatmap over an RGB thumbnail whose tiles are ``tile_px`` thumbnail pixels wide."""
    base = Image.fromarray(thumbnail).convert("RGBA")
    down, across = decisions.shape
    size = (round(across * tile_px), round(down * tile_px))
    layer = Image.fromarray(heatmap_rgba(decisions)).resize(size, Image.Resampling.NEAREST)
    canvas = Image.new("RGBA", base.size)
    canvas.paste(layer.crop((0, 0, *base.size)), (0, 0))
    return np.asarray(Image.alpha_composite(base, canvas).convert("RGB"))
