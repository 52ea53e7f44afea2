"""A Locust user that browses like an OpenSeadragon session on the IIIF 3.0 endpoint.

Each user opens a slide (info.json, the thumbnail to find tissue), shows the home view, then
zooms and pans over tissue; every view sends the burst of tile requests OpenSeadragon would send
for a 1280x800 viewport at that zoom: the tiles of the level that fits and of the next coarser
one, six at a time (a browser's connections per host), with OpenSeadragon's tile URLs.

Environment: TILESERVER_SLIDES restricts the slides (comma-separated ids, default: all of
/api/slides). The host must be on 127.0.0.1 or localhost; anything else stops the run.
"""
from __future__ import annotations

import os
import random
from urllib.parse import quote, urlsplit

from gevent.pool import Pool
from locust import HttpUser, between, events, task

from tileserver.loadtest.runner import LOOPBACK
from tileserver.loadtest.viewport import VIEWPORT, Slide, tile_urls, tissue_points

CONNECTIONS = 6
STEPS_PER_SESSION = 8


@events.test_start.add_listener
def _loopback_only(environment, **_kwargs) -> None:
    host = urlsplit(environment.host or "").hostname
    if host not in LOOPBACK:
        raise RuntimeError(f"this load test only targets a local server, not {environment.host!r}")


class ViewerUser(HttpUser):
    """One pathologist with an OpenSeadragon window."""

    wait_time = between(0.3, 1.5)  # reading the screen between two moves

    def on_start(self) -> None:
        wanted = [s for s in os.environ.get("TILESERVER_SLIDES", "").split(",") if s]
        listed = self.client.get("/api/slides", name="/api/slides").json()["slides"]
        self.slide_ids = wanted or [entry["id"] for entry in listed]
        if not self.slide_ids:
            raise RuntimeError("the server lists no slides")
        self.pool = Pool(CONNECTIONS)
        self.open_slide()

    def open_slide(self) -> None:
        slide_id = random.choice(self.slide_ids)
        base = f"/iiif/3/{quote(slide_id, safe='')}"
        info = self.client.get(f"{base}/info.json", name="info.json").json()
        tiles = info["tiles"][0]
        thumb = self.client.get(f"/api/slides/{quote(slide_id)}/thumbnail?size=64", name="thumbnail").content
        self.slide = Slide(base, info["width"], info["height"], tiles["width"], sorted(tiles["scaleFactors"]),
                           tissue_points(thumb))
        fits = [s for s in self.slide.scale_factors
                if self.slide.width / s <= VIEWPORT[0] and self.slide.height / s <= VIEWPORT[1]]
        self.scale = fits[0] if fits else self.slide.scale_factors[-1]
        self.center = (self.slide.width / 2, self.slide.height / 2)
        self.steps = 0
        self.show()

    def show(self) -> None:
        """The burst for the current view: this level's tiles and the next coarser level's."""
        factors = self.slide.scale_factors
        coarser = [s for s in factors if s > self.scale][:1]
        urls = [url for scale in (*coarser, self.scale) for url in tile_urls(self.slide, scale, self.center)]
        self.pool.map(self.fetch_tile, urls)

    def fetch_tile(self, url: str) -> None:
        with self.client.get(url, name="tile", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif response.headers.get("content-type") != "image/jpeg" or not response.content:
                response.failure("not a JPEG")

    @task
    def move(self) -> None:
        """Zoom in on tissue, zoom out, or pan by half a viewport; then start over on a new slide."""
        self.steps += 1
        if self.steps > STEPS_PER_SESSION:
            self.open_slide()
            return
        factors = self.slide.scale_factors
        action = random.choices(["in", "out", "pan"], weights=[3, 1, 2])[0]
        if action == "in" and self.scale > factors[0]:
            fx, fy = random.choice(self.slide.tissue)
            self.scale //= 2
            self.center = (fx * self.slide.width, fy * self.slide.height)
        elif action == "out" and self.scale < factors[-1]:
            self.scale *= 2
        else:
            dx, dy = random.choice([(1, 0), (-1, 0), (0, 1), (0, -1)])
            x = self.center[0] + dx * VIEWPORT[0] * self.scale / 2
            y = self.center[1] + dy * VIEWPORT[1] * self.scale / 2
            self.center = (min(max(x, 0), self.slide.width), min(max(y, 0), self.slide.height))
        self.show()
