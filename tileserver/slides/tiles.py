"""Pyramid and region arithmetic, in one place for every protocol (DeepZoom, IIIF, OMERO-web).

A served slide is a power-of-two pyramid: level k has downsample 2**k and size
ceil(width / 2**k) x ceil(height / 2**k), cut into square tiles; the last level fits in one
tile. That is how our format stores slides, and how standard WSIs are presented (see
tileserver.slides.tiled). Protocol adapters translate their URLs into a region in level-0
pixels plus an output size; ``plan_region`` chooses the level and the stored tiles to read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Pyramid:
    width: int
    height: int
    tile_size: int
    level_count: int

    @classmethod
    def for_size(cls, width: int, height: int, tile_size: int) -> "Pyramid":
        """Levels down to the first that fits in one tile (as the encoder plans them)."""
        levels = 1
        while max(math.ceil(width / 2 ** (levels - 1)), math.ceil(height / 2 ** (levels - 1))) > tile_size:
            levels += 1
        return cls(width, height, tile_size, levels)

    def level_size(self, level: int) -> tuple[int, int]:
        scale = 2**level
        return math.ceil(self.width / scale), math.ceil(self.height / scale)

    def grid(self, level: int) -> tuple[int, int]:
        width, height = self.level_size(level)
        return math.ceil(width / self.tile_size), math.ceil(height / self.tile_size)

    def tile_size_at(self, level: int, col: int, row: int) -> tuple[int, int]:
        """The valid width and height of a tile (edge tiles are cut at the level's edge)."""
        width, height = self.level_size(level)
        t = self.tile_size
        return min(t, width - col * t), min(t, height - row * t)

    def level_for(self, w: float, h: float, out_w: int, out_h: int) -> int:
        """The coarsest level that still has the output's pixels for a w x h level-0 region:
        no upsampling beyond the one pixel that rounding an output size can cost."""
        for level in reversed(range(self.level_count)):
            if w / 2**level > out_w - 1 and h / 2**level > out_h - 1:
                return level
        return 0

    # ---- DeepZoom: levels from 1x1 px (0) up to full size, each twice the one before ----
    @property
    def deepzoom_levels(self) -> int:
        return (max(self.width, self.height) - 1).bit_length() + 1

    def deepzoom_downsample(self, dz_level: int) -> int:
        return 2 ** (self.deepzoom_levels - 1 - dz_level)

    def deepzoom_size(self, dz_level: int) -> tuple[int, int]:
        scale = self.deepzoom_downsample(dz_level)
        return math.ceil(self.width / scale), math.ceil(self.height / scale)

    def deepzoom_stored_level(self, dz_level: int) -> int | None:
        """The stored level a DeepZoom level maps onto tile for tile, or None (smaller ones)."""
        level = self.deepzoom_levels - 1 - dz_level
        return level if 0 <= level < self.level_count else None

    def deepzoom_tile_region(self, dz_level: int, col: int, row: int) -> tuple[int, int, int, int, int, int] | None:
        """(x, y, w, h) in level-0 pixels and the output size of a DeepZoom tile, or None."""
        if not 0 <= dz_level < self.deepzoom_levels:
            return None
        width, height = self.deepzoom_size(dz_level)
        t, scale = self.tile_size, self.deepzoom_downsample(dz_level)
        if not (0 <= col * t < width and 0 <= row * t < height):
            return None
        out_w, out_h = min(t, width - col * t), min(t, height - row * t)
        x, y = col * t * scale, row * t * scale
        return x, y, min(out_w * scale, self.width - x), min(out_h * scale, self.height - y), out_w, out_h


    # ---- OMERO-web: tile (level, col, row) of a client-chosen size, in that level's pixels ----
    def level_tile_region(self, level: int, col: int, row: int, tile_w: int, tile_h: int
                          ) -> tuple[int, int, int, int, int, int] | None:
        """(x, y, w, h) in level-0 pixels and the output size of a tile of ``level``, clipped at
        the level's edge, or None. w, h are the tile's footprint: at the right and bottom edges
        it runs past the slide by less than 2**level pixels, as the level's last pixel does, so
        ``plan_region`` reads exactly this level."""
        if not 0 <= level < self.level_count or tile_w <= 0 or tile_h <= 0:
            return None
        width, height = self.level_size(level)
        if not (0 <= col * tile_w < width and 0 <= row * tile_h < height):
            return None
        out_w, out_h = min(tile_w, width - col * tile_w), min(tile_h, height - row * tile_h)
        scale = 2**level
        return col * tile_w * scale, row * tile_h * scale, out_w * scale, out_h * scale, out_w, out_h


@dataclass(frozen=True)
class RegionPlan:
    """Which tiles of which level to read, and the box to cut from them (level pixels)."""

    level: int
    cols: range
    rows: range
    box: tuple[float, float, float, float]  # left, top, right, bottom, from the first tile's corner
    out_size: tuple[int, int]

    @property
    def single_tile(self) -> bool:
        return len(self.cols) == 1 and len(self.rows) == 1


def plan_region(pyramid: Pyramid, x: int, y: int, w: int, h: int, out_w: int, out_h: int) -> RegionPlan:
    """Plan a region given in level-0 pixels (inside the slide), scaled to out_w x out_h."""
    if not (0 <= x < pyramid.width and 0 <= y < pyramid.height and w > 0 and h > 0):
        raise ValueError(f"region {x},{y},{w},{h} is not inside the slide")
    if out_w <= 0 or out_h <= 0:
        raise ValueError(f"output size {out_w}x{out_h} is empty")
    level = pyramid.level_for(w, h, out_w, out_h)
    scale = 2**level
    level_w, level_h = pyramid.level_size(level)
    left, top = x / scale, y / scale
    # a region that reaches the slide's edge reaches the level's edge (its last pixel is partial)
    right = level_w if x + w >= pyramid.width else (x + w) / scale
    bottom = level_h if y + h >= pyramid.height else (y + h) / scale
    t = pyramid.tile_size
    col0, row0 = int(left // t), int(top // t)
    col1, row1 = (math.ceil(right) - 1) // t, (math.ceil(bottom) - 1) // t
    box = (left - col0 * t, top - row0 * t, right - col0 * t, bottom - row0 * t)
    return RegionPlan(level, range(col0, col1 + 1), range(row0, row1 + 1), box, (out_w, out_h))
