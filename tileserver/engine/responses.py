"""The second cache: encoded response bodies (JPEG/PNG bytes) by request key, bounded in bytes,
so a repeated tile costs neither a decode nor a re-encode. Keys start with the file identity."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from cachetools import LRUCache

from tileserver.engine.stats import EngineStats


class ResponseCache:
    def __init__(self, max_bytes: int, stats: EngineStats):
        self._cache: LRUCache = LRUCache(maxsize=max_bytes, getsizeof=len)
        self.stats = stats

    async def get(self, key: Hashable, make: Callable[[], Awaitable[bytes]]) -> bytes:
        body = self._cache.get(key)
        if body is not None:
            self.stats.hits.labels("response").inc()
            return body
        self.stats.misses.labels("response").inc()
        body = await make()
        if len(body) <= self._cache.maxsize:
            self._cache[key] = body
            self.stats.cache_bytes.labels("response").set(self._cache.currsize)
        return body
