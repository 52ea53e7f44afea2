"""Prometheus metrics of one engine and its server, in a registry of their own."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class EngineStats:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "tileserver_request_seconds", "HTTP request latency by route and status",
            ["route", "status"], registry=r, buckets=LATENCY_BUCKETS,
        )
        self.decode = Histogram(
            "tileserver_decode_seconds", "Decode latency by codec and stage (prepare per tile, synthesize per batch)",
            ["codec", "stage"], registry=r, buckets=LATENCY_BUCKETS,
        )
        self.batch = Histogram(
            "tileserver_decode_batch_size", "Tiles per synthesize batch by codec",
            ["codec"], registry=r, buckets=BATCH_BUCKETS,
        )
        self.source_reads = Histogram(
            "tileserver_source_read_seconds", "read_region latency per tile of OpenSlide/tiffslide slides",
            registry=r, buckets=LATENCY_BUCKETS,
        )
        self.hits = Counter("tileserver_cache_hits_total", "Cache hits", ["cache"], registry=r)
        self.misses = Counter("tileserver_cache_misses_total", "Cache misses", ["cache"], registry=r)
        self.cache_bytes = Gauge("tileserver_cache_bytes", "Bytes held by each cache", ["cache"], registry=r)
        self.cache_errors = Counter("tileserver_cache_errors_total", "Failed operations of the shared cache",
                                    ["cache"], registry=r)
        self.cache_up = Gauge("tileserver_cache_up", "1 while the shared cache is used, 0 while it is backed off",
                              ["cache"], registry=r)
        self.coalesced = Counter("tileserver_coalesced_total", "Tile requests that joined a decode in flight", registry=r)
        self.glass = Counter("tileserver_glass_tiles_total", "Glass tiles served as a constant", registry=r)
        self.dropped = Counter("tileserver_decodes_dropped_total", "Queued decodes dropped: their clients left", registry=r)
        self.errors = Counter("tileserver_tile_errors_total", "Tiles that could not be produced", ["reason"], registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
