"""The Redis tier, with a real redis-server on 127.0.0.1 and real `tileserver serve` processes:
shared between servers, never stale after a slide is replaced, and never failing a request
when Redis dies or stalls (tiles are decoded; the server reconnects when Redis is back)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import threading
import time

import httpx
import pytest

from tileserver.engine.shared_cache import SharedCache
from tileserver.engine.stats import EngineStats
from tileserver.loadtest.local_server import LocalServer, free_port
from tileserver.loadtest.redis_server import LocalRedis

from .engine_fixtures import encode
from .scale_helpers import assert_tile, redis_server, running, sample, tile_url  # noqa: F401 (fixture)

RECONNECT_DEADLINE_S = 60  # a failure bound, not a timing assert


@pytest.fixture(scope="module")
def replacement(tmp_path_factory, cmu_svs):
    """The same slide, re-encoded differently (JPEG q60): other pixels under the same name."""
    return encode(cmu_svs, tmp_path_factory.mktemp("replacement") / "cmu-q60.tif", "jpeg:60", glass="zero")


def with_redis(root, url: str, *options: str) -> LocalServer:
    return LocalServer(root, cache_mb=64, options=("--redis", url, *options))


def test_a_tile_cached_by_one_server_is_served_from_redis_by_another(tmp_path, encoded_cmu, redis_server):
    shutil.copy(encoded_cmu, tmp_path / "cmu.tif")
    with running(with_redis(tmp_path, redis_server.url), with_redis(tmp_path, redis_server.url)) as (a, b):
        first = httpx.get(tile_url(a.url, "cmu.tif", 3, 4), timeout=60)
        assert_tile(first, tmp_path / "cmu.tif", 3, 4)
        assert sample(a.url, "tileserver_cache_misses_total", cache="redis") == 1
        second = httpx.get(tile_url(b.url, "cmu.tif", 3, 4), timeout=60)
        assert second.content == first.content
        assert sample(b.url, "tileserver_cache_hits_total", cache="redis") == 1
        assert sample(b.url, "tileserver_cache_misses_total", cache="decoded") == 0  # nothing decoded
    assert redis_server.client().dbsize() == 1


def test_a_replaced_slide_is_never_served_from_a_stale_entry(tmp_path, encoded_cmu, replacement, redis_server):
    slide = tmp_path / "cmu.tif"
    shutil.copy(encoded_cmu, slide)
    with running(with_redis(tmp_path, redis_server.url), with_redis(tmp_path, redis_server.url)) as (a, b):
        assert_tile(httpx.get(tile_url(a.url, "cmu.tif", 3, 4), timeout=60), encoded_cmu, 3, 4)
        old = os.stat(slide)
        staged = tmp_path / ".cmu.tif.part"
        shutil.copy(replacement, staged)
        os.utime(staged, ns=(old.st_atime_ns, old.st_mtime_ns))  # the same mtime: content must tell
        os.replace(staged, slide)
        for server in (b, a):  # b: only Redis knows the old tile; a: its own caches too
            assert_tile(httpx.get(tile_url(server.url, "cmu.tif", 3, 4), timeout=60), replacement, 3, 4)
        assert sample(b.url, "tileserver_cache_hits_total", cache="redis") == 0
    assert redis_server.client().dbsize() == 2  # one entry per version of the file


def test_killing_redis_mid_run_loses_no_request(tmp_path, encoded_cmu, redis_server):
    shutil.copy(encoded_cmu, tmp_path / "cmu.tif")
    cells = [(c, r) for r in range(6) for c in range(8)]
    failures, answered = [], []
    with with_redis(tmp_path, redis_server.url) as server, httpx.Client(timeout=60) as client:
        killed = threading.Event()

        def browse():
            for col, row in cells:
                if len(answered) == len(cells) // 3:
                    killed.wait(30)
                response = client.get(tile_url(server.url, "cmu.tif", col, row))
                answered.append((response, col, row))

        worker = threading.Thread(target=browse)
        worker.start()
        while len(answered) < len(cells) // 3 and worker.is_alive():
            time.sleep(0.01)
        redis_server.stop()
        killed.set()
        worker.join()
        for response, col, row in answered:
            try:
                assert_tile(response, tmp_path / "cmu.tif", col, row)
            except AssertionError as exc:
                failures.append((col, row, exc))
        assert not failures and len(answered) == len(cells)
        assert sample(server.url, "tileserver_cache_errors_total", cache="redis") >= 1
        assert "shared cache" in server.output() and server.output().count("unavailable") == 1  # logged once

        redis_server.start()  # back on the same port, empty: the server reconnects after its back-off
        unseen = iter([(c, r) for r in range(6, 12) for c in range(9)])  # not in the server's own cache
        deadline = time.monotonic() + RECONNECT_DEADLINE_S
        while redis_server.client().dbsize() == 0:
            col, row = next(unseen)
            assert time.monotonic() < deadline, "the server did not use Redis again"
            assert_tile(client.get(tile_url(server.url, "cmu.tif", col, row)), tmp_path / "cmu.tif", col, row)
            time.sleep(0.5)
        assert sample(server.url, "tileserver_cache_up", cache="redis") == 1


def test_a_stalled_redis_costs_a_timeout_not_a_request(tmp_path, encoded_cmu, redis_server):
    """Redis stopped (SIGSTOP: connections open, no answers): each request is still served."""
    shutil.copy(encoded_cmu, tmp_path / "cmu.tif")
    with with_redis(tmp_path, redis_server.url) as server, httpx.Client(timeout=60) as client:
        assert_tile(client.get(tile_url(server.url, "cmu.tif", 0, 0)), tmp_path / "cmu.tif", 0, 0)
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            for col in range(1, 6):
                assert_tile(client.get(tile_url(server.url, "cmu.tif", col, 0)), tmp_path / "cmu.tif", col, 0)
            assert sample(server.url, "tileserver_cache_errors_total", cache="redis") >= 1
            assert sample(server.url, "tileserver_cache_up", cache="redis") == 0
        finally:
            redis_server.process.send_signal(signal.SIGCONT)


def test_an_unreachable_redis_is_logged_once_per_outage(caplog):
    """Ten lookups at once against a port nobody listens on: ten misses for the caller, ten
    errors counted, one log line, the tier marked down."""
    stats = EngineStats()
    cache = SharedCache(f"redis://127.0.0.1:{free_port()}/0", stats)

    async def run():
        try:
            return await asyncio.gather(*(cache.get(f"key{i}") for i in range(10)))
        finally:
            await cache.close()

    with caplog.at_level(logging.WARNING, logger="tileserver.shared_cache"):
        assert asyncio.run(run()) == [None] * 10
    assert stats.registry.get_sample_value("tileserver_cache_errors_total", {"cache": "redis"}) == 10
    assert stats.registry.get_sample_value("tileserver_cache_up", {"cache": "redis"}) == 0
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [f"shared cache {cache.url} unavailable"]


def test_replicas_with_copies_of_a_slide_agree_on_etags(tmp_path, encoded_cmu):
    """Two servers, each with its own copy (another inode, the mtime kept, as rsync -a does):
    one answers the other's ETag with 304, so revalidating through a load balancer works."""
    from tileserver.server.app import create_app

    from .live_server import serve

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy2(encoded_cmu, tmp_path / name / "cmu.tif")
    with serve(create_app(tmp_path / "a", device="cpu", cache_mb=32)) as a, \
            serve(create_app(tmp_path / "b", device="cpu", cache_mb=32)) as b:
        first = httpx.get(tile_url(a, "cmu.tif", 2, 2), timeout=60)
        again = httpx.get(tile_url(b, "cmu.tif", 2, 2), headers={"If-None-Match": first.headers["etag"]}, timeout=60)
    assert first.status_code == 200 and again.status_code == 304


def test_a_full_redis_without_eviction_refuses_writes_without_a_back_off(caplog):
    """noeviction (Redis's default) and a full memory: writes are refused and counted, logged
    once, and reads go on (it answers; only an unreachable Redis is backed off)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian redis-server)")
    stats = EngineStats()

    def sample_of(name: str) -> float:
        return stats.registry.get_sample_value(name, {"cache": "redis"}) or 0

    async def run(url: str) -> None:
        cache = SharedCache(url, stats)
        try:
            for i in range(30):
                await cache.set(f"tile{i}", bytes(200_000))
            refused = sample_of("tileserver_cache_errors_total")
            await cache.get("tile0")
            assert sample_of("tileserver_cache_errors_total") == refused >= 1
        finally:
            await cache.close()

    with LocalRedis(maxmemory_mb=2, policy="noeviction") as full, \
            caplog.at_level(logging.WARNING, logger="tileserver.shared_cache"):
        asyncio.run(run(full.url))
    assert sample_of("tileserver_cache_hits_total") + sample_of("tileserver_cache_misses_total") == 1
    assert sample_of("tileserver_cache_up") == 1
    assert len(caplog.records) == 1 and "allkeys-lru" in caplog.records[0].getMessage()
