"""Helpers of the serving-at-scale tests: a real redis-server, servers started side by side,
metrics read back from /metrics, DeepZoom PNG tiles checked pixel for pixel."""
from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tileserver.loadtest.local_server import LocalServer
from tileserver.loadtest.redis_server import LocalRedis

from .engine_fixtures import expected_tile

DZ_TOP = 12  # cmu-1-small-region (2220 x 2967): DeepZoom level 12 is stored level 0


@pytest.fixture
def redis_server() -> Iterator[LocalRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian redis-server)")
    with LocalRedis(maxmemory_mb=64) as server:
        yield server


@contextlib.contextmanager
def running(*servers: LocalServer) -> Iterator[tuple[LocalServer, ...]]:
    """Start the servers at the same time (each loads torch: seconds), stop them all after."""
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(len(servers)) as pool:
            futures = [pool.submit(s.__enter__) for s in servers]
        for server, future in zip(servers, futures):
            if future.exception() is None:
                stack.callback(server.__exit__)
        for future in futures:
            future.result()  # the first failure, once every started server will be stopped
        yield servers


def sample(url: str, name: str, **labels) -> float:
    """One sample of a server's /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def tile_url(base: str, slide_id: str, col: int, row: int) -> str:
    return f"{base}/deepzoom/{slide_id}_files/{DZ_TOP}/{col}_{row}.png"


def assert_tile(response: httpx.Response, slide_path, col: int, row: int) -> None:
    """200, and exactly the pixels of the stored tile (PNG: lossless)."""
    assert response.status_code == 200, response.text
    pixels = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    assert np.array_equal(pixels, expected_tile(slide_path, 0, col, row))
