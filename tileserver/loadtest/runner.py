"""Run the Locust user headless against a local server and read back its statistics."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tileserver.errors import InputError, TileserverError

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PERCENTILES = ("50%", "95%", "99%")


def check_loopback(url: str) -> None:
    if urlsplit(url).hostname not in LOOPBACK:
        raise InputError(f"the load test only targets a server on 127.0.0.1, not {url}")


def run_locust(url: str, csv_prefix: Path, users: int, spawn_rate: float, duration: str,
               slides: list[str] | None = None) -> dict[str, dict]:
    """One headless Locust run; returns its statistics by request name (and "Aggregated")."""
    check_loopback(url)
    csv_prefix.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
               "-u", str(users), "-r", str(spawn_rate), "-t", duration, "--host", url,
               "--csv", str(csv_prefix), "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    env = {**os.environ, "TILESERVER_SLIDES": ",".join(slides or [])}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    stats_file = Path(f"{csv_prefix}_stats.csv")
    if done.returncode != 0 or not stats_file.exists():
        raise TileserverError(f"locust failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return read_stats(stats_file)


def read_stats(path: Path) -> dict[str, dict]:
    """Locust's *_stats.csv: requests, failures, req/s and p50/p95/p99 (ms) per request name."""
    rows = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "requests_per_s": float(row["Requests/s"]),
                **{f"p{p.rstrip('%')}_ms": _number(row[p]) for p in PERCENTILES},
            }
    return rows


def _number(text: str) -> float | None:
    return None if text in ("", "N/A") else float(text)


def format_stats(stats: dict[str, dict]) -> str:
    """A fixed-width table, one line per request name."""
    lines = [f"{'request':<14}{'count':>8}{'fail':>6}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"]
    for name, s in stats.items():
        cells = [f"{s[k]:>9.0f}" if s[k] is not None else f"{'-':>9}" for k in ("p50_ms", "p95_ms", "p99_ms")]
        lines.append(f"{name:<14}{s['requests']:>8}{s['failures']:>6}{s['requests_per_s']:>9.1f}{''.join(cells)}")
    return "\n".join(lines)
