"""The decode engine: every tile the server sends comes from ``DecodeEngine.tile``.

- Decoded tiles live in an LRU bounded in bytes, keyed by (file identity, level, col, row), so
  a replaced file never hits the old entries.
- Concurrent requests for one tile share one decode (coalescing). When every waiter of a decode
  has gone (clients disconnected), the decode is cancelled: if its CPU stage has not started
  it never runs; if it waits for a batch it is dropped from it.
- The CPU stage (reading the payload, ``Codec.prepare``, or read_region for standard slides)
  runs in a thread pool; the device stage (``Codec.synthesize``) runs batched on one device
  thread. With ``decode_processes``, the ``prepare`` of codecs that hold the GIL (learned
  tiles' entropy decoding) runs in that many worker processes instead (engine.processes).
  Glass tiles are a constant of the background colour and are never decoded.
The engine only uses the Codec interface: a new codec is a registration in tileserver.codecs.
"""
from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
from cachetools import LRUCache
from PIL import Image

from tileserver import codecs
from tileserver.codecs.base import Codec
from tileserver.engine.batcher import Batcher
from tileserver.engine.processes import PreparePool
from tileserver.engine.stats import EngineStats
from tileserver.errors import InputError
from tileserver.slides.tiled import Encoded, TiledSlide
from tileserver.slides.tiles import plan_region

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """auto -> cuda when torch sees a GPU, else cpu; cuda without a GPU is refused at startup."""
    if device not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "cpu":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise InputError("--device cuda: torch sees no CUDA device here (use auto or cpu)")
    return "cpu"


@lru_cache(maxsize=64)
def glass_tile(tile_size: int, background: tuple[int, int, int]) -> np.ndarray:
    tile = np.empty((tile_size, tile_size, 3), np.uint8)
    tile[:] = background
    tile.flags.writeable = False
    return tile


@dataclass
class _Prepared:
    codec: Codec
    batch_key: Any
    value: Any


@dataclass
class _ToProcess:
    """A payload whose ``prepare`` goes to the decode processes."""

    codec: Codec
    body: bytes


@dataclass
class _Flight:
    task: asyncio.Task
    waiters: int = 0


class DecodeEngine:
    def __init__(self, device: str = "auto", cache_bytes: int = 768 << 20, cpu_workers: int | None = None,
                 batch_wait: float = 0.004, max_batch: int = 16, stats: EngineStats | None = None,
                 decode_processes: int = 0):
        if decode_processes < 0:
            raise InputError("decode processes must be 0 (threads only) or more")
        self.device = resolve_device(device)
        self.stats = stats or EngineStats()
        self.tiles: LRUCache = LRUCache(maxsize=cache_bytes, getsizeof=lambda a: a.nbytes)
        self._inflight: dict[tuple, _Flight] = {}
        self._cpu = ThreadPoolExecutor(cpu_workers or os.cpu_count() or 2, thread_name_prefix="engine-cpu")
        self._device = ThreadPoolExecutor(1, thread_name_prefix="engine-device")
        self.batcher = Batcher(self._device, self.stats, batch_wait, max_batch)
        self._processes = PreparePool(decode_processes) if decode_processes else None

    async def run_cpu(self, fn: Callable, *args) -> Any:
        """Run blocking work (image encoding, file opening) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    async def tile(self, slide: TiledSlide, level: int, col: int, row: int) -> np.ndarray:
        """The pixels of one tile (valid size, read-only). Raises what the codec or reader raised."""
        key = (slide.identity, level, col, row)
        cached = self.tiles.get(key)
        if cached is not None:
            self.stats.hits.labels("decoded").inc()
            return cached
        flight = self._inflight.get(key)
        if flight is None:
            self.stats.misses.labels("decoded").inc()
            flight = _Flight(asyncio.ensure_future(self._produce(slide, level, col, row, key)))
            self._inflight[key] = flight
            flight.task.add_done_callback(lambda _: self._land(key, flight))
        else:
            self.stats.coalesced.inc()
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                self._inflight.pop(key, None)
                flight.task.cancel()

    def _land(self, key: tuple, flight: _Flight) -> None:
        if self._inflight.get(key) is flight:  # not a newer flight for the same tile
            del self._inflight[key]

    async def _produce(self, slide: TiledSlide, level: int, col: int, row: int, key: tuple) -> np.ndarray:
        try:
            result = await self.run_cpu(self._cpu_stage, slide, level, col, row)
        except asyncio.CancelledError:
            self.stats.dropped.inc()
            raise
        except Exception as exc:
            self.stats.errors.labels(type(exc).__name__).inc()
            raise
        width, height = slide.pyramid.tile_size_at(level, col, row)
        if result is glass_tile(slide.pyramid.tile_size, slide.background):
            return result[:height, :width]  # a read-only view: nothing to cache
        if isinstance(result, _ToProcess):
            result = await self._prepare_in_process(result)
        if isinstance(result, _Prepared):
            result = await self._device_stage(result)
        if result.shape[:2] != (height, width):
            result = np.ascontiguousarray(result[:height, :width])
        result.flags.writeable = False
        self.tiles[key] = result
        self.stats.cache_bytes.labels("decoded").set(self.tiles.currsize)
        return result

    def _cpu_stage(self, slide: TiledSlide, level: int, col: int, row: int) -> np.ndarray | _Prepared:
        started = time.perf_counter()
        fetched = slide.fetch(level, col, row)
        if fetched is None:
            self.stats.glass.inc()
            return glass_tile(slide.pyramid.tile_size, slide.background)
        if not isinstance(fetched, Encoded):
            self.stats.source_reads.observe(time.perf_counter() - started)
            return fetched
        codec = codecs.decoder(fetched.codec_id, self.device)
        if self._processes is not None and codec.prepare_holds_gil:
            return _ToProcess(codec, fetched.body)
        prepared = codec.prepare(fetched.body)
        self.stats.decode.labels(codec.name, "prepare").observe(time.perf_counter() - started)
        return _Prepared(codec, codec.batch_key(fetched.body), prepared)

    async def _prepare_in_process(self, job: _ToProcess) -> _Prepared:
        codec, started = job.codec, time.perf_counter()
        try:
            value = await self._processes.prepare(codec.codec_id, job.body)
        except Exception as exc:
            self.stats.errors.labels(type(exc).__name__).inc()
            raise
        self.stats.decode.labels(codec.name, "prepare").observe(time.perf_counter() - started)
        return _Prepared(codec, codec.batch_key(job.body), value)

    async def _device_stage(self, prepared: _Prepared) -> np.ndarray:
        codec = prepared.codec
        if type(codec).synthesize is Codec.synthesize:  # the identity stage of classical codecs
            return codec.synthesize([prepared.value])[0]
        try:
            return await self.batcher.synthesize(codec, prepared.batch_key, prepared.value)
        except Exception as exc:
            self.stats.errors.labels(type(exc).__name__).inc()
            raise

    async def region(self, slide: TiledSlide, x: int, y: int, w: int, h: int, out_w: int, out_h: int) -> np.ndarray:
        """A region in level-0 pixels, scaled to out_w x out_h, assembled from stored tiles."""
        plan = plan_region(slide.pyramid, x, y, w, h, out_w, out_h)
        tiles = await asyncio.gather(
            *(self.tile(slide, plan.level, c, r) for r in plan.rows for c in plan.cols)
        )
        box = plan.box
        if plan.single_tile and box == (0, 0, tiles[0].shape[1], tiles[0].shape[0]) and plan.out_size == box[2:]:
            return tiles[0]
        return await self.run_cpu(_assemble, plan, tiles, slide.pyramid.tile_size)

    def close(self) -> None:
        self._cpu.shutdown(wait=False, cancel_futures=True)
        self._device.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._processes.close()


def _assemble(plan, tiles: list[np.ndarray], tile_size: int) -> np.ndarray:
    last_w, last_h = tiles[-1].shape[1], tiles[-1].shape[0]
    width = (len(plan.cols) - 1) * tile_size + last_w
    height = (len(plan.rows) - 1) * tile_size + last_h
    canvas = np.empty((height, width, 3), np.uint8)
    index = 0
    for j in range(len(plan.rows)):
        for i in range(len(plan.cols)):
            tile = tiles[index]
            canvas[j * tile_size : j * tile_size + tile.shape[0], i * tile_size : i * tile_size + tile.shape[1]] = tile
            index += 1
    image = Image.fromarray(canvas)
    box = plan.box
    if plan.out_size == (round(box[2] - box[0]), round(box[3] - box[1])) and all(float(b).is_integer() for b in box):
        return np.asarray(image.crop(tuple(int(b) for b in box)))
    return np.asarray(image.resize(plan.out_size, Image.Resampling.LANCZOS, box=box))
