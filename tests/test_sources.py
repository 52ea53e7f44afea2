"""Every kind of source the encoder reads: SVS (JPEG and JPEG 2000), DICOM WSI, plain TIFF, PNG."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import data_file
from tileserver.encode.encoder import EncodeSettings, encode_slide
from tileserver.encode.pyramid import read_scaled
from tileserver.format.reader import NeuralTiff
from tileserver.slides.source import OpenSlideSource, PillowSource, TiffSlideSource, open_source


@pytest.mark.parametrize(
    "relative, reader, vendor",
    [
        ("slides/cmu-1-small-region.svs", OpenSlideSource, "aperio"),
        ("slides/tcga-cr-7395-01a-01-ts1.svs", OpenSlideSource, "aperio"),
        ("slides/camelyon-lymph-node-multiframe.dcm", OpenSlideSource, "dicom"),
        ("slides/kidney-ihc-48-5.tif", TiffSlideSource, "tiff"),
        ("patches/val/histolab-fixtures/tcga-lung.png", PillowSource, "image"),
    ],
)
def test_open_source(relative, reader, vendor):
    with open_source(data_file(relative)) as source:
        assert isinstance(source, reader) and source.vendor == vendor
        width, height = source.dimensions
        region = source.read_region(0, width // 2, height // 2, 64, 48)
        assert region.shape == (48, 64, 3) and region.dtype == np.uint8
        assert region.std() > 0  # real pixels, not a blank fill


def test_reduced_read_matches_level_one(tcga_svs):
    """A 2x-reduced read uses the source's own level 1 (no resampling of level 0 needed)."""
    with open_source(tcga_svs) as source:
        assert source.best_level_for(2.0) == 1
        assert source.best_level_for(1.9) == 0
        direct = source.read_region(1, 1024, 1024, 128, 128)
        reduced = read_scaled(source, 1024, 1024, source.level_downsamples[1], 128, 128)
        assert np.array_equal(direct, reduced)


def test_read_beyond_the_edge_is_background(cmu_svs):
    with open_source(cmu_svs) as source:
        width, _ = source.dimensions
        region = source.read_region(0, width - 10, 0, 40, 10)
        assert (region[:, 20:] == 255).all()


@pytest.mark.parametrize("relative", ["slides/camelyon-lymph-node-multiframe.dcm", "slides/kidney-ihc-48-5.tif"])
def test_encode_other_sources(tmp_path, relative):
    out = tmp_path / "out.tiff"
    summary = encode_slide(data_file(relative), out, EncodeSettings(codecs=["jpeg:85"], workers=1), progress=False)
    with NeuralTiff(out) as slide:
        assert (slide.levels[0].width, slide.levels[0].height) == open_source(data_file(relative)).dimensions
        assert 0 < summary.glass_tiles < summary.tiles
