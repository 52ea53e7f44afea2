"""`tileserver evaluate` on a few real tissue tiles with JPEG only (fast)."""
from __future__ import annotations

import csv

import pytest

from tests.conftest import DATA, data_file
from tileserver.train.evaluate import evaluate, tissue_patches


def test_table_matched_bpp_and_outputs(tmp_path):
    from tileserver.train.codec_data import validation_tiles

    data_file("slides/tcga-cr-7395-01a-01-ts1.svs")
    patches = validation_tiles([DATA])["tcga48"][:4]
    rows = {r["codec"]: r for r in evaluate(patches, ["jpeg:70", "webp:80", "jxl:1.0", "jxl:2.0"],
                                            tmp_path / "ev", sweep=False)}
    reference, lower = rows["jpeg:90"], rows["jpeg:70"]
    assert reference["reduction_mean"] == 0 and reference["bpp_at_jpeg90_ssim"] == pytest.approx(reference["bpp"])
    assert lower["bpp"] < reference["bpp"] and lower["ssim_mean"] < reference["ssim_mean"]
    assert 0 < lower["reduction_min"] <= lower["reduction_mean"] <= lower["reduction_max"] < 1
    # jpeg:70 and jpeg:90 form the JPEG curve; webp alone has no curve through JPEG q90's SSIM
    # unless its single point sits exactly on it.
    assert rows["webp:80"]["bpp_at_jpeg90_ssim"] is None
    # A JPEG-XL point lies on its own curve; JPEG q70 against JPEG-XL at its SSIM is measured.
    assert rows["jxl:2.0"]["saving_vs_jxl_at_same_ssim"] == pytest.approx(0, abs=1e-9)
    jxl_at_jpeg70 = rows["jpeg:70"]["jxl_bpp_at_same_ssim"]
    if jxl_at_jpeg70 is not None:
        assert rows["jpeg:70"]["saving_vs_jxl_at_same_ssim"] == pytest.approx(1 - lower["bpp"] / jxl_at_jpeg70)
    assert len(list(csv.DictReader(open(tmp_path / "ev.csv")))) == 5
    assert (tmp_path / "ev.png").stat().st_size > 0 and "jpeg:70" in (tmp_path / "ev.md").read_text()


def test_tissue_patches_skip_glass(tmp_path):
    fixtures = data_file("patches/val/histolab-fixtures")
    glass = tmp_path / "glass"
    glass.mkdir()
    for name in ("no-tissue.png", "almost-white-1.png"):
        (glass / name).symlink_to(fixtures / name)
    assert tissue_patches([glass]) == []
    assert len(tissue_patches([fixtures])) > 10


def test_adaptive_tile_table_compresses_less_as_lambda_rises():
    """The AdaSlide table on real tiles with the shipped policy and enhancer: every row is
    there, and the share the agent compresses never rises with λ (nor does the oracle's)."""
    from tileserver.encode.adaptive import DEFAULT_POLICY
    from tileserver.sr.policy import load_policy
    from tileserver.train.codec_data import validation_tiles
    from tileserver.train.eval_adaptive import LMBDAS, Decoder, tile_table

    data_file("patches/val/histolab-fixtures")
    tiles = validation_tiles([DATA])["fixtures"][::8]
    lines = tile_table("fixtures", tiles, load_policy(DEFAULT_POLICY), Decoder())
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in lines if line.startswith("| ")}
    assert {"JPEG q90 (keep all)", "SR4 (compress all)"} <= set(rows)
    for kind in ("adaptive:", "oracle λ="):
        shares = [float(rows[f"{kind}{lmbda}"][9].rstrip("%")) for lmbda in LMBDAS]
        assert shares == sorted(shares, reverse=True)
    assert rows["SR4 (compress all)"][9] == "100%" and rows["JPEG q90 (keep all)"][9] == "0%"


def test_adaptive_evaluation_takes_no_codec_list(capsys):
    from tileserver.cli import main

    assert main(["evaluate", "--adaptive", "--codecs", "jpeg:80"]) != 0
    assert "--adaptive" in capsys.readouterr().err
