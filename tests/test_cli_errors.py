"""Bad input: one clear error line, exit code != 0, no traceback, no output file."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tileserver.format import payload
from tileserver.format.reader import NeuralTiff


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tileserver.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def assert_clean_failure(result, output=None):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1, result.stderr
    if output is not None:
        assert not output.exists()
        assert not list(output.parent.glob(f".{output.name}*"))  # no temp file left behind


def test_missing_file(tmp_path):
    out = tmp_path / "out.tiff"
    result = run_cli("encode", tmp_path / "nope.svs", "-o", out, "--quiet")
    assert_clean_failure(result, out)
    assert "no such file" in result.stderr


def test_text_file_named_svs(tmp_path):
    fake = tmp_path / "notes.svs"
    fake.write_text("this is not a slide\n" * 50)
    out = tmp_path / "out.tiff"
    assert_clean_failure(run_cli("encode", fake, "-o", out, "--quiet"), out)


def test_truncated_tiff(tmp_path, cmu_svs):
    cut = tmp_path / "cut.svs"
    cut.write_bytes(cmu_svs.read_bytes()[: cmu_svs.stat().st_size // 3])
    out = tmp_path / "out.tiff"
    assert_clean_failure(run_cli("encode", cut, "-o", out, "--quiet", "--workers", "1"), out)


def test_unwritable_output(tmp_path, cmu_svs):
    out = tmp_path / "missing-dir" / "out.tiff"
    result = run_cli("encode", cmu_svs, "-o", out, "--quiet")
    assert_clean_failure(result, None)
    assert not out.parent.exists()


def test_corrupt_tile_is_reported_and_never_decoded(tmp_path, encoded_cmu):
    copy = tmp_path / "corrupt.tiff"
    shutil.copy(encoded_cmu, copy)
    with NeuralTiff(copy) as slide:
        level, col, row = next(
            (0, c, r) for r in range(slide.tile_grid(0)[1]) for c in range(slide.tile_grid(0)[0])
            if slide.tile_bytes(0, c, r)
        )
        offset = int(slide._offsets[level][row * slide.tile_grid(0)[0] + col])
    with open(copy, "r+b") as handle:
        handle.seek(offset + payload.HEADER_SIZE + 100)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = run_cli("verify", copy, "--decode")
    assert result.returncode == 1
    assert f"level 0 tile {col},{row}: corrupt" in result.stderr and "CRC" in result.stderr
    assert "1 corrupt" in result.stdout
    import tifffile

    with pytest.raises(Exception, match="CRC"):
        tifffile.imread(copy, key=0)


def test_info_json(encoded_cmu):
    import json

    result = run_cli("info", encoded_cmu, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["format"] == "tileserver-ntiff" and len(doc["levels"]) == 5
    assert doc["stats"]["glass_tiles"] > 0 and doc["file"]["vs_source"] < 1.5
