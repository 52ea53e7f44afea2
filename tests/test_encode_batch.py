"""encode-batch on a real Dask LocalCluster with 2 worker processes: report, restart, identity."""
from __future__ import annotations

import csv
import filecmp
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SLIDES
from tileserver.encode.batch import BatchItem, collect_items
from tileserver.encode.encoder import EncodeSettings, encode_slide

pytestmark = pytest.mark.slides


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    if not SLIDES.exists():
        pytest.skip(f"real test data not present: {SLIDES}")
    root = tmp_path_factory.mktemp("archive")
    for name in ["cmu-1-small-region.svs", "camelyon-lymph-node-multiframe.dcm", "kidney-ihc-48-5.tif"]:
        target = root / ("dicom" if name.endswith(".dcm") else "") / name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(SLIDES / name, target)
    (root / "broken.svs").write_bytes(b"II*\x00" + b"\x00" * 100)  # a TIFF header and nothing else
    return root


def run_batch_cli(source, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "tileserver.cli", "encode-batch", str(source), "-o", str(out),
         "--codec", "jpeg:90", "--workers", "2", *extra],
        capture_output=True, text=True, timeout=600,
    )


def read_report(out):
    with open(out / "encode-report.csv", newline="") as handle:
        return {row["source"].rsplit("/", 1)[-1]: row for row in csv.DictReader(handle)}


def test_batch_report_restart_and_identity(archive, tmp_path):
    out = tmp_path / "out"
    first = run_batch_cli(archive, out)
    assert first.returncode == 1, first.stderr  # the broken slide fails, the rest go on
    assert "Traceback" not in first.stdout
    rows = read_report(out)
    assert {name: row["status"] for name, row in rows.items()} == {
        "broken.svs": "failed",
        "camelyon-lymph-node-multiframe.dcm": "encoded",
        "cmu-1-small-region.svs": "encoded",
        "kidney-ihc-48-5.tif": "encoded",
    }
    assert rows["broken.svs"]["error"]
    assert (out / "dicom" / "camelyon-lymph-node-multiframe.tiff").exists()
    assert int(rows["cmu-1-small-region.svs"]["output_bytes"]) > 0
    assert "jpeg:90=" in rows["cmu-1-small-region.svs"]["codec_mix"]
    assert "ETA" in first.stderr

    single = tmp_path / "single.tiff"
    encode_slide(archive / "cmu-1-small-region.svs", single, EncodeSettings(codecs=["jpeg:90"], workers=1),
                 progress=False)
    assert filecmp.cmp(single, out / "cmu-1-small-region.tiff", shallow=False)

    second = run_batch_cli(archive, out)
    statuses = {name: row["status"] for name, row in read_report(out).items()}
    assert statuses["cmu-1-small-region.svs"] == statuses["kidney-ihc-48-5.tif"] == "skipped"
    assert statuses["broken.svs"] == "failed"
    assert "skipped: 3" in second.stdout

    third = run_batch_cli(archive, out, "--glass", "keep")  # other settings: encoded again
    assert "encoded: 3" in third.stdout


def test_manifest(tmp_path, archive):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"source,output\n{archive / 'kidney-ihc-48-5.tif'},kidney.tiff\n")
    assert collect_items(manifest, tmp_path / "o") == [
        BatchItem(archive / "kidney-ihc-48-5.tif", tmp_path / "o" / "kidney.tiff")
    ]
