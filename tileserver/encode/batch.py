"""Encode an archive on a Dask distributed cluster: one task per slide, restartable.

A slide whose output exists and records the same source sha256 and the same encoder settings
is skipped, so a stopped job is simply started again. A slide that fails is reported in the
CSV and does not stop the others.
"""
from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from tileserver.encode.encoder import EncodeSettings, encode_slide, sha256_of
from tileserver.encode.rate import DEFAULT_FALLBACK
from tileserver.errors import InputError
from tileserver.format.reader import NeuralTiff

SLIDE_SUFFIXES = {".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".dcm", ".scn", ".vms", ".bif",
                  ".svslide", ".png", ".jpg", ".jpeg"}
REPORT_FIELDS = ["source", "output", "status", "source_bytes", "output_bytes", "glass_share",
                 "codec_mix", "seconds", "error"]


@dataclass(frozen=True)
class BatchItem:
    source: Path
    output: Path


def collect_items(source: Path, out_dir: Path) -> list[BatchItem]:
    """Slides under a directory (outputs mirror its tree), or the rows of a manifest CSV
    with a `source` column and an optional `output` column (relative to the manifest)."""
    if source.is_dir():
        return [
            BatchItem(path, out_dir / path.relative_to(source).with_suffix(".tiff"))
            for path in sorted(source.rglob("*"))
            if path.is_file() and path.suffix.lower() in SLIDE_SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(source).parts)
        ]
    if source.suffix.lower() == ".csv" and source.is_file():
        with open(source, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "source" not in rows[0]:
            raise InputError(f"{source}: a manifest needs a 'source' column")
        items = []
        for row in rows:
            slide = (source.parent / row["source"]).resolve()
            output = row.get("output") or Path(row["source"]).with_suffix(".tiff").name
            items.append(BatchItem(slide, out_dir / output))
        return items
    raise InputError(f"{source}: give a directory of slides or a manifest .csv")


def _recorded_settings(settings: EncodeSettings) -> dict:
    """The encoder settings that a file records and that decide whether it is up to date."""
    adaptive = settings.adaptive
    return {"codecs": settings.codecs, "glass": settings.glass, "target_ssim": settings.target_ssim,
            "floor": settings.floor, "fallback": settings.fallback, "tile_size": settings.tile_size,
            "keep_codec": (settings.keep_codec or DEFAULT_FALLBACK) if adaptive else None,
            "policy": settings.policy if adaptive else None}


def is_up_to_date(item: BatchItem, settings: EncodeSettings) -> bool:
    if not item.output.exists():
        return False
    try:
        with NeuralTiff(item.output) as slide:
            meta = slide.metadata
            recorded = {key: meta.encoder.get(key) for key in ("codecs", "glass", "target_ssim", "floor", "fallback")}
            recorded["tile_size"] = meta.tile_size
            recorded["keep_codec"] = meta.encoder.get("keep_codec")
            recorded["policy"] = meta.encoder.get("adaptive", {}).get("policy")
            return recorded == _recorded_settings(settings) and meta.source.get("sha256") == sha256_of(item.source)
    except Exception:
        return False  # unreadable or foreign: encode it again


def _row(item: BatchItem, status: str, seconds: float, error: str = "") -> dict:
    row = {"source": str(item.source), "output": str(item.output), "status": status,
           "source_bytes": item.source.stat().st_size if item.source.exists() else 0,
           "output_bytes": "", "glass_share": "", "codec_mix": "", "seconds": f"{seconds:.2f}", "error": error}
    if status != "failed":
        with NeuralTiff(item.output) as slide:
            stats = slide.metadata.stats
            row.update(output_bytes=slide.stat.st_size,
                       glass_share=f"{stats['glass_tiles'] / stats['tiles']:.4f}",
                       codec_mix=";".join(f"{k}={v}" for k, v in sorted(stats["tiles_per_codec"].items())))
    return row


def encode_item(item: BatchItem, settings: EncodeSettings) -> dict:
    """One Dask task: encode a slide, or skip it, or report why it failed."""
    started = time.monotonic()
    if is_up_to_date(item, settings):
        return _row(item, "skipped", time.monotonic() - started)
    try:
        item.output.parent.mkdir(parents=True, exist_ok=True)
        encode_slide(item.source, item.output, replace(settings, workers=1), progress=False)
        return _row(item, "encoded", time.monotonic() - started)
    except Exception as exc:  # a failed slide must not stop the others: report it
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _row(item, "failed", time.monotonic() - started, message)


def run_batch(items: list[BatchItem], settings: EncodeSettings, client,
              on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Submit one task per slide to a dask.distributed client; rows in source order."""
    from distributed import as_completed

    futures = client.map(encode_item, items, settings=settings, pure=False)
    rows = []
    for future in as_completed(futures):
        rows.append(future.result())
        if on_result:
            on_result(rows[-1])
    order = {str(item.source): index for index, item in enumerate(items)}
    return sorted(rows, key=lambda row: order[row["source"]])


def write_report(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


class Progress:
    """Slides done, bytes in and out, and an ETA from the bytes still to read."""

    def __init__(self, items: list[BatchItem], echo: Callable[[str], None]):
        self.total_in = sum(item.source.stat().st_size for item in items if item.source.exists())
        self.count, self.done, self.bytes_in, self.bytes_out = len(items), 0, 0, 0
        self.started = time.monotonic()
        self.echo = echo

    def __call__(self, row: dict) -> None:
        self.done += 1
        self.bytes_in += int(row["source_bytes"] or 0)
        self.bytes_out += int(row["output_bytes"] or 0)
        elapsed = time.monotonic() - self.started
        rate = self.bytes_in / elapsed if elapsed > 0 else 0
        eta = (self.total_in - self.bytes_in) / rate if rate else 0
        note = f": {row['error']}" if row["error"] else ""
        self.echo(f"[{self.done}/{self.count}] {Path(row['source']).name} {row['status']}{note} | "
                  f"in {self.bytes_in / 1e6:.1f} MB, out {self.bytes_out / 1e6:.1f} MB | ETA {eta:.0f} s")


def iter_summary(rows: list[dict]) -> Iterator[str]:
    for status in ("encoded", "skipped", "failed"):
        yield f"{status}: {sum(row['status'] == status for row in rows)}"

