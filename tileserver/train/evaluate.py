"""`tileserver evaluate`: the study's Table 3 for a set of codecs on tissue patches, plus bpp at
matched SSIM on rate-distortion curves, written as CSV, markdown and a PNG plot.

Bytes are what a codec stores for a patch (the codec body; a JPEG is the whole JFIF file).
Matched SSIM: each codec family (jpeg, jxl, webp, j2k, learned) gets a rate-distortion curve,
from a sweep of settings for the classical ones and from the learned models given; its bpp is
interpolated linearly at the mean SSIM of JPEG q90.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tileserver import quality
from tileserver.codecs import from_spec
from tileserver.train.codec_data import MIN_TISSUE, VAL_TILE, tissue_fraction
from tileserver.train.eval_codecs import baseline

REFERENCE = "jpeg:90"
SWEEPS = {
    "jpeg": [f"jpeg:{q}" for q in (50, 60, 70, 80, 85, 90, 95)],
    "jxl": [f"jxl:{d}" for d in (0.5, 1.0, 1.5, 2.0, 3.0)],
    "webp": [f"webp:{q}" for q in (50, 70, 80, 90, 95)],
    "j2k": [f"j2k:psnr{p}" for p in (33, 35, 37, 39, 41)],
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass
class Result:
    spec: str
    sizes: np.ndarray  # bytes per patch
    ssim: np.ndarray
    psnr: np.ndarray
    encode_ms: float  # per patch
    decode_ms: float  # per patch
    pixels: int

    @property
    def bpp(self) -> float:
        return 8 * float(self.sizes.sum()) / self.pixels


def tissue_patches(dirs: list[Path], tile: int = VAL_TILE) -> list[np.ndarray]:
    """256 px tiles with more than 50% tissue, cut on a grid from every image in the dirs."""
    patches = []
    for directory in dirs:
        for path in sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
            for y in range(0, image.shape[0] - tile + 1, tile):
                for x in range(0, image.shape[1] - tile + 1, tile):
                    patch = image[y : y + tile, x : x + tile]
                    if tissue_fraction(patch) > MIN_TISSUE:
                        patches.append(np.ascontiguousarray(patch))
    return patches


def codec_for(spec: str):
    return baseline(spec) or from_spec(spec)


def measure(spec: str, patches: list[np.ndarray]) -> Result:
    codec = codec_for(spec)
    start = time.perf_counter()
    bodies = [codec.encode(p) for p in patches]
    encode_ms = (time.perf_counter() - start) * 1000 / len(bodies)
    start = time.perf_counter()
    decoded = [d for i in range(0, len(bodies), 8) for d in codec.decode_batch(bodies[i : i + 8])]
    decode_ms = (time.perf_counter() - start) * 1000 / len(bodies)
    return Result(
        spec,
        np.array([len(b) for b in bodies]),
        np.array([quality.ssim(p, d) for p, d in zip(patches, decoded)]),
        np.array([quality.psnr(p, d) for p, d in zip(patches, decoded)]),
        encode_ms,
        decode_ms,
        sum(p.shape[0] * p.shape[1] for p in patches),
    )


def family(spec: str) -> str:
    return spec.partition(":")[0]


def bpp_at_ssim(points: list[Result], target: float) -> float | None:
    """bpp interpolated at a mean SSIM on the curve through the points (None outside it)."""
    curve = sorted((r.ssim.mean(), r.bpp) for r in points)
    ssims, bpps = [c[0] for c in curve], [c[1] for c in curve]
    if not ssims or not ssims[0] <= target <= ssims[-1]:
        return None
    return float(np.interp(target, ssims, bpps))


def table_rows(results: list[Result], curves: dict[str, list[Result]]) -> list[dict]:
    reference = next(r for r in results if r.spec == REFERENCE)
    target = float(reference.ssim.mean())
    rows = []
    for r in results:
        reduction = 1 - r.sizes / reference.sizes
        matched = bpp_at_ssim(curves.get(family(r.spec), [r]), target)
        jxl = bpp_at_ssim(curves.get("jxl", []), float(r.ssim.mean()))
        rows.append({
            "codec": r.spec, "ssim_mean": r.ssim.mean(), "ssim_min": r.ssim.min(), "ssim_max": r.ssim.max(),
            "psnr_mean": r.psnr.mean(), "total_kB": r.sizes.sum() / 1000,
            "reduction_mean": reduction.mean(), "reduction_min": reduction.min(),
            "reduction_max": reduction.max(), "bpp": r.bpp, "encode_ms": r.encode_ms, "decode_ms": r.decode_ms,
            "bpp_at_jpeg90_ssim": matched,
            "saving_at_jpeg90_ssim": None if matched is None else 1 - matched / reference.bpp,
            "jxl_bpp_at_same_ssim": jxl,
            "saving_vs_jxl_at_same_ssim": None if jxl is None else 1 - r.bpp / jxl,
        })
    return rows


def markdown(rows: list[dict], patches: int, target: float) -> str:
    lines = [
        f"{patches} tissue patches of 256 px. Size reduction is per patch against JPEG q90. "
        f"Matched: bpp interpolated on the codec family's rate-distortion curve at JPEG q90's "
        f"mean SSIM ({target:.4f}); '-' when the curve does not reach it. JPEG-XL at the same "
        f"SSIM: the JPEG-XL curve's bpp at the row's mean SSIM, and the row's saving against it.",
        "",
        "| codec | SSIM mean (min, max) | PSNR dB | total kB | size reduction vs JPEG q90 mean (min, max) "
        "| bpp | encode ms/patch | decode ms/patch | bpp at JPEG q90 SSIM | saving at JPEG q90 SSIM "
        "| JPEG-XL bpp at the same SSIM | saving vs JPEG-XL at the same SSIM |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        matched, saving = _cell(r["bpp_at_jpeg90_ssim"], ".3f"), _cell(r["saving_at_jpeg90_ssim"], ".1%")
        jxl, jxl_saving = _cell(r["jxl_bpp_at_same_ssim"], ".3f"), _cell(r["saving_vs_jxl_at_same_ssim"], ".1%")
        lines.append(
            f"| {r['codec']} | {r['ssim_mean']:.4f} ({r['ssim_min']:.3f}, {r['ssim_max']:.3f}) "
            f"| {r['psnr_mean']:.2f} | {r['total_kB']:.1f} | {r['reduction_mean']:.1%} "
            f"({r['reduction_min']:.1%}, {r['reduction_max']:.1%}) | {r['bpp']:.3f} "
            f"| {r['encode_ms']:.1f} | {r['decode_ms']:.1f} | {matched} | {saving} | {jxl} | {jxl_saving} |"
        )
    return "\n".join(lines) + "\n"


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def plot(results: list[Result], curves: dict[str, list[Result]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric, label in ((axes[0], "ssim", "mean SSIM"), (axes[1], "psnr", "mean PSNR (dB)")):
        for name, points in sorted(curves.items()):
            points = sorted(points, key=lambda r: r.bpp)
            ax.plot([r.bpp for r in points], [getattr(r, metric).mean() for r in points], "-o",
                    markersize=3, label=name)
        for r in results:
            ax.annotate(r.spec, (r.bpp, getattr(r, metric).mean()), fontsize=7)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(patches: list[np.ndarray], specs: list[str], out: Path, sweep: bool = True) -> list[dict]:
    """Measure, then write out.csv, out.md and out.png; return the table rows."""
    specs = specs if REFERENCE in specs else [REFERENCE, *specs]
    results = {spec: measure(spec, patches) for spec in specs}
    curves: dict[str, list[Result]] = {}
    for spec, result in results.items():
        curves.setdefault(family(spec), []).append(result)
    if sweep:
        for name in {family(s) for s in specs} & SWEEPS.keys():
            for spec in SWEEPS[name]:
                if spec not in results:
                    curves[name].append(measure(spec, patches))
    rows = table_rows(list(results.values()), curves)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    target = float(results[REFERENCE].ssim.mean())
    out.with_suffix(".md").write_text(markdown(rows, len(patches), target))
    plot(list(results.values()), curves, out.with_suffix(".png"))
    return rows
