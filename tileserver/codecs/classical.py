"""Classical codecs: JPEG (the fallback and "keep" codec) and JPEG-XL (the best classical baseline)."""
from __future__ import annotations

import io

import imagecodecs
import numpy as np
from PIL import Image

from tileserver.codecs import ids
from tileserver.codecs.base import Codec
from tileserver.errors import CodecError


def _decoded(fn, body: bytes, what: str) -> np.ndarray:
    try:
        pixels = fn(body)
    except Exception as exc:  # imagecodecs raises its own error classes per codec
        raise CodecError(f"{what} body cannot be decoded: {exc}") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


class JpegCodec(Codec):
    """Baseline JPEG, 4:2:0, as Pillow writes it (the quality the study's reference used)."""

    codec_id = ids.JPEG
    name = "jpeg"

    def __init__(self, setting: str | None = "90", device: str = "cpu"):
        super().__init__(setting or "90", device)
        self.quality = int(self.setting)
        if not 1 <= self.quality <= 100:
            raise CodecError(f"JPEG quality must be 1-100, not {self.quality}")

    def encode(self, tile: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(tile).save(buffer, "JPEG", quality=self.quality)
        return buffer.getvalue()

    def prepare(self, body: bytes) -> np.ndarray:
        return _decoded(imagecodecs.jpeg8_decode, body, "JPEG")


class JpegXlCodec(Codec):
    """JPEG-XL by butteraugli distance (1.0 is visually lossless), effort 7."""

    codec_id = ids.JPEGXL
    name = "jxl"

    def __init__(self, setting: str | None = "1.0", device: str = "cpu"):
        super().__init__(setting or "1.0", device)
        self.distance = float(self.setting)
        if not 0.0 <= self.distance <= 25.0:
            raise CodecError(f"JPEG-XL distance must be 0-25, not {self.distance}")

    def encode(self, tile: np.ndarray) -> bytes:
        return imagecodecs.jpegxl_encode(tile, distance=self.distance, effort=7)

    def prepare(self, body: bytes) -> np.ndarray:
        return _decoded(imagecodecs.jpegxl_decode, body, "JPEG-XL")
