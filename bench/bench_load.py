"""Load test of a local server: OpenSeadragon-like Locust users on one coded slide at a time.

    python bench/bench_load.py [--users 10] [--time 30s] [--out bench/results/load]

The slide is the shipped CMU-1 region, encoded with JPEG q90, with the newest learned codec
model in models/ when there is one, and with jxl:1.0. For each slide:

- cold: a fresh server with a 1 MB cache, so nearly every tile request decodes and encodes;
- warm: a fresh server with a 1024 MB cache, browsed once (not measured), then measured.

Writes <out>.md and <out>.json (Locust's own CSVs stay in a temporary directory). Traffic stays
on 127.0.0.1.
Numbers depend on the machine and what else runs on it: the load average is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from tileserver.demo import COMPARISON_CODEC, FALLBACK_CODEC, best_codec, prepare
from tileserver.loadtest.local_server import LocalServer
from tileserver.loadtest.runner import run_locust

COLD_MB, WARM_MB = 1, 1024


def codecs_to_run() -> list[str]:
    learned = best_codec()
    return [COMPARISON_CODEC, *([learned] if learned != FALLBACK_CODEC else []), FALLBACK_CODEC]


def measure(root: Path, slide_id: str, csv_dir: Path, args) -> dict:
    runs = {}
    with LocalServer(root, cache_mb=COLD_MB) as server:
        runs["cold"] = run_locust(server.url, csv_dir / "cold", args.users, args.spawn_rate, args.time, [slide_id])
    with LocalServer(root, cache_mb=WARM_MB) as server:
        run_locust(server.url, csv_dir / "warmup", args.users, args.spawn_rate, args.time, [slide_id])
        runs["warm"] = run_locust(server.url, csv_dir / "warm", args.users, args.spawn_rate, args.time, [slide_id])
    return runs


def table(results: dict) -> list[str]:
    lines = ["| slide codec | cache | tile requests | failures | tiles/s | p50 ms | p95 ms | p99 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for codec, runs in results.items():
        for phase, stats in runs.items():
            t = stats["tile"]
            lines.append(f"| {codec} | {phase} | {t['requests']} | {t['failures']} | {t['requests_per_s']:.1f} | "
                         f"{t['p50_ms']:.0f} | {t['p95_ms']:.0f} | {t['p99_ms']:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--spawn-rate", type=float, default=5.0)
    parser.add_argument("--time", default="30s")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "load")
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root, slides = prepare(codecs_to_run(), Path(tmp), workers=2, progress=False)
        for slide in slides[1:]:
            print(f"{slide.codec}: cold then warm, {args.users} users, {args.time} each", flush=True)
            results[slide.codec] = measure(root, slide.slide_id, Path(tmp) / "csv" / slide.slide_id, args)
    lines = [
        "# Load test: OpenSeadragon-like users on the CMU-1 region",
        "",
        f"`python bench/bench_load.py --users {args.users} --time {args.time}`, {started}, "
        f"{platform.machine()} with {os.cpu_count()} CPUs, load average {load_before[0]:.1f} at the start, "
        f"locust {version('locust')}. Each run: {args.users} users (spawn {args.spawn_rate}/s) for {args.time}; "
        f"a user opens the slide (info.json, thumbnail) and then zooms and pans over tissue, fetching the IIIF "
        f"tiles of a 1280x800 viewport (this level and the next coarser) six at a time.",
        f"cold = fresh server with a {COLD_MB} MB cache (nearly every tile decoded and encoded); "
        f"warm = fresh server with {WARM_MB} MB, browsed once for {args.time}, then measured. "
        "tiles/s is the rate these users asked for (they pause between moves), not the server's capacity; "
        "the machine is shared, so the tail latencies move with its load.",
        "",
        *table(results),
        "",
    ]
    if best_codec() == FALLBACK_CODEC:
        lines.append("No learned codec model was in models/ when this ran, so there is no learned-coded row.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    Path(f"{args.out}.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                                    "started": started, "load_average": load_before,
                                                    "results": results}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
