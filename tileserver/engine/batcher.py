"""Micro-batching of the device stage, on one device thread.

Prepared tiles wait in one queue per (codec, batch key). When the device is idle, a queue is
run ``wait`` seconds after its first tile arrived, or at once when it holds ``max_batch``.
While the device is busy, tiles keep arriving and queueing; when it frees, the oldest queue
runs at once with everything it gathered (up to ``max_batch``). So batches stay small when
traffic is light (latency) and grow with the load (throughput).

Tiles whose waiter was cancelled (its client left) before their batch starts are dropped.
A batch that fails is retried tile by tile, so one bad tile fails alone.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from tileserver.codecs.base import Codec
from tileserver.engine.stats import EngineStats

Key = tuple[int, Hashable]


class Batcher:
    def __init__(self, executor: Executor, stats: EngineStats, wait: float = 0.004, max_batch: int = 16):
        self.executor = executor
        self.stats = stats
        self.wait = wait
        self.max_batch = max_batch
        self._queues: dict[Key, list[tuple[Any, asyncio.Future]]] = {}  # insertion order: oldest first
        self._codecs: dict[Key, Codec] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._busy = False

    async def synthesize(self, codec: Codec, batch_key: Hashable, prepared: Any) -> np.ndarray:
        loop = asyncio.get_running_loop()
        key = (id(codec), batch_key)
        future = loop.create_future()
        self._codecs[key] = codec
        queue = self._queues.setdefault(key, [])
        queue.append((prepared, future))
        if not self._busy:
            if len(queue) >= self.max_batch:
                self._start(key)
            elif key not in self._timers:
                self._timers[key] = loop.call_later(self.wait, self._on_timer, key)
        return await future

    def _on_timer(self, key: Key) -> None:
        self._timers.pop(key, None)
        if not self._busy:
            self._start(key)

    def _start(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        queue = self._queues.pop(key, [])
        live = [(p, f) for p, f in queue if not f.done()]
        if len(live) < len(queue):
            self.stats.dropped.inc(len(queue) - len(live))
        items, rest = live[: self.max_batch], live[self.max_batch :]
        if rest:
            self._queues[key] = rest
        if not items:
            self._next()
            return
        self._busy = True
        task = asyncio.ensure_future(self._run(self._codecs[key], items))
        task.add_done_callback(lambda _: self._next())

    def _next(self) -> None:
        self._busy = False
        if self._queues:
            self._start(next(iter(self._queues)))

    async def _run(self, codec: Codec, items: list[tuple[Any, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            tiles = await loop.run_in_executor(self.executor, self._timed, codec, [p for p, _ in items])
        except Exception as exc:
            if len(items) == 1:
                if not items[0][1].done():
                    items[0][1].set_exception(exc)
                return
            for item in items:  # find the bad tile: the others still get their pixels
                await self._run(codec, [item])
            return
        for (_, future), tile in zip(items, tiles):
            if not future.done():
                future.set_result(tile)

    def _timed(self, codec: Codec, prepared: list) -> list[np.ndarray]:
        started = time.perf_counter()
        tiles = codec.synthesize(prepared)
        self.stats.decode.labels(codec.name, "synthesize").observe(time.perf_counter() - started)
        self.stats.batch.labels(codec.name).observe(len(prepared))
        return tiles
