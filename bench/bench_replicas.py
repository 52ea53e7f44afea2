"""Load test across replicas: Locust -> nginx (docker/nginx.conf) -> 1 or 2 `tileserver serve`
processes sharing one Redis, all on 127.0.0.1.

    nice python bench/bench_replicas.py [--codec learned:he-msh64-a2] [--users 10] [--time 30s]
        [--rounds 2] [--out bench/results/replicas]

The slide is the shipped CMU-1 region encoded with --codec (the demo's cached encoding). Each
round has four runs, each on fresh server processes (empty in-process caches) behind a fresh
nginx: 1 process with Redis emptied first (cold), 1 process again (Redis warm from that run),
then the same for 2 processes; the second round takes 2 processes first, so that a drifting
load on a shared machine weighs on both alike. Reports every run: Locust's tile latency
(p50/p95/p99) and tiles/s, the share of the servers' in-process misses that Redis answered,
and the load average when it started. Writes <out>.md and <out>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tileserver.demo import prepare
from tileserver.loadtest.local_server import LocalServer
from tileserver.loadtest.nginx import LocalNginx
from tileserver.loadtest.redis_server import LocalRedis
from tileserver.loadtest.runner import run_locust

CACHE_MB = 256
REDIS_MB = 512


def redis_counts(url: str) -> dict[str, float]:
    """The server's Redis hits and misses."""
    counts = {"hits": 0.0, "misses": 0.0}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for s in family.samples:
            if s.labels.get("cache") == "redis" and s.name in ("tileserver_cache_hits_total", "tileserver_cache_misses_total"):
                counts["hits" if "hits" in s.name else "misses"] += s.value
    return counts


def run(root: Path, slide_id: str, processes: int, redis: LocalRedis, work: Path, args) -> dict:
    load = os.getloadavg()[0]
    with ExitStack() as stack:
        servers = [stack.enter_context(LocalServer(root, cache_mb=CACHE_MB, options=("--redis", redis.url)))
                   for _ in range(processes)]
        nginx = stack.enter_context(LocalNginx([s.url.removeprefix("http://") for s in servers], work / "nginx"))
        stats = run_locust(nginx.url, work / "csv", args.users, args.spawn_rate, args.time, [slide_id])
        counts = [redis_counts(s.url) for s in servers]
    hits, misses = sum(c["hits"] for c in counts), sum(c["misses"] for c in counts)
    info = redis.client().info("memory")
    return {"load": load, "tile": stats["tile"], "redis_hits": hits, "redis_misses": misses,
            "redis_keys": redis.client().dbsize(), "redis_used_mb": info["used_memory"] / 2**20}


def table(results: dict) -> list[str]:
    lines = ["| round | processes | Redis | load avg | tile requests | failures | tiles/s | p50 ms | p95 ms | p99 ms "
             "| Redis answered | Redis keys after |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        t, asked = r["tile"], r["redis_hits"] + r["redis_misses"]
        share = f"{100 * r['redis_hits'] / asked:.0f}%" if asked else "-"
        round_, processes, phase = name.split("/")
        lines.append(f"| {round_} | {processes} | {phase} | {r['load']:.1f} | {t['requests']} | {t['failures']} | {t['requests_per_s']:.1f} | "
                     f"{t['p50_ms']:.0f} | {t['p95_ms']:.0f} | {t['p99_ms']:.0f} | {share} | {r['redis_keys']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", default="learned:he-msh64-a2")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--spawn-rate", type=float, default=5.0)
    parser.add_argument("--time", default="30s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "replicas")
    args = parser.parse_args()
    if args.rounds < 1 or args.users < 1:
        parser.error("--rounds and --users must be at least 1")
    root, slides = prepare([args.codec], workers=2, progress=False)
    slide = slides[-1]
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {}
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(maxmemory_mb=REDIS_MB) as redis:
        for round_ in range(1, args.rounds + 1):
            for processes in (1, 2) if round_ % 2 else (2, 1):
                redis.client().flushall()
                for phase in ("cold", "warm"):
                    name = f"{round_}/{processes}/{phase}"
                    print(f"round {round_}, {processes} process(es), Redis {phase}: {args.users} users for "
                          f"{args.time}", flush=True)
                    work = Path(tmp) / name.replace("/", "-")
                    results[name] = run(root, slide.slide_id, processes, redis, work, args)
                    print(table({name: results[name]})[-1], flush=True)
    lines = [
        "# Load test across replicas: nginx in front of tileserver processes sharing Redis",
        "",
        f"`nice python bench/bench_replicas.py --codec {args.codec} --users {args.users} --time {args.time} "
        f"--rounds {args.rounds}`, "
        f"{started}, {platform.machine()} with {os.cpu_count()} CPUs shared with other jobs (load average "
        f"{load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), locust {version('locust')}, "
        f"redis-server with maxmemory {REDIS_MB} MB allkeys-lru, nginx with docker/nginx.conf (least_conn). "
        f"Slide: the CMU-1 region encoded with `{args.codec}` (tiles per codec: {slide.tiles_per_codec}).",
        "",
        f"Each run: fresh `tileserver serve --device cpu --cache-mb {CACHE_MB} --redis ...` processes (empty "
        f"in-process caches) behind a fresh nginx; {args.users} OpenSeadragon-like users (spawn "
        f"{args.spawn_rate}/s) for {args.time}. cold = Redis emptied before the run; warm = Redis as the "
        "cold run left it. 'Redis answered' = Redis hits / (hits + misses), summed over the processes: "
        "the share of in-process misses that cost no decode. tiles/s is what the users asked for and got "
        "(they pause between moves), so it rises when tiles come back faster.",
        "",
        *table(results),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.md").write_text("\n".join(lines))
    Path(f"{args.out}.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "started": started,
                                                    "load_average": load_before, "results": results}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
