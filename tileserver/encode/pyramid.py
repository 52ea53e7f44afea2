"""Pyramid arithmetic for the encoder: the levels to build, and tile pixels read from the source.

Level k has downsample 2**k, down to the first level that fits in one tile. Each level is read
from the source level nearest at or above its resolution (never upsampled), in blocks small
enough that a tile of a very reduced level never needs a huge read.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

from tileserver.format.metadata import Level
from tileserver.slides.source import SourceSlide

MAX_READ_PX = 4096  # the largest side of one source read


def plan_levels(width: int, height: int, tile_size: int) -> list[Level]:
    levels, k = [], 0
    while True:
        scale = 2**k
        level = Level(math.ceil(width / scale), math.ceil(height / scale), float(scale))
        levels.append(level)
        if level.width <= tile_size and level.height <= tile_size:
            return levels
        k += 1


def read_scaled(
    source: SourceSlide, x0: int, y0: int, downsample: float, width: int, height: int
) -> np.ndarray:
    """``width`` x ``height`` pixels at ``downsample``, top-left at level-0 (x0, y0)."""
    level = source.best_level_for(downsample)
    factor = downsample / source.level_downsamples[level]
    block = max(1, int(MAX_READ_PX // factor))
    out = np.empty((height, width, 3), np.uint8)
    for by in range(0, height, block):
        for bx in range(0, width, block):
            bw, bh = min(block, width - bx), min(block, height - by)
            src_w = max(1, round(bw * factor))
            src_h = max(1, round(bh * factor))
            pixels = source.read_region(
                level, round(x0 + bx * downsample), round(y0 + by * downsample), src_w, src_h
            )
            if (src_w, src_h) != (bw, bh):
                pixels = np.asarray(
                    Image.fromarray(pixels).resize((bw, bh), Image.Resampling.LANCZOS, reducing_gap=3.0)
                )
            out[by : by + bh, bx : bx + bw] = pixels
    return out


def tile_pixels(
    source: SourceSlide, level: Level, tile_size: int, col: int, row: int
) -> tuple[np.ndarray, int, int]:
    """A full tile_size square (background beyond the level's edge) and its valid width, height."""
    width = min(tile_size, level.width - col * tile_size)
    height = min(tile_size, level.height - row * tile_size)
    scale = level.downsample
    pixels = read_scaled(source, round(col * tile_size * scale), round(row * tile_size * scale), scale, width, height)
    if (width, height) == (tile_size, tile_size):
        return pixels, width, height
    tile = np.empty((tile_size, tile_size, 3), np.uint8)
    tile[:] = source.background
    tile[:height, :width] = pixels
    return tile, width, height
