"""A real browser on a real server: headless Debian chromium, driven by Playwright, opens the slide
list and a viewer, waits for the tiles, and checks what was drawn and what went over the wire."""
from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.request import urlopen

import numpy as np
import pytest
from PIL import Image

from tileserver.demo import prepare
from tileserver.loadtest.local_server import LocalServer

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (/usr/bin/chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api")

# Until viewer.js has run, window.viewer is the page's <div id="viewer"> (named access), with no world.
LOADED = "() => window.viewer?.world?.getItemCount() > 0 && viewer.world.getItemAt(0).getFullyLoaded()"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root, _ = prepare(["jpeg:90"], tmp_path_factory.getbasetemp() / "xdg" / "tileserver" / "demo", progress=False)
    with LocalServer(root, cache_mb=128) as running:
        yield running


@pytest.fixture(scope="module")
def slides(server) -> list[dict]:
    with urlopen(f"{server.url}/api/slides") as response:
        return json.load(response)["slides"]


class Watched:
    """A page, and every console error, failed request and HTTP error it met."""

    def __init__(self, page):
        self.page, self.errors, self.images = page, [], []
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url} {r.failure}"))
        page.on("response", self._response)

    def _response(self, response):
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.url}")
        if "/iiif/3/" in response.url and response.url.endswith(".jpg"):
            self.images.append(response.url)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def watched(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(120_000)  # waits and clicks on a loaded 2-core CI machine, not a speed bound
    yield Watched(context.new_page())
    context.close()


def drawn_share(png: bytes) -> float:
    """The share of pixels clearly darker than white glass (tissue drawn on the canvas)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return float(((255 - pixels).sum(axis=2) > 90).mean())


def test_slide_list_shows_every_slide_with_its_thumbnail(server, slides, watched, tmp_path):
    page = watched.page
    page.goto(f"{server.url}/")
    page.wait_for_function(f"document.querySelectorAll('#slides tbody tr').length === {len(slides)}")
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    rows = page.locator("#slides tbody tr")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.slideId)")) == sorted(s["id"] for s in slides)
    stored = page.locator("tr", has_text="jpeg:90 100%")
    assert stored.count() == 1
    assert "MB" in stored.inner_text()
    page.screenshot(path=tmp_path / "list.png", full_page=True)
    assert watched.errors == []


def test_viewer_draws_tiles_zooms_and_shows_scale_and_iiif(server, slides, watched, tmp_path):
    slide = next(s for s in slides if s["kind"] == "neural-tiff")
    page = watched.page
    page.goto(f"{server.url}/view/{slide['id']}")
    page.wait_for_function(LOADED, timeout=60_000)
    home = page.locator("#viewer").screenshot(path=tmp_path / "viewer-home.png")
    assert drawn_share(home) > 0.05  # the tissue of the home view, not a blank canvas
    assert watched.images, "no IIIF tile was requested"

    # zoom to full resolution on the slide's centre: level-0 tiles (256 px regions, 256 px out)
    before = len(watched.images)
    page.evaluate("""() => {
        const vp = viewer.viewport;
        vp.zoomTo(vp.imageToViewportZoom(1.0), vp.getCenter(), true);
    }""")
    page.wait_for_function(LOADED, timeout=60_000)
    zoomed = page.locator("#viewer").screenshot(path=tmp_path / "viewer-full-resolution.png")
    assert drawn_share(zoomed) > 0.05
    new = watched.images[before:]
    assert any(url.split("/")[-3] == "256,256" and url.split("/")[-4].endswith(",256,256") for url in new), new

    # scale bar: its label over its width matches mpp at 1 screen px per image px
    label = page.locator("#scalebar span").inner_text()
    width = page.locator("#scalebar").evaluate("e => e.getBoundingClientRect().width")
    value, unit = label.split()
    um = float(value) * {"µm": 1.0, "mm": 1000.0}[unit]
    assert um / width == pytest.approx(slide["mpp"][0], rel=0.05)

    iiif = page.locator("#iiif-url").input_value()
    assert iiif == f"{server.url}{slide['urls']['iiif3']}"
    with urlopen(iiif) as response:
        assert json.load(response)["width"] == slide["width"]
    assert not page.locator("#heatmap").is_visible()  # no decisions page: no heatmap toggle
    page.screenshot(path=tmp_path / "viewer-page.png")
    assert watched.errors == []


@pytest.fixture(scope="module")
def adaptive_server(tmp_path_factory, cmu_svs):
    """A server over one adaptive-coded slide (keep, compress and glass tiles)."""
    from .adaptive_fixtures import adaptive_models, adaptive_slide

    work = tmp_path_factory.mktemp("browser-adaptive")
    patch = pytest.MonkeyPatch()
    patch.setenv("TILESERVER_MODELS", str(adaptive_models(work / "models")))
    root = work / "root"
    root.mkdir()
    adaptive_slide(cmu_svs, root)
    (root / "adaptive-source.png").unlink()
    try:
        with LocalServer(root, cache_mb=64) as running:
            yield running
    finally:
        patch.undo()


def colour_shares(png: bytes) -> tuple[float, float]:
    """The shares of clearly blue and of strongly red pixels in a screenshot."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    r, b = rgb[..., 0], rgb[..., 2]
    return float(((b - r) > 40).mean()), float(((r - b) > 90).mean())


HEATMAP_LOADED = "() => window.heatmapItem && heatmapItem.getFullyLoaded()"


def test_viewer_overlays_the_decision_heatmap(adaptive_server, watched, tmp_path):
    page = watched.page
    page.goto(f"{adaptive_server.url}/view/adaptive.tif")
    page.wait_for_function(LOADED, timeout=120_000)
    assert page.locator("#heatmap").is_visible()
    assert "tissue tiles compressed" in page.locator("#facts").inner_text()
    off = page.locator("#viewer").screenshot(path=tmp_path / "heatmap-off.png")

    page.locator("#heatmap-toggle").check()
    page.wait_for_function(HEATMAP_LOADED, timeout=60_000)
    page.wait_for_function("() => !viewer.world.needsDraw()")
    on = page.locator("#viewer").screenshot(path=tmp_path / "heatmap-on.png")
    (blue_off, red_off), (blue_on, red_on) = colour_shares(off), colour_shares(on)
    assert blue_on > blue_off + 0.02  # compressed tiles drawn blue
    assert red_on > red_off + 0.02  # kept tiles drawn red
    bounds = page.evaluate("() => { const b = heatmapItem.getBounds(); const s = viewer.world.getItemAt(0)"
                           ".getBounds(); return [b.x, b.y, b.width, s.width]; }")
    assert bounds[:2] == [0, 0] and bounds[2] >= bounds[3]  # laid from the slide's corner, every column

    page.locator("#heatmap-toggle").uncheck()
    page.wait_for_function("() => heatmapItem.getOpacity() === 0 && !viewer.world.needsDraw()")
    again = page.locator("#viewer").screenshot(path=tmp_path / "heatmap-off-again.png")
    assert colour_shares(again)[0] == pytest.approx(blue_off, abs=0.01)
    assert watched.errors == []
