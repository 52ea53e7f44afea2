"""OMERO-web request parameters: ``tile=L,col,row,w,h`` and ``q=`` (JPEG quality, 0 to 1).

Anything malformed raises ValueError with the reason (a 400).
"""
from __future__ import annotations

import re

MAX_TILE_SIDE = 1024  # what OMERO.web and QuPath's reader cap a tile at
DEFAULT_QUALITY = 0.9  # OMERO.web's default q
_TILE = re.compile(r"(\d+),(\d+),(\d+),(\d+),(\d+)")
_QUALITY = re.compile(r"\d*(?:[.,]\d*)?")


def parse_tile(text: str | None) -> tuple[int, int, int, int, int]:
    """Level, column, row, tile width and height."""
    if text is None:
        raise ValueError("tile=level,col,row,width,height is required")
    match = _TILE.fullmatch(text)
    if match is None:
        raise ValueError(f"tile={text!r} is not level,col,row,width,height in whole numbers")
    level, col, row, width, height = map(int, match.groups())
    if not (1 <= width <= MAX_TILE_SIDE and 1 <= height <= MAX_TILE_SIDE):
        raise ValueError(f"tile width and height must be 1 to {MAX_TILE_SIDE}")
    return level, col, row, width, height


def parse_quality(text: str | None) -> int:
    """q (0 < q <= 1, with a decimal point or the comma of some locales) as a JPEG quality 1-100."""
    if text is None:
        return round(DEFAULT_QUALITY * 100)
    if not _QUALITY.fullmatch(text) or not any(c.isdigit() for c in text):
        raise ValueError(f"q={text!r} is not a number")
    value = float(text.replace(",", "."))
    if not 0 < value <= 1:
        raise ValueError(f"q={text!r} must be above 0 and at most 1")
    return max(1, round(value * 100))
