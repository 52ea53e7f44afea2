"""The server over HTTP on 127.0.0.1: our format and a standard WSI side by side, bad requests,
path traversal, a corrupt tile, many concurrent clients, a slide replaced while serving."""
from __future__ import annotations

import asyncio
import io
import os
import random
import shutil
import sys

import httpx
import numpy as np
import pytest
import tifffile
from PIL import Image

from tileserver.server.app import create_app
from tileserver.slides.tiles import Pyramid

from .engine_fixtures import crop_source, encode, expected_tile
from .live_server import serve

OPENED: list[str] = []
_recording = [False]


def _audit(event: str, args: tuple) -> None:
    if _recording[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def corrupt_copy(source, out) -> tuple[int, int]:
    """Copy a slide and flip bytes inside one stored level-0 tile; return its (col, row)."""
    shutil.copy(source, out)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        offsets, counts = page.dataoffsets, page.databytecounts
        across = -(-page.imagewidth // page.tilewidth)
    index = next(i for i, n in enumerate(counts) if n > 1000 and i % across not in (0, across - 1))
    with open(out, "r+b") as f:
        f.seek(offsets[index] + counts[index] // 2)
        chunk = f.read(8)
        f.seek(offsets[index] + counts[index] // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    return index % across, index // across


@pytest.fixture(scope="module")
def site(tmp_path_factory, encoded_cmu, cmu_svs):
    work = tmp_path_factory.mktemp("server")
    root, outside = work / "root", work / "outside"
    (root / "sub" / "dir").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(encoded_cmu, root / "cmu.tif")
    shutil.copy(cmu_svs, root / "sub" / "dir" / "cmu.svs")
    corrupt = corrupt_copy(encoded_cmu, root / "corrupt.tif")
    shutil.copy(encoded_cmu, outside / "secret.tif")
    os.symlink(outside / "secret.tif", root / "link.tif")
    os.symlink(outside, root / "linkdir")
    small = encode(crop_source(cmu_svs, work / "small.png", 600, 800, 700, 500), work / "small.tif", "jpeg:60")
    with serve(create_app(root, device="cpu", cache_mb=64)) as url:
        yield {"url": url, "root": root, "outside": outside, "corrupt": corrupt, "small": small,
               "encoded": encoded_cmu, "svs": cmu_svs}


@pytest.fixture
def client(site):
    with httpx.Client(base_url=site["url"], timeout=60) as c:
        yield c


def pixels(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def top_dz_level(width: int, height: int) -> int:
    return Pyramid.for_size(width, height, 256).deepzoom_levels - 1


def test_both_kinds_of_slide_are_listed_and_described(client):
    listed = {s["id"]: s for s in client.get("/api/slides").json()["slides"]}
    assert {"cmu.tif", "sub/dir/cmu.svs", "corrupt.tif"} <= set(listed)
    assert "link.tif" not in listed and not any(i.startswith("linkdir") for i in listed)
    ours = client.get("/api/slides/cmu.tif").json()
    assert ours["kind"] == "neural-tiff" and (ours["width"], ours["height"]) == (2220, 2967)
    assert ours["tiles_per_codec"] == {"jpeg:90": ours["tiles"] - ours["glass_tiles"]}
    assert ours["codec_mix"] == {"jpeg:90": 1.0}
    assert ours["ratio_vs_source"] > 0 and ours["ratio_vs_jpeg90"] > 0
    assert [lv["downsample"] for lv in ours["levels"]] == [1, 2, 4, 8, 16]
    theirs = client.get("/api/slides/sub/dir/cmu.svs").json()
    assert theirs["kind"] == "source" and theirs["levels"] == ours["levels"]
    thumb = pixels(client.get("/api/slides/cmu.tif/thumbnail?size=200"))
    assert max(thumb.shape[:2]) == 200


def test_standard_wsi_tiles_are_the_slides_own_pixels(client, site):
    import openslide

    dz = top_dz_level(2220, 2967)
    with openslide.OpenSlide(str(site["svs"])) as slide:
        for col, row in [(0, 0), (3, 5), (8, 11)]:
            w, h = min(256, 2220 - col * 256), min(256, 2967 - row * 256)
            want = np.asarray(slide.read_region((col * 256, row * 256), 0, (w, h)).convert("RGB"))
            got = pixels(client.get(f"/deepzoom/sub/dir/cmu.svs_files/{dz}/{col}_{row}.png"))
            assert np.array_equal(got, want)


def test_unknown_slide_is_404(client):
    for url in ["/api/slides/nope.tif", "/api/slides/nope.tif/thumbnail", "/deepzoom/nope.tif.dzi",
                "/deepzoom/nope.tif_files/0/0_0.jpeg", "/iiif/3/nope.tif/info.json",
                "/iiif/2/nope.tif/full/max/0/default.jpg", "/iiif/3/nope.tif"]:
        assert client.get(url).status_code == 404, url
    assert client.get("/deepzoom/cmu.tif_files/99/0_0.jpeg").status_code == 404
    assert client.get("/deepzoom/cmu.tif_files/12/50_0.jpeg").status_code == 404


@pytest.mark.parametrize("path, reason", [
    ("abc/max/0/default.jpg", "region"),
    ("0,0,0,10/max/0/default.jpg", "region"),
    ("5000,10,10,10/max/0/default.jpg", "outside"),
    ("pct:a,0,10,10/max/0/default.jpg", "region"),
    ("full/abc/0/default.jpg", "size"),
    ("full/0,/0/default.jpg", "size"),
    ("full/full/0/default.jpg", "size"),
    ("full/max/abc/default.jpg", "rotation"),
    ("full/max/400/default.jpg", "rotation"),
    ("full/max/0/best.jpg", "quality"),
    ("full/max/0/default.bmp", "format"),
    ("full/max/0/default", "quality.format"),
    ("0,0,100,100/200,/0/default.jpg", "^"),
    ("full/^20000,/0/default.jpg", "limits"),
    ("full/^max/0/default.jpg", None),
])
def test_bad_iiif_requests_are_400_with_a_reason(client, path, reason):
    response = client.get(f"/iiif/3/cmu.tif/{path}")
    if reason is None:  # ^max is allowed: the largest size within the advertised limits
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert reason in response.text


def test_upscaling_with_caret_and_output_limits(client):
    assert pixels(client.get("/iiif/3/cmu.tif/0,0,100,100/^200,/0/default.png")).shape == (200, 200, 3)
    assert client.get("/iiif/2/cmu.tif/0,0,100,100/200,/0/default.jpg").status_code == 400
    info = client.get("/iiif/3/cmu.tif/info.json").json()
    assert info["maxWidth"] == 10000 and info["tiles"][0]["scaleFactors"] == [1, 2, 4, 8, 16]
    assert [s["width"] for s in info["sizes"]] == [139, 278, 555, 1110, 2220]


@pytest.mark.parametrize("slide_id", [
    "%2E%2E%2Foutside%2Fsecret.tif", "..%2Foutside%2Fsecret.tif", "sub%2F..%2F..%2Foutside%2Fsecret.tif",
    "link.tif", "linkdir%2Fsecret.tif", "%2Fetc%2Fpasswd", ".%2Fcmu.tif", "cmu.tif%00",
])
def test_path_traversal_is_404_and_opens_nothing_outside(client, site, slide_id):
    urls = [f"/api/slides/{slide_id}", f"/deepzoom/{slide_id}.dzi", f"/iiif/3/{slide_id}/info.json",
            f"/iiif/2/{slide_id}/full/max/0/default.jpg", f"/deepzoom/{slide_id}_files/0/0_0.jpeg"]
    OPENED.clear()
    _recording[0] = True
    try:
        statuses = [client.get(url).status_code for url in urls]
    finally:
        _recording[0] = False
    assert statuses == [404] * len(urls)
    outside = os.path.realpath(site["outside"])
    assert not [p for p in OPENED if os.path.realpath(p).startswith(outside) or p.startswith("/etc")]


def test_raw_dot_segments_stay_inside(site):
    """Dot segments sent as they are (clients usually normalise them away) are refused too."""
    import socket

    port = int(site["url"].rsplit(":", 1)[1])
    for target in ["/api/slides/../outside/secret.tif", "/deepzoom/../outside/secret.tif.dzi"]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            status = sock.recv(64).split()[1]
        assert status == b"404", target


def test_a_corrupt_tile_fails_alone(client, site, caplog):
    col, row = site["corrupt"]
    dz = top_dz_level(2220, 2967)
    for _ in range(2):  # never cached: the second request fails the same way
        response = client.get(f"/deepzoom/corrupt.tif_files/{dz}/{col}_{row}.jpeg")
        assert response.status_code == 500 and "CRC" in response.text
    assert client.get(f"/iiif/3/corrupt.tif/{col * 256},{row * 256},256,256/max/0/default.jpg").status_code == 500
    neighbour = pixels(client.get(f"/deepzoom/corrupt.tif_files/{dz}/{col + 1}_{row}.png"))
    assert np.array_equal(neighbour, expected_tile(site["encoded"], 0, col + 1, row))
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert 'tileserver_tile_errors_total{reason="CorruptTileError"}' in metrics
    assert any("corrupt.tif" in r.getMessage() and "CRC" in r.getMessage() for r in caplog.records)


def test_many_concurrent_clients_get_their_own_tiles(site):
    pyramid = Pyramid.for_size(2220, 2967, 256)
    top = pyramid.deepzoom_levels - 1
    cells = [(k, c, r) for k in range(pyramid.level_count)
             for c in range(pyramid.grid(k)[0]) for r in range(pyramid.grid(k)[1])]
    rng = random.Random(4)
    requests = rng.sample(cells, len(cells)) + rng.choices(cells, k=60)
    expected = {cell: expected_tile(site["encoded"], *cell) for cell in set(requests)}

    async def fetch(client, k, c, r, via_iiif):
        if via_iiif:  # the IIIF 3 tile OpenSeadragon asks for at scale factor 2**k
            s = 2**k
            w, h = min(256 * s, 2220 - c * 256 * s), min(256 * s, 2967 - r * 256 * s)
            url = f"/iiif/3/cmu.tif/{c * 256 * s},{r * 256 * s},{w},{h}/{-(-w // s)},{-(-h // s)}/0/default.png"
        else:
            url = f"/deepzoom/cmu.tif_files/{top - k}/{c}_{r}.png"
        return (k, c, r), await client.get(url)

    async def run():
        limits = httpx.Limits(max_connections=24)
        async with httpx.AsyncClient(base_url=site["url"], timeout=120, limits=limits) as client:
            return await asyncio.gather(*(fetch(client, *cell, i % 3 == 0) for i, cell in enumerate(requests)))

    results = asyncio.run(run())
    assert len(results) == len(requests)
    for cell, response in results:
        assert np.array_equal(pixels(response), expected[cell]), cell


def test_tiles_have_etag_cache_control_cors_and_304(client):
    url = "/deepzoom/cmu.tif_files/12/2_3.jpeg"
    first = client.get(url)
    assert first.headers["access-control-allow-origin"] == "*"
    assert "max-age" in first.headers["cache-control"]
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = client.get("/deepzoom/cmu.tif_files/12/2_4.jpeg")
    assert other.headers["etag"] != first.headers["etag"]
    assert client.get(url).content == first.content  # from the response cache, same bytes
    metrics = client.get("/metrics").text
    assert 'tileserver_cache_hits_total{cache="response"}' in metrics
    assert 'tileserver_decode_seconds_count{codec="jpeg",stage="prepare"}' in metrics
    assert 'tileserver_request_seconds_bucket{le="0.005",route="deepzoom",status="200"}' in metrics


def test_iiif_info_media_types_and_base_redirect(client):
    plain = client.get("/iiif/3/sub%2Fdir%2Fcmu.svs/info.json")
    assert plain.headers["content-type"] == "application/json"
    assert plain.json()["id"].endswith("/iiif/3/sub%2Fdir%2Fcmu.svs")
    ld = client.get("/iiif/2/cmu.tif/info.json", headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"] == 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"'
    redirect = client.get("/iiif/3/sub%2Fdir%2Fcmu.svs", follow_redirects=False)
    assert redirect.status_code == 303
    assert redirect.headers["location"].endswith("/iiif/3/sub%2Fdir%2Fcmu.svs/info.json")
    assert client.get("/iiif/3/sub/dir/cmu.svs/info.json").status_code == 404  # unescaped slashes


def test_a_replaced_slide_is_served_fresh(client, site):
    path = site["root"] / "replaced.tif"
    shutil.copy(site["encoded"], path)
    assert client.get("/api/slides/replaced.tif").json()["width"] == 2220
    before = pixels(client.get("/deepzoom/replaced.tif_files/9/0_0.png"))
    tmp = site["root"] / ".replaced.tif.part"
    shutil.copy(site["small"], tmp)
    os.replace(tmp, path)
    assert client.get("/api/slides/replaced.tif").json()["width"] == 700
    after = pixels(client.get("/deepzoom/replaced.tif_files/9/0_0.png"))  # same URL, new slide
    assert after.shape != before.shape
    small_top = Pyramid.for_size(700, 500, 256).deepzoom_levels - 1
    fresh = pixels(client.get(f"/deepzoom/replaced.tif_files/{small_top}/1_1.png"))
    assert np.array_equal(fresh, expected_tile(site["small"], 0, 1, 1))
    path.unlink()
    assert client.get("/api/slides/replaced.tif").status_code == 404
