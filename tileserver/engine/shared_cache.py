"""The shared second tier of the response cache: Redis, for every worker and replica.

Values are encoded response bodies, under the keys tileserver.server.http.shared_key makes.
Redis evicts by itself: run it with ``maxmemory`` and ``maxmemory-policy allkeys-lru``.

Redis being down or slow never fails a request: every operation has a short timeout, a failure
is logged once per outage and the tier is skipped (the tile is decoded) for a back-off that
doubles from 1 s to 30 s, then tried again. An error that Redis answers with (out of memory
under ``noeviction``) is counted and logged once, without a back-off.
"""
from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tileserver.engine.stats import EngineStats
from tileserver.errors import InputError

log = logging.getLogger("tileserver.shared_cache")
LABEL = "redis"
TIMEOUT_S = 0.25
BACKOFF_S = (1.0, 30.0)
MAX_VALUE_BYTES = 4 << 20  # larger bodies (big IIIF regions) stay in the process
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)  # these back off; other errors do not
_FAILED = object()


class SharedCache:
    def __init__(self, url: str, stats: EngineStats, timeout: float = TIMEOUT_S):
        try:
            self._client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
            )
        except ValueError as exc:
            raise InputError(f"--redis {url}: {exc}") from None
        self.url = url
        self.stats = stats
        self._retry_at = 0.0
        self._backoff = BACKOFF_S[0]
        self._down = False
        self._refusal_logged = False
        stats.cache_up.labels(LABEL).set(1)

    def _available(self) -> bool:
        return not self._down or time.monotonic() >= self._retry_at

    def _failed(self, exc: Exception) -> None:
        self.stats.cache_errors.labels(LABEL).inc()
        now = time.monotonic()
        if not self._down:
            log.warning("shared cache %s unavailable (%s: %s): decoding instead, retrying with back-off",
                        self.url, type(exc).__name__, exc)
            self._backoff = BACKOFF_S[0]
        elif now < self._retry_at:
            return  # another operation of the same attempt: the back-off is already set
        else:
            self._backoff = min(self._backoff * 2, BACKOFF_S[1])
        self._down = True
        self._retry_at = now + self._backoff
        self.stats.cache_up.labels(LABEL).set(0)

    def _succeeded(self) -> None:
        if self._down:
            log.warning("shared cache %s is back", self.url)
            self._down = False
            self.stats.cache_up.labels(LABEL).set(1)

    def _refused(self, exc: Exception) -> None:
        """Redis answered with an error (OOM under ``noeviction``, ...): counted, logged once."""
        self.stats.cache_errors.labels(LABEL).inc()
        if not self._refusal_logged:
            self._refusal_logged = True
            log.warning("shared cache %s refused a command (%s): is it run with maxmemory-policy allkeys-lru?",
                        self.url, exc)

    async def _call(self, command, *args):
        try:
            reply = await command(*args)
        except UNREACHABLE as exc:
            self._failed(exc)
            return _FAILED
        except redis.RedisError as exc:
            self._refused(exc)
            return _FAILED
        self._succeeded()
        return reply

    async def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        body = await self._call(self._client.get, key)
        if body is _FAILED:
            return None
        (self.stats.hits if body is not None else self.stats.misses).labels(LABEL).inc()
        return body

    async def set(self, key: str, body: bytes) -> None:
        if len(body) <= MAX_VALUE_BYTES and self._available():
            await self._call(self._client.set, key, body)

    async def close(self) -> None:
        await self._client.aclose()
