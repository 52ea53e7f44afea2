"""The load test: OpenSeadragon's tile URLs, tissue targeting, loopback only, and a short real run."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tileserver.demo import prepare
from tileserver.errors import InputError
from tileserver.loadtest.viewport import Slide, tile_urls, tissue_points
from tileserver.loadtest.runner import check_loopback

CMU = Slide("/iiif/3/s", 2220, 2967, 256, [1, 2, 4, 8, 16], [(0.5, 0.5)])


def test_tile_urls_are_openseadragons():
    urls = tile_urls(CMU, 1, (0, 0))  # top-left viewport at full resolution: 3 x 2 tiles
    assert urls[0] == "/iiif/3/s/0,0,256,256/256,256/0/default.jpg"
    assert len(urls) == 3 * 2  # 640 x 400 px of slide: columns 0-2, rows 0-1
    edge = tile_urls(CMU, 1, (2220, 2967))  # bottom-right: partial tiles at the edges
    assert "/iiif/3/s/2048,2816,172,151/172,151/0/default.jpg" in edge
    assert tile_urls(CMU, 2, (0, 0))[1] == "/iiif/3/s/512,0,512,512/256,256/0/default.jpg"
    assert tile_urls(CMU, 16, (1110, 1483)) == ["/iiif/3/s/full/139,186/0/default.jpg"]


def test_tissue_points_fall_on_tissue():
    pixels = np.full((64, 64, 3), 255, np.uint8)
    pixels[40:50, 10:20] = (200, 80, 160)  # H&E pink
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    points = tissue_points(buffer.getvalue())
    assert len(points) == 100
    assert all(10 / 64 < x < 20 / 64 and 40 / 64 < y < 50 / 64 for x, y in points)


@pytest.mark.parametrize("url", ["http://example.com:8000", "http://10.0.0.1:8000", "http://0.0.0.0:80"])
def test_only_loopback_targets(url):
    with pytest.raises(InputError):
        check_loopback(url)


def test_loadtest_command_reports_a_short_run(tmp_path_factory, tmp_path):
    root, slides = prepare(["jpeg:90"], tmp_path_factory.getbasetemp() / "xdg" / "tileserver" / "demo", progress=False)
    coded = next(s.slide_id for s in slides if s.codec == "jpeg:90")
    # A directory of its own: the shared demo directory also holds the slides other tests encode
    # (a learned one among them), and listing those on a loaded machine ate a short run.
    alone = tmp_path / "slides"
    alone.mkdir()
    shutil.copy(root / coded, alone / coded)
    done = subprocess.run([sys.executable, "-m", "tileserver.cli", "loadtest", str(alone), "--slides", coded,
                           "--users", "2", "--spawn-rate", "2", "--time", "8s", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "p95 ms" in done.stdout
    stats = json.loads((tmp_path / "out" / "summary.json").read_text())["cold"]
    assert stats["info.json"]["requests"] >= 2
    assert stats["tile"]["requests"] > 10 and stats["tile"]["failures"] == 0
    assert 0 < stats["tile"]["p50_ms"] <= stats["tile"]["p95_ms"] <= stats["tile"]["p99_ms"]
