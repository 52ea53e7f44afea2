"""Image codecs for the 4x-reduced tile an SR4 payload stores, each with a one-byte kind.

The kind is written in the SR4 body, so any of them decodes; which one the encoder writes is
chosen by measurement (bench/bench_sr_storage.py, docs/README-sr.md).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numpy as np

from tileserver.errors import CodecError


@dataclass(frozen=True)
class Storage:
    kind: int  # written in the body: never renumber
    name: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes], np.ndarray]
    lossless: bool


STORAGES = {
    s.name: s
    for s in (
        Storage(1, "webp", lambda a: imagecodecs.webp_encode(a, lossless=True, method=6),
                imagecodecs.webp_decode, True),
        Storage(2, "png", lambda a: imagecodecs.png_encode(a, level=9), imagecodecs.png_decode, True),
        Storage(3, "jpeg95", lambda a: imagecodecs.jpeg8_encode(a, level=95, subsampling="420"),
                imagecodecs.jpeg8_decode, False),
        Storage(4, "jpeg95-444", lambda a: imagecodecs.jpeg8_encode(a, level=95, subsampling="444"),
                imagecodecs.jpeg8_decode, False),
        Storage(5, "jxl", lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=7),
                imagecodecs.jpegxl_decode, True),
        Storage(6, "jxl0.5", lambda a: imagecodecs.jpegxl_encode(a, distance=0.5, effort=7),
                imagecodecs.jpegxl_decode, False),
        Storage(7, "jxl1.0", lambda a: imagecodecs.jpegxl_encode(a, distance=1.0, effort=7),
                imagecodecs.jpegxl_decode, False),
    )
}
_BY_KIND = {s.kind: s for s in STORAGES.values()}


def storage(name: str) -> Storage:
    if name not in STORAGES:
        raise CodecError(f"unknown SR4 low-res storage {name!r}; known: {', '.join(STORAGES)}")
    return STORAGES[name]


def by_kind(kind: int) -> Storage:
    if kind not in _BY_KIND:
        raise CodecError(f"SR4 body has an unknown low-res storage kind {kind}")
    return _BY_KIND[kind]


def decode_small(kind: int, data: bytes) -> np.ndarray:
    """The stored low-res image as H x W x 3 uint8; CodecError if it cannot be decoded."""
    try:
        pixels = by_kind(kind).decode(data)
    except CodecError:
        raise
    except Exception as exc:  # imagecodecs raises its own error class per codec
        raise CodecError(f"SR4 low-res image cannot be decoded: {exc}") from None
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, :3])


def round_trip(name: str, small: np.ndarray) -> np.ndarray:
    """What a decoder sees after ``name`` stored ``small`` (training degrades inputs so)."""
    s = storage(name)
    return small if s.lossless else decode_small(s.kind, s.encode(small))
