"""Pyramid arithmetic against the usual reference, openslide-python's DeepZoomGenerator."""
from __future__ import annotations

import pytest
from openslide import ImageSlide
from openslide.deepzoom import DeepZoomGenerator
from PIL import Image

from tileserver.slides.tiles import Pyramid, plan_region


@pytest.mark.parametrize("size", [(1, 1), (256, 256), (257, 100), (1000, 1000), (2220, 2967), (4443, 3567)])
def test_deepzoom_levels_match_openslide(size):
    reference = DeepZoomGenerator(ImageSlide(Image.new("RGB", size)), tile_size=256, overlap=0)
    pyramid = Pyramid.for_size(*size, 256)
    assert pyramid.deepzoom_levels == reference.level_count
    for dz in range(reference.level_count):
        assert pyramid.deepzoom_size(dz) == reference.level_dimensions[dz]
        across, down = reference.level_tiles[dz]
        stored = pyramid.deepzoom_stored_level(dz)
        if stored is not None:  # a stored level: the same grid, tile for tile
            assert pyramid.level_size(stored) == reference.level_dimensions[dz]
            assert pyramid.grid(stored) == (across, down)
        for col, row in {(0, 0), (across - 1, down - 1)}:
            x, y, w, h, out_w, out_h = pyramid.deepzoom_tile_region(dz, col, row)
            (rx, ry), _, (rw, rh) = reference.get_tile_coordinates(dz, (col, row))
            assert (out_w, out_h) == reference.get_tile_dimensions(dz, (col, row))
            assert (x, y) == (rx, ry)
        assert pyramid.deepzoom_tile_region(dz, across, 0) is None


def test_the_last_stored_level_fits_one_tile():
    pyramid = Pyramid.for_size(2220, 2967, 256)
    assert pyramid.level_count == 5 and pyramid.level_size(4) == (139, 186)


@pytest.mark.parametrize("scale", [1, 2, 4, 8, 16])
def test_tile_aligned_regions_are_one_stored_tile(scale):
    pyramid = Pyramid.for_size(2220, 2967, 256)
    level = scale.bit_length() - 1
    across, down = pyramid.grid(level)
    col, row = across - 1, down - 1  # the edge tile: partial in both directions
    x, y = col * 256 * scale, row * 256 * scale
    w, h = min(256 * scale, 2220 - x), min(256 * scale, 2967 - y)
    plan = plan_region(pyramid, x, y, w, h, -(-w // scale), -(-h // scale))
    assert plan.level == level and plan.single_tile
    assert plan.box == (0, 0, *pyramid.tile_size_at(plan.level, col, row))


def test_regions_never_upsample_a_coarser_level():
    pyramid = Pyramid.for_size(2220, 2967, 256)
    assert plan_region(pyramid, 0, 0, 1000, 1000, 500, 500).level == 1
    assert plan_region(pyramid, 0, 0, 1000, 1000, 501, 501).level == 0
    assert plan_region(pyramid, 0, 0, 2220, 2967, 10, 10).level == 4
    with pytest.raises(ValueError):
        plan_region(pyramid, 2220, 0, 10, 10, 10, 10)
