"""The 4x reduction an SR4 payload stores, and the bicubic upscale it is measured against."""
from __future__ import annotations

import numpy as np
from PIL import Image

SCALE = 4


def downscale(tile: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """H x W x 3 uint8 -> (H/scale) x (W/scale) x 3 by Pillow's antialiased bicubic."""
    height, width = tile.shape[:2]
    if height % scale or width % scale:
        raise ValueError(f"a {width}x{height} tile does not divide by {scale}")
    image = Image.fromarray(tile).resize((width // scale, height // scale), Image.Resampling.BICUBIC)
    return np.asarray(image)


def bicubic_upscale(small: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """The baseline restoration: Pillow's bicubic upscale."""
    height, width = small.shape[:2]
    image = Image.fromarray(small).resize((width * scale, height * scale), Image.Resampling.BICUBIC)
    return np.asarray(image)
