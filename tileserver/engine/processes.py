"""The CPU stage of codecs whose ``prepare`` holds the GIL (CompressAI's rANS entropy decoding),
run in worker processes so that it scales past one core. Each process decodes with one torch
thread and loads a model once; what ``prepare`` returns comes back pickled (a learned tile's
y_hat, with its model by name) and goes on to the engine's batched synthesis step."""
from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from tileserver.errors import CodecError


def _start_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _prepare(codec_id: int, body: bytes) -> Any:
    from tileserver import codecs

    return codecs.decoder(codec_id, "cpu").prepare(body)


class PreparePool:
    def __init__(self, processes: int):
        if processes < 1:
            raise ValueError("a prepare pool needs at least one process")
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool whose processes start now (spawn, not fork: the server runs threads)."""
        pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker)
        for _ in range(self.processes):
            pool.submit(_start_worker)
        return pool

    async def prepare(self, codec_id: int, body: bytes) -> Any:
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _prepare, codec_id, body)
        except BrokenProcessPool:
            self._replace(pool)
            raise CodecError("a decode process died while entropy-decoding this tile") from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:  # the first of the tiles that saw it break replaces it
                self._pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
