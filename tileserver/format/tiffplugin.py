"""Let tifffile (and so tiffslide) decode tileserver-ntiff tiles: ``TiffPage.asarray()`` works.

tifffile's codec table is private API; tifffile is pinned in pyproject.toml and
tests/test_format.py checks that this registration still works.
"""
from __future__ import annotations

import numpy as np
from tifffile import TIFF

from tileserver import codecs
from tileserver.format import payload
from tileserver.format.metadata import COMPRESSION_TAG


def decode_tile(data: bytes, out=None) -> np.ndarray:
    codec_id, body = payload.unpack(data)
    return codecs.decoder(codec_id).decode(body)


def register() -> None:
    TIFF.DECOMPRESSORS._codecs[COMPRESSION_TAG] = decode_tile
