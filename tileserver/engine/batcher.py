"""Micro-batching of the device stage: prepared tiles with the same codec and batch key that
arrive within ``wait`` seconds are synthesized together, up to ``max_batch`` at a time.

Items whose waiter was cancelled (its client left) before the batch starts are dropped.
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


class Batcher:
    def __init__(self, executor: Executor, stats: EngineStats, wait: float = 0.004, max_batch: int = 16):
        self.executor = executor
        self.stats = stats
        self.wait = wait
        self.max_batch = max_batch
        self._queues: dict[tuple[int, Hashable], list[tuple[Any, asyncio.Future]]] = {}
        self._timers: dict[tuple[int, Hashable], asyncio.TimerHandle] = {}
        self._codecs: dict[tuple[int, Hashable], Codec] = {}

    async def synthesize(self, codec: Codec, batch_key: Hashable, prepared: Any) -> np.ndarray:
        loop = asyncio.get_running_loop()
        key = (id(codec), batch_key)
        future = loop.create_future()
        self._codecs[key] = codec
        queue = self._queues.setdefault(key, [])
        queue.append((prepared, future))
        if len(queue) >= self.max_batch:
            self._flush(key)
        elif key not in self._timers:
            self._timers[key] = loop.call_later(self.wait, self._flush, key)
        return await future

    def _flush(self, key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        queued, codec = self._queues.pop(key, []), self._codecs.pop(key)
        items = [(p, f) for p, f in queued if not f.done()]
        if len(items) < len(queued):
            self.stats.dropped.inc(len(queued) - len(items))
        if items:
            asyncio.ensure_future(self._run(codec, items))

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
