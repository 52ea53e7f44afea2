"""`tileserver loadtest DIR`: browse a local server with OpenSeadragon-like Locust users, headless.

A fresh server is started on 127.0.0.1 for DIR (empty caches) and the run is "cold"; with
--warm a second run follows on the same server, its caches filled by the first. Each run prints
p50/p95/p99 latency, requests/s and failures, and Locust's CSV files go to --out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tileserver.engine import DEVICES
from tileserver.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("loadtest", help="load-test a local server with OpenSeadragon-like users",
                                   description=__doc__)
    parser.add_argument("directory", type=Path, help="slide directory to serve")
    parser.add_argument("--slides", default="", help="comma-separated slide ids to browse (default: all)")
    parser.add_argument("--users", type=int, default=10, help="concurrent viewers (default 10)")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="viewers started per second (default 5)")
    parser.add_argument("--time", default="30s", help="duration of each run, Locust syntax (default 30s)")
    parser.add_argument("--warm", action="store_true", help="then run again on the same, warm, server")
    parser.add_argument("--cache-mb", type=int, default=1024, help="server cache size (default 1024)")
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="server decode device (default cpu)")
    parser.add_argument("--out", type=Path, default=Path("loadtest-results"), help="directory for Locust's CSVs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tileserver.loadtest.local_server import LocalServer
    from tileserver.loadtest.runner import format_stats, run_locust

    if not args.directory.is_dir():
        raise InputError(f"{args.directory}: not a directory")
    if args.users < 1 or args.spawn_rate <= 0:
        raise InputError("--users must be at least 1 and --spawn-rate above 0")
    slides = [s for s in args.slides.split(",") if s]
    results = {}
    with LocalServer(args.directory, cache_mb=args.cache_mb, device=args.device) as server:
        for phase in ("cold", "warm") if args.warm else ("cold",):
            print(f"{phase} cache: {args.users} users for {args.time} on {server.url}", flush=True)
            stats = run_locust(server.url, args.out / phase, args.users, args.spawn_rate, args.time, slides)
            print(format_stats(stats), flush=True)
            results[phase] = stats
    (args.out / "summary.json").write_text(json.dumps(results, indent=2))
    print(f"CSV and summary.json in {args.out}")
    return 0
