"""Decode engine: coalescing, micro-batching, dropping abandoned decodes, region assembly."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from PIL import Image

from tileserver.codecs.classical import JpegCodec
from tileserver.codecs.learned import LearnedCodec
from tileserver.engine import DecodeEngine
from tileserver.slides.tiled import StoredSlide

from .engine_fixtures import crop_source, encode, expected_tile, learned_crop


@pytest.fixture(scope="module")
def jpeg_path(tmp_path_factory, cmu_svs):
    work = tmp_path_factory.mktemp("engine-jpeg")
    return encode(crop_source(cmu_svs, work / "crop.png", 600, 800, 1000, 700), work / "jpeg.tif", "jpeg:90")


@pytest.fixture(scope="module")
def learned_path(tmp_path_factory, cmu_svs):
    with learned_crop(tmp_path_factory.mktemp("engine-learned"), cmu_svs, 1024, 512) as path:
        yield path


def counting(monkeypatch, cls, method: str) -> list:
    """Record every call of a real codec method (arguments' sizes), still calling it."""
    calls, original = [], getattr(cls, method)

    def spy(self, arg):
        calls.append(len(arg))
        return original(self, arg)

    monkeypatch.setattr(cls, method, spy)
    return calls


def test_concurrent_identical_requests_decode_once(jpeg_path, monkeypatch):
    calls = counting(monkeypatch, JpegCodec, "prepare")
    slide = StoredSlide(jpeg_path)

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2)
        tiles = await asyncio.gather(*(engine.tile(slide, 0, 1, 1) for _ in range(20)))
        again = await engine.tile(slide, 0, 1, 1)
        engine.close()
        return tiles, again

    tiles, again = asyncio.run(run())
    assert len(calls) == 1
    assert all(t is tiles[0] for t in tiles) and again is tiles[0]
    assert np.array_equal(tiles[0], expected_tile(jpeg_path, 0, 1, 1))


def test_learned_tiles_are_synthesized_in_batches(learned_path, monkeypatch):
    sizes = counting(monkeypatch, LearnedCodec, "synthesize")
    slide = StoredSlide(learned_path)
    across, down = slide.pyramid.grid(0)
    cells = [(c, r) for r in range(down) for c in range(across)]

    async def run():
        # a window long enough that every tile of the level joins, whatever the machine's load
        engine = DecodeEngine("cpu", cpu_workers=2, batch_wait=2.0, max_batch=len(cells))
        tiles = await asyncio.gather(*(engine.tile(slide, 0, c, r) for c, r in cells))
        engine.close()
        return tiles, engine.stats

    tiles, stats = asyncio.run(run())
    assert max(sizes) > 1 and sum(sizes) == len(cells)
    batch_count = stats.registry.get_sample_value("tileserver_decode_batch_size_count", {"codec": "learned"})
    assert batch_count == len(sizes)
    for (c, r), tile in zip(cells, tiles):
        alone = expected_tile(learned_path, 0, c, r)
        assert tile.shape == alone.shape
        assert np.abs(tile.astype(int) - alone).max() <= 1  # batched g_s vs one tile: float rounding


def test_abandoned_decodes_never_start(jpeg_path, monkeypatch):
    calls = counting(monkeypatch, JpegCodec, "prepare")
    slide = StoredSlide(jpeg_path)
    release = threading.Event()

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=1)
        blocker = asyncio.ensure_future(engine.run_cpu(release.wait, 30))  # holds the only worker
        tasks = [asyncio.ensure_future(engine.tile(slide, 0, c, 0)) for c in range(4)]
        await asyncio.sleep(0.05)  # let every request queue its CPU stage behind the blocker
        for task in tasks[1:]:
            task.cancel()  # what the server does when these clients disconnect
        for _ in range(20):  # loop turns for the cancellation to reach the executor's queue
            await asyncio.sleep(0)
        release.set()
        await blocker
        kept = await tasks[0]
        results = await asyncio.gather(*tasks[1:], return_exceptions=True)
        engine.close()
        return kept, results, engine.stats

    kept, results, stats = asyncio.run(run())
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert len(calls) == 1
    assert stats.registry.get_sample_value("tileserver_decodes_dropped_total") == 3
    assert np.array_equal(kept, expected_tile(jpeg_path, 0, 0, 0))


def test_abandoned_tiles_leave_the_batch(learned_path, monkeypatch):
    prepared = counting(monkeypatch, LearnedCodec, "prepare")
    synthesized = counting(monkeypatch, LearnedCodec, "synthesize")
    slide = StoredSlide(learned_path)

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2, batch_wait=1.0, max_batch=64)
        tasks = [asyncio.ensure_future(engine.tile(slide, 0, c, 1)) for c in range(3)]
        for _ in range(600):  # bounded wait until all three wait in the batch window
            if len(prepared) == 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.sleep(1.5)  # the window closes with nobody left in it
        engine.close()
        return engine.stats

    stats = asyncio.run(run())
    assert len(prepared) == 3
    assert synthesized == []
    assert stats.registry.get_sample_value("tileserver_decodes_dropped_total") == 3


def test_region_is_the_mosaic_of_stored_tiles(jpeg_path):
    slide = StoredSlide(jpeg_path)
    width, height = slide.pyramid.level_size(0)
    across, down = slide.pyramid.grid(0)
    t = slide.pyramid.tile_size
    mosaic = np.empty((height, width, 3), np.uint8)
    for r in range(down):
        for c in range(across):
            tile = expected_tile(jpeg_path, 0, c, r)
            mosaic[r * t : r * t + tile.shape[0], c * t : c * t + tile.shape[1]] = tile

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2)
        crops = [await engine.region(slide, x, y, w, h, w, h)
                 for x, y, w, h in [(0, 0, 256, 256), (100, 37, 300, 500), (700, 400, 300, 300)]]
        half = await engine.region(slide, 0, 0, width, height, width // 2, height // 2)
        engine.close()
        return crops, half

    crops, half = asyncio.run(run())
    assert np.array_equal(crops[0], mosaic[:256, :256])
    assert np.array_equal(crops[1], mosaic[37:537, 100:400])
    assert np.array_equal(crops[2], mosaic[400:700, 700:1000])
    assert half.shape == (height // 2, width // 2, 3)
    level1 = expected_tile(jpeg_path, 1, 0, 0)
    assert np.abs(half[:200, :200].astype(int) - level1[:200, :200]).mean() < 1  # read from level 1


def test_glass_is_a_constant_never_decoded(encoded_cmu, monkeypatch):
    calls = counting(monkeypatch, JpegCodec, "prepare")
    slide = StoredSlide(encoded_cmu)
    across, down = slide.pyramid.grid(0)
    glass = [(c, r) for r in range(down) for c in range(across) if slide.fetch(0, c, r) is None]
    assert glass, "the encoded slide has glass tiles"

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2)
        tiles = await asyncio.gather(*(engine.tile(slide, 0, c, r) for c, r in glass))
        engine.close()
        return tiles, engine

    tiles, engine = asyncio.run(run())
    assert calls == []
    assert engine.stats.registry.get_sample_value("tileserver_glass_tiles_total") == len(glass)
    assert len(engine.tiles) == 0  # constants take no room in the cache
    for (c, r), tile in zip(glass, tiles):
        assert np.array_equal(tile, expected_tile(encoded_cmu, 0, c, r))
        assert not tile.flags.writeable


def test_decoded_cache_is_bounded_in_bytes(jpeg_path):
    slide = StoredSlide(jpeg_path)
    budget = 3 * 256 * 256 * 3  # three full tiles

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2, cache_bytes=budget)
        across, down = slide.pyramid.grid(0)
        for r in range(down):
            for c in range(across):
                await engine.tile(slide, 0, c, r)
        engine.close()
        return engine

    engine = asyncio.run(run())
    across, down = slide.pyramid.grid(0)
    assert 0 < engine.tiles.currsize <= budget and 3 <= len(engine.tiles) < across * down
    assert engine.stats.registry.get_sample_value("tileserver_cache_bytes", {"cache": "decoded"}) <= budget


@pytest.mark.parametrize("tile_size", [240, 512])
def test_other_tile_sizes_assemble_the_same_regions(tmp_path, cmu_svs, tile_size):
    from tileserver.encode.encoder import EncodeSettings, encode_slide

    source = crop_source(cmu_svs, tmp_path / "crop.png", 600, 800, 700, 500)
    path = tmp_path / "slide.tif"
    encode_slide(source, path, EncodeSettings(codecs=["jxl:0"], fallback="jxl:0", glass="keep",
                                              tile_size=tile_size), progress=False)
    slide = StoredSlide(path)
    assert slide.pyramid.tile_size == tile_size

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2)
        region = await engine.region(slide, 200, 100, 400, 300, 400, 300)
        engine.close()
        return region

    region = asyncio.run(run())
    across, down = slide.pyramid.grid(0)
    mosaic = np.concatenate([
        np.concatenate([expected_tile(path, 0, c, r) for c in range(across)], axis=1) for r in range(down)
    ])
    assert mosaic.shape == (500, 700, 3)
    assert np.array_equal(region, mosaic[100:400, 200:600])
    original = np.asarray(Image.open(source).convert("RGB"))[100:400, 200:600]
    assert np.abs(region.astype(int) - original).mean() < 0.1  # jxl:0: near-lossless
