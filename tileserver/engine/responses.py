"""The response cache: encoded response bodies (JPEG/PNG bytes) by request key, so a repeated
tile costs neither a decode nor a re-encode. First tier: an LRU in the process, bounded in bytes,
keyed by the file identity. Second tier (optional): Redis, shared by every worker and replica."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable

from cachetools import LRUCache

from tileserver.engine.shared_cache import SharedCache
from tileserver.engine.stats import EngineStats


class ResponseCache:
    def __init__(self, max_bytes: int, stats: EngineStats, shared: SharedCache | None = None):
        self._cache: LRUCache = LRUCache(maxsize=max_bytes, getsizeof=len)
        self.stats = stats
        self.shared = shared

    async def get(self, key: Hashable, make: Callable[[], Awaitable[bytes]], shared_key: str | None = None) -> bytes:
        """The cached body, else ``make()``'s. ``shared_key``: the key in the shared tier (None:
        do not use it for this request)."""
        body = self._cache.get(key)
        if body is not None:
            self.stats.hits.labels("response").inc()
            return body
        self.stats.misses.labels("response").inc()
        key_there = shared_key if self.shared is not None else None
        body = await self.shared.get(key_there) if key_there is not None else None
        if body is None:
            body = await make()
            if key_there is not None:
                await self.shared.set(key_there, body)
        if len(body) <= self._cache.maxsize:
            self._cache[key] = body
            self.stats.cache_bytes.labels("response").set(self._cache.currsize)
        return body

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()
