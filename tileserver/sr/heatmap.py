"""The decision heatmap, as in the AdaSlide figure: red where a tile is kept, blue where it is
compressed, transparent over glass. Input is a ``decisions`` page (P(compress) per tile, NaN
for glass); output is an RGBA image with one pixel per tile, to be scaled over a thumbnail."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

KEEP_RGB = np.array([215, 25, 28], np.float32)
COMPRESS_RGB = np.array([43, 131, 186], np.float32)
ALPHA = 110
PNG_MAX_SIDE = 2048  # the served heatmap: tiles drawn as blocks of pixels, up to this size
PNG_MAX_BLOCK = 16


def heatmap_rgba(decisions: np.ndarray) -> np.ndarray:
    """down x across float P(compress) -> down x across x 4 uint8 (red keep ... blue compress)."""
    p = np.nan_to_num(decisions, nan=0.0)[..., None]
    rgba = np.zeros(decisions.shape + (4,), np.uint8)
    rgba[..., :3] = np.rint((1 - p) * KEEP_RGB + p * COMPRESS_RGB)
    rgba[..., 3] = np.where(np.isnan(decisions), 0, ALPHA)
    return rgba


def heatmap_png(decisions: np.ndarray) -> bytes:
    """The heatmap as a PNG, each tile a square block of pixels (so a viewer's smoothing only
    blurs tile edges), at most PNG_MAX_SIDE pixels a side."""
    down, across = decisions.shape
    block = max(1, min(PNG_MAX_BLOCK, PNG_MAX_SIDE // max(down, across)))
    image = Image.fromarray(heatmap_rgba(decisions)).resize((across * block, down * block), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def overlay(thumbnail: np.ndarray, decisions: np.ndarray, tile_px: float) -> np.ndarray:
    """The heatmap over an RGB thumbnail whose tiles are ``tile_px`` thumbnail pixels wide."""
    base = Image.fromarray(thumbnail).convert("RGBA")
    down, across = decisions.shape
    size = (round(across * tile_px), round(down * tile_px))
    layer = Image.fromarray(heatmap_rgba(decisions)).resize(size, Image.Resampling.NEAREST)
    canvas = Image.new("RGBA", base.size)
    canvas.paste(layer.crop((0, 0, *base.size)), (0, 0))
    return np.asarray(Image.alpha_composite(base, canvas).convert("RGB"))
