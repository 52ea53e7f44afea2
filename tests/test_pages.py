"""The HTML pages: every asset they load exists, ids are escaped, unknown slides are 404, and the
JSON API carries every field the pages' scripts read."""
from __future__ import annotations

import re
import shutil

import pytest
from starlette.testclient import TestClient

from tileserver.demo import SLIDE_NAME, prepare
from tileserver.server.app import create_app

# The fields static/format.js, list.js and viewer.js read from /api/slides entries.
FIELDS_USED = {"id", "width", "height", "levels", "mpp", "bytes", "urls"}
STORED_FIELDS_USED = {"codec_mix", "tiles", "glass_tiles", "ratio_vs_jpeg90"}
URLS_USED = {"thumbnail", "iiif3", "iiif2"}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root, _ = prepare(["jpeg:90"], tmp_path_factory.getbasetemp() / "xdg" / "tileserver" / "demo", progress=False)
    return root


@pytest.fixture(scope="module")
def client(demo_root):
    with TestClient(create_app(demo_root, device="cpu", cache_mb=64)) as test_client:
        yield test_client


def assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


def stored_id(client) -> str:
    return next(s["id"] for s in client.get("/api/slides").json()["slides"] if s["kind"] == "neural-tiff")


def test_list_page_assets_resolve(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<table id="slides">' in page.text
    found = assets(page.text)
    assert "/static/list.js" in found and "/static/style.css" in found
    for path in found:
        assert client.get(path).status_code == 200, path


def test_viewer_page_assets_resolve(client):
    slide_id = stored_id(client)
    page = client.get(f"/view/{slide_id}")
    assert page.status_code == 200
    assert f'data-slide-id="{slide_id}"' in page.text
    found = assets(page.text)
    assert "/static/vendor/openseadragon/openseadragon.min.js" in found
    for path in found:
        assert client.get(path).status_code == 200, path
    # OpenSeadragon's button images, under the prefixUrl viewer.js gives it
    assert "/static/vendor/openseadragon/images/" in client.get("/static/viewer.js").text
    assert client.get("/static/vendor/openseadragon/images/zoomin_rest.png").status_code == 200
    assert client.get("/static/vendor/openseadragon/LICENSE.txt").status_code == 200


@pytest.mark.parametrize("path", ["/view/missing.tiff", "/view/..%2F..%2Fetc%2Fpasswd", "/view//etc/passwd"])
def test_viewer_unknown_slide_is_404(client, path):
    assert client.get(path).status_code == 404


def test_viewer_escapes_the_slide_id(demo_root, tmp_path):
    name = 'a"><img src=x onerror=alert(1)>.svs'
    shutil.copyfile(demo_root / SLIDE_NAME, tmp_path / name)
    with TestClient(create_app(tmp_path, device="cpu", cache_mb=16)) as client:
        page = client.get("/view/" + name)
    assert page.status_code == 200
    assert "<img" not in page.text
    assert 'data-slide-id="a&quot;&gt;&lt;img src=x onerror=alert(1)&gt;.svs"' in page.text


def test_api_has_every_field_the_pages_read(client):
    slides = client.get("/api/slides").json()["slides"]
    assert {s["kind"] for s in slides} == {"neural-tiff", "source"}
    for slide in slides:
        assert FIELDS_USED <= slide.keys(), slide["id"]
        assert URLS_USED <= slide["urls"].keys()
        if slide["kind"] == "neural-tiff":
            assert STORED_FIELDS_USED <= slide.keys()
            assert slide["codec_mix"].keys() == slide["tiles_per_codec"].keys()
            assert sum(slide["codec_mix"].values()) == pytest.approx(1.0)
        assert client.get(slide["urls"]["thumbnail"] + "?size=128").headers["content-type"] == "image/jpeg"
        single = client.get(f"/api/slides/{slide['id']}").json()
        assert single["urls"] == slide["urls"]


def test_nested_slide_ids(demo_root, tmp_path):
    (tmp_path / "lab a" / "2024").mkdir(parents=True)
    shutil.copyfile(demo_root / SLIDE_NAME, tmp_path / "lab a" / "2024" / "x.svs")
    with TestClient(create_app(tmp_path, device="cpu", cache_mb=16)) as client:
        (entry,) = client.get("/api/slides").json()["slides"]
        assert entry["id"] == "lab a/2024/x.svs"
        assert entry["urls"]["iiif3"] == "/iiif/3/lab%20a%2F2024%2Fx.svs/info.json"
        assert client.get(entry["urls"]["iiif3"]).json()["width"] == 2220
        page = client.get("/view/lab%20a/2024/x.svs")
        assert page.status_code == 200 and 'data-slide-id="lab a/2024/x.svs"' in page.text
