"""Pixels -> response bytes: mirroring, rotation and quality (IIIF), then the image format.

Blocking (Pillow); callers run it in the engine's thread pool.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# extension -> (Pillow format, media type, keeps transparency)
FORMATS = {
    "jpg": ("JPEG", "image/jpeg", False),
    "jpeg": ("JPEG", "image/jpeg", False),
    "png": ("PNG", "image/png", True),
    "webp": ("WEBP", "image/webp", True),
    "tif": ("TIFF", "image/tiff", False),
}
QUALITIES = ("default", "color", "gray", "bitonal")
JPEG_QUALITY = 90
_QUARTER_TURNS = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


def media_type(extension: str) -> str:
    return FORMATS[extension][1]


def render(pixels: np.ndarray, extension: str, rotation: float = 0.0, mirror: bool = False,
           quality: str = "default", background: tuple[int, int, int] = (255, 255, 255),
           jpeg_quality: int = JPEG_QUALITY) -> bytes:
    pil_format, _, alpha = FORMATS[extension]
    image = Image.fromarray(pixels)
    if mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = _rotate(image, rotation % 360, alpha, background)
    if quality == "gray":
        image = image.convert("LA" if image.mode == "RGBA" else "L")
    elif quality == "bitonal":
        image = image.convert("L").point(lambda v: 255 if v >= 128 else 0)
        image = image.convert("1") if pil_format in ("PNG", "TIFF") else image
    buffer = io.BytesIO()
    if pil_format == "JPEG":
        image.save(buffer, pil_format, quality=jpeg_quality)
    elif pil_format == "PNG":
        image.save(buffer, pil_format, compress_level=1)
    else:
        image.save(buffer, pil_format)
    return buffer.getvalue()


def _rotate(image: Image.Image, degrees: float, alpha: bool, background: tuple[int, int, int]) -> Image.Image:
    if degrees == 0:
        return image
    if degrees in _QUARTER_TURNS:
        return image.transpose(_QUARTER_TURNS[degrees])
    if alpha:  # formats with transparency get transparent corners, as IIIF asks
        return image.convert("RGBA").rotate(-degrees, Image.Resampling.BICUBIC, expand=True)
    return image.rotate(-degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=background)
