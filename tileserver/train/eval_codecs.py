"""Classical codecs used only as baselines by `tileserver evaluate` (never stored in slides):
WebP by quality and JPEG 2000 by target PSNR. Same encode/decode_batch surface as Codec."""
from __future__ import annotations

import imagecodecs
import numpy as np

from tileserver.errors import CodecError


class _Baseline:
    def __init__(self, setting: str):
        self.setting = setting

    def decode_batch(self, bodies: list[bytes]) -> list[np.ndarray]:
        return [np.ascontiguousarray(self._decode(b)[:, :, :3]) for b in bodies]


class WebpBaseline(_Baseline):
    """webp:Q, Q = 1-100 (libwebp lossy)."""

    def encode(self, tile: np.ndarray) -> bytes:
        return imagecodecs.webp_encode(tile, level=int(self.setting), lossless=False)

    _decode = staticmethod(imagecodecs.webp_decode)


class J2kBaseline(_Baseline):
    """j2k:psnrP, OpenJPEG fixed-quality mode aiming at P dB PSNR."""

    def encode(self, tile: np.ndarray) -> bytes:
        return imagecodecs.jpeg2k_encode(tile, level=float(self.setting.removeprefix("psnr")),
                                         codecformat="j2k")

    _decode = staticmethod(imagecodecs.jpeg2k_decode)


BASELINES = {"webp": WebpBaseline, "j2k": J2kBaseline}


def baseline(spec: str):
    """A baseline codec for ``webp:Q`` or ``j2k:psnrP``, else None."""
    name, _, setting = spec.partition(":")
    if name not in BASELINES:
        return None
    if not setting:
        raise CodecError(f"codec spec {spec!r} needs a setting")
    return BASELINES[name](setting)
