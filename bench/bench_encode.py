"""Encode time and output bytes for the real slides: jpeg:90 and jxl:1.0 against the source.

    python bench/bench_encode.py [--workers 2] [--codecs jpeg:90,jxl:1.0] [--slides NAME,...]
        [--out bench/results/encode.md]

Each codec spec encodes each slide on its own (learned models too: `learned:MODEL`).

Writes a markdown table. Numbers depend on the machine and on what else runs on it: the
load average at the start is recorded with the table.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from tileserver.encode.encoder import EncodeSettings, encode_slide

SLIDES = Path(__file__).resolve().parents[2] / "shared" / "data" / "slides"
NAMES = ["cmu-1-small-region.svs", "tcga-cr-7395-01a-01-ts1.svs"]
CODECS = ["jpeg:90", "jxl:1.0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--codecs", default=",".join(CODECS), help="comma-separated codec specs")
    parser.add_argument("--slides", default=",".join(NAMES), help=f"comma-separated names in {SLIDES}")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "encode.md"))
    args = parser.parse_args()
    rows = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.slides.split(","):
            source = SLIDES / name
            for spec in args.codecs.split(","):
                out = Path(tmp) / f"{name}.{spec.replace(':', '')}.tiff"
                s = encode_slide(source, out, EncodeSettings(codecs=[spec], workers=args.workers), progress=False)
                rows.append(
                    f"| {name} | {spec} | {s.seconds:.1f} | {s.tiles} | {s.glass_tiles / s.tiles:.0%} | "
                    f"{s.source_bytes / 1e6:.2f} | {s.reference_jpeg90_bytes / 1e6:.2f} | "
                    f"{s.output_bytes / 1e6:.2f} | {s.output_bytes / s.source_bytes:.0%} | "
                    f"{s.output_bytes / s.reference_jpeg90_bytes:.0%} |"
                )
                print(rows[-1], flush=True)
    header = [
        f"# Encode benchmark ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.workers} workers, load average {load:.1f} at start)",
        "",
        f"Command: `python bench/bench_encode.py --workers {args.workers} --codecs {args.codecs} "
        f"--slides {args.slides}`. Output includes every pyramid level;",
        "'JPEG q90 ref' is a JPEG q90 pyramid of the same tiles with glass intact (the study's reference).",
        "",
        "| slide | codec | seconds | tiles | glass | source MB | JPEG q90 ref MB | output MB | vs source | vs JPEG q90 ref |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    Path(args.out).write_text("\n".join(header + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
