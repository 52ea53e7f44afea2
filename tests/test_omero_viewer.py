"""The viewer page shows a slide's "Open in QuPath" URL, absolute, beside the IIIF URLs (headless
Debian chromium, driven by Playwright, on a live server)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.request import urlopen

import pytest

from tileserver.loadtest.local_server import LocalServer

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (/usr/bin/chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api")


def test_viewer_shows_an_absolute_qupath_url_that_opens(tmp_path, cmu_svs):
    shutil.copy(cmu_svs, tmp_path / "cmu.svs")
    with LocalServer(tmp_path, cache_mb=64) as server, sync_api.sync_playwright() as playwright:
        with urlopen(f"{server.url}/api/slides/cmu.svs") as response:
            slide = json.load(response)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/view/cmu.svs")
            page.wait_for_function("document.getElementById('qupath-url').value !== ''")
            shown = page.locator("#qupath-url").input_value()
        finally:
            browser.close()
    assert shown == f"{server.url}/omero/webclient/?show=image-{slide['omero_id']}"
    assert shown == f"{server.url}{slide['urls']['qupath']}"
