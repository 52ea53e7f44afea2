"""QuPath's OMERO extension, replayed against a live `tileserver serve` on 127.0.0.1.

The request sequence and the fields it reads are those of ../shared/notes/qupath-omero-web.md:
discovery (/api/, url:base, token, servers), the webclient URL, imgData, the thumbnail, tiles
at every level, logout, and the pixel-buffer probe. Served: one slide in our format (JPEG q90
tiles through the decode engine) and one SVS through OpenSlide.
"""
from __future__ import annotations

import io
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from tileserver.loadtest.local_server import LocalServer

STORED, SOURCE = "cmu.tiff", "svs/cmu-1-small-region.svs"
LINK_KEYS = ("experimenters", "experimentergroups", "projects", "datasets", "images", "screens", "plates",
             "token", "servers", "login")
JPEG_MARGIN = 0.5  # mean absolute difference (0-255) allowed beyond a JPEG q90's own


@pytest.fixture(scope="module")
def root(tmp_path_factory, encoded_cmu, cmu_svs) -> Path:
    root = tmp_path_factory.mktemp("omero-slides")
    shutil.copy(encoded_cmu, root / STORED)
    (root / SOURCE).parent.mkdir()
    shutil.copy(cmu_svs, root / SOURCE)
    return root


@pytest.fixture(scope="module")
def server(root) -> Iterator[str]:
    with LocalServer(root, cache_mb=64) as running:
        yield running.url


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    # as QuPath: 20 s timeout; redirects are not followed here, so both slash forms must answer
    with httpx.Client(base_url=server, timeout=20.0, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="module")
def slides(client) -> dict[str, dict]:
    return {entry["id"]: entry for entry in client.get("/api/slides").json()["slides"]}


@pytest.fixture(params=[STORED, SOURCE], ids=["neural-tiff", "svs"])
def slide(request, slides) -> dict:
    return slides[request.param]


def _jpeg(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG" and image.mode == "RGB"
    return np.asarray(image)


def _not_an_image(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert not response.headers["content-type"].startswith("image/")
    with pytest.raises(Exception):
        Image.open(io.BytesIO(response.content)).load()


def _absolute_under(url: str, server: str, path_prefix: str) -> None:
    parts, origin = urlsplit(url), urlsplit(server)
    assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
    assert parts.path.startswith(path_prefix), url


# ---- discovery ----

def test_discovery_sequence(client, server):
    versions = client.get("/omero/api/")
    assert versions.status_code == 200
    entry = versions.json()["data"][0]
    assert isinstance(entry["version"], str)
    base = entry["url:base"]
    _absolute_under(base, server, "/omero/api/")

    links = client.get(base)
    assert links.status_code == 200
    links = links.json()
    for key in LINK_KEYS:
        url = links[f"url:{key}"]
        assert isinstance(url, str)
        _absolute_under(url, server, "/omero/api/v0/")
        assert url.endswith("/")

    for key in ("experimenters", "experimentergroups", "projects", "datasets", "screens", "plates"):
        empty = client.get(links[f"url:{key}"])  # reachable: anonymous browsing is allowed
        assert empty.status_code == 200 and empty.json()["data"] == [] and empty.json()["meta"]["totalCount"] == 0

    token = client.get(links["url:token"])
    assert token.status_code == 200 and isinstance(token.json()["data"], str) and token.json()["data"]
    servers = client.get(links["url:servers"])
    assert servers.status_code == 200
    (first, *_) = servers.json()["data"]
    assert isinstance(first["host"], str)
    assert type(first["id"]) is int and type(first["port"]) is int


def test_links_follow_forwarding_headers(client):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "slides.example.org:8443, 10.0.0.1"}
    base = client.get("/omero/api/", headers=headers).json()["data"][0]["url:base"]
    assert base == "https://slides.example.org:8443/omero/api/v0/"
    links = client.get("/omero/api/v0/", headers=headers).json()
    assert all(links[f"url:{key}"].startswith("https://slides.example.org:8443/omero/api/v0/") for key in LINK_KEYS)
    server = client.get("/omero/api/v0/servers/", headers=headers).json()["data"][0]
    assert (server["host"], server["port"]) == ("slides.example.org", 8443)


def test_slide_api_gives_the_number_and_the_qupath_url(slides):
    numbers = {entry["omero_id"] for entry in slides.values()}
    assert len(numbers) == len(slides) == 2
    for entry in slides.values():
        assert type(entry["omero_id"]) is int and 0 < entry["omero_id"] < 2**53
        assert entry["urls"]["qupath"] == f"/omero/webclient/?show=image-{entry['omero_id']}"


# ---- opening one image ----

def _image_data(client, number: int, slash: str) -> dict:
    response = client.get(f"/omero/webgateway/imgData/{number}{slash}")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("slash", ["/", ""])
def test_image_data(client, slide, slash):
    n = slide["omero_id"]
    assert client.get(f"/omero/webclient/?show=image-{n}").status_code == 200
    rois = client.get(f"/omero/api/v0/m/rois/?image={n}")  # asked when the image joins a project
    assert rois.status_code == 200 and rois.json()["data"] == []
    data = _image_data(client, n, slash)
    size = data["size"]
    assert (size["width"], size["height"]) == (slide["width"], slide["height"])
    assert all(type(size[k]) is int for k in ("width", "height", "z", "t", "c")) and (size["z"], size["t"]) == (1, 1)
    assert data["meta"]["pixelsType"] == "uint8" and data["meta"]["imageName"] == slide["id"]
    assert [(c["label"], c["color"]) for c in data["channels"]] == [("R", "FF0000"), ("G", "00FF00"), ("B", "0000FF")]
    assert [data["pixel_size"]["x"], data["pixel_size"]["y"]] == slide["mpp"]
    assert data["tiles"] is True
    assert data["tile_size"] == {"width": slide["tile_size"], "height": slide["tile_size"]}
    levels = data["levels"]
    assert type(levels) is int and levels == len(slide["levels"]) > 1
    zoom = data["zoomLevelScaling"]
    assert sorted(zoom, key=int) == [str(k) for k in range(levels)]
    values = [zoom[str(k)] for k in range(levels)]
    assert values[0] == 1.0 and all(a > b for a, b in zip(values, values[1:]))
    assert [1 / v for v in values] == [level["downsample"] for level in slide["levels"]]


@pytest.mark.parametrize("slash", ["/", ""])
def test_thumbnail(client, slide, slash):
    pixels = _jpeg(client.get(f"/omero/webgateway/render_thumbnail/{slide['omero_id']}/256{slash}"))
    assert max(pixels.shape[:2]) == 256


def _tile_url(number: int, level: int, col: int, row: int, w: int, h: int, q: str = "0.900000") -> str:
    channels = quote("1|0:255$FF0000,2|0:255$00FF00,3|0:255$0000FF")
    return f"/omero/webgateway/render_image_region/{number}/0/0/?tile={level},{col},{row},{w},{h}&c={channels}&m=c&q={q}"


def _level_size(slide: dict, level: int) -> tuple[int, int]:
    scale = 2**level
    return math.ceil(slide["width"] / scale), math.ceil(slide["height"] / scale)


def _assert_matches_iiif(client, slide: dict, pixels: np.ndarray, level: int, col: int, row: int, w: int,
                         h: int) -> None:
    """The tile is the IIIF region of the same area within JPEG tolerance: no further from it
    than a JPEG q90 of the IIIF pixels is (plus a margin for the blocks a crop moves).

    The area is the tile's whole level pixels: at the slide's right and bottom edges a level's
    last pixel may cover less than 2**level slide pixels, and such a region makes IIIF resample
    another level, so it is left out."""
    scale = 2**level
    x, y = col * w * scale, row * h * scale
    inside_w = min(pixels.shape[1], (slide["width"] - x) // scale)
    inside_h = min(pixels.shape[0], (slide["height"] - y) // scale)
    url = (f"/iiif/3/{quote(slide['id'], safe='')}/{x},{y},{inside_w * scale},{inside_h * scale}/"
           f"{inside_w},{inside_h}/0/default.png")
    response = client.get(url)
    assert response.status_code == 200
    reference = Image.open(io.BytesIO(response.content)).convert("RGB")
    buffer = io.BytesIO()
    reference.save(buffer, "JPEG", quality=90)
    reference = np.asarray(reference).astype(int)
    jpeg_error = np.abs(np.asarray(Image.open(buffer)).astype(int) - reference).mean()
    error = np.abs(pixels[:inside_h, :inside_w].astype(int) - reference).mean()
    assert error <= jpeg_error + JPEG_MARGIN, (level, col, row, w, h, error, jpeg_error)


def test_tiles_at_every_level_match_iiif(client, slide):
    n, t = slide["omero_id"], slide["tile_size"]
    data = _image_data(client, n, "/")
    for level in range(data["levels"]):
        level_w, level_h = _level_size(slide, level)
        last_col, last_row = (level_w - 1) // t, (level_h - 1) // t
        corners = {(0, 0), (last_col, 0), (0, last_row), (last_col, last_row)}
        for col, row in sorted(corners):
            q = "0,900000" if (col + row) % 2 else "0.900000"  # the locale comma too
            pixels = _jpeg(client.get(_tile_url(n, level, col, row, t, t, q)))
            expected = (min(t, level_h - row * t), min(t, level_w - col * t))
            assert pixels.shape == (*expected, 3), (level, col, row)
            _assert_matches_iiif(client, slide, pixels, level, col, row, t, t)


@pytest.mark.parametrize("w, h, col, row", [(512, 512, 1, 1), (1024, 1024, 0, 0), (1000, 300, 2, 9), (1, 1024, 7, 0)])
def test_any_tile_size_up_to_1024(client, slide, w, h, col, row):
    n = slide["omero_id"]
    level_w, level_h = _level_size(slide, 0)
    pixels = _jpeg(client.get(_tile_url(n, 0, col, row, w, h)))
    assert pixels.shape == (min(h, level_h - row * h), min(w, level_w - col * w), 3)
    _assert_matches_iiif(client, slide, pixels, 0, col, row, w, h)


def test_quality_follows_q(client, slides):
    n = slides[STORED]["omero_id"]
    low = client.get(_tile_url(n, 0, 2, 2, 512, 512, "0,2"))
    high = client.get(_tile_url(n, 0, 2, 2, 512, 512, "0.95"))
    _jpeg(low), _jpeg(high)
    assert len(low.content) < len(high.content)
    assert client.get(_tile_url(n, 0, 2, 2, 512, 512, "0,95")).content == high.content


def test_viewer_shows_the_qupath_url(client, slides):
    entry = slides[STORED]
    page = client.get(f"/view/{entry['id']}")
    assert page.status_code == 200 and 'id="qupath-url"' in page.text
    assert "slide.urls.qupath" in client.get("/static/viewer.js").text
    assert client.get(entry["urls"]["qupath"]).status_code == 200


def test_logout_and_the_pixel_buffer_probe(client):
    assert client.post("/omero/webclient/logout/", headers={"X-CSRFToken": "x"}).status_code == 200
    # the extension probes OPTIONS {base}/tile: anything but 200 keeps it on the web reader
    assert client.options("/omero/tile").status_code != 200


# ---- errors: never an image ----

def test_unknown_number_is_404(client, slides):
    unknown = next(n for n in range(1, 100) if n not in {e["omero_id"] for e in slides.values()})
    for path in (f"/omero/webgateway/imgData/{unknown}/", f"/omero/webgateway/render_thumbnail/{unknown}/256/",
                 f"/omero/webclient/?show=image-{unknown}", _tile_url(unknown, 0, 0, 0, 256, 256)):
        _not_an_image(client.get(path), 404)


@pytest.mark.parametrize("tile", ["", "0,0,0,256", "a,b,c,d,e", "0,0,0,0,256", "0,0,0,1025,256", "9,0,0,256,256",
                                  "0,99,0,256,256", "0,0,99,256,256"])
def test_malformed_tile_is_400(client, slides, tile):
    n = slides[STORED]["omero_id"]
    _not_an_image(client.get(f"/omero/webgateway/render_image_region/{n}/0/0/?tile={tile}&q=0.9"), 400)


def test_bad_quality_and_plane_are_400(client, slides):
    n = slides[STORED]["omero_id"]
    _not_an_image(client.get(_tile_url(n, 0, 0, 0, 256, 256, "high")), 400)
    _not_an_image(client.get(f"/omero/webgateway/render_image_region/{n}/1/0/?tile=0,0,0,256,256"), 400)


# ---- numbers across a restart, and the prefix option ----

def test_numbers_survive_a_restart_and_the_prefix_moves(root, slides):
    with LocalServer(root, cache_mb=64, options=("--omero-prefix", "/lab/omero")) as running, \
            httpx.Client(base_url=running.url, timeout=20.0) as client:
        url = running.url
        again = {entry["id"]: entry for entry in client.get("/api/slides").json()["slides"]}
        assert {k: e["omero_id"] for k, e in again.items()} == {k: e["omero_id"] for k, e in slides.items()}
        base = client.get("/lab/omero/api/").json()["data"][0]["url:base"]
        assert base == f"{url}/lab/omero/api/v0/"
        for entry in slides.values():
            assert again[entry["id"]]["urls"]["qupath"] == f"/lab/omero/webclient/?show=image-{entry['omero_id']}"
            assert client.get(f"/lab/omero/webgateway/imgData/{entry['omero_id']}").status_code == 200
        assert client.get("/omero/api/").status_code == 404


def test_a_bad_prefix_is_refused(root):
    result = subprocess.run([sys.executable, "-m", "tileserver.cli", "serve", str(root), "--omero-prefix", "omero/"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "prefix" in result.stderr
