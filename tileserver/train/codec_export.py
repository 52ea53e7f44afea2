"""Export a training run's current weights as a shippable model: models/NAME.pt + NAME.md.

The .pt holds fp32 weights and the CDF tables of ``update()`` (no optimiser state); the model
card gives what the run's files say: architecture, λ, data, steps, CPU hours and the
validation rows measured with real bitstreams.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from tileserver.codecs.hyperprior import OWN_WIDTHS, build_net, own_widths
from tileserver.codecs.learned_models import model_path, save_model
from tileserver.errors import InputError
from tileserver.train.codec_data import LC25000, LEGACY_TRAIN_SLIDES, VAL_FIXTURES, VAL_SLIDE
from tileserver.train.codec_trainer import CHECKPOINT

VAL_COLUMNS = ("bpp", "psnr", "ssim", "ssim_min", "dec_ms")


def _validation_table(val_csv: Path, last: int = 8) -> str:
    if not val_csv.exists():
        return "No validation was run.\n"
    rows = list(csv.DictReader(open(val_csv)))[-last:]
    sets = sorted({k.rsplit("_", 1)[0] for k in rows[0] if k.endswith("_bpp")}) if rows else []
    header = ["step", "CPU h", "λ"] + [f"{s} {c}" for s in sets for c in VAL_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["step"], f"{float(row['cpu_hours']):.2f}", row["lmbda"]]
        cells += [f"{float(row[f'{s}_{c}']):.4g}" for s in sets for c in VAL_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _level_draw(config: dict) -> str:
    # Runs that record their slides draw levels by area; older runs drew them uniformly.
    return ", levels drawn in proportion to their area" if "slides" in config else ", levels drawn uniformly"


def _precision(config: dict) -> str:
    if config.get("precision") == "bf16":
        return "g_a and g_s under bf16 autocast but for their last layers (weights fp32)"
    return "fp32"


def _quantization(config: dict) -> str:
    if config.get("quantization") == "rounded":
        return ", g_s and h_s fed rounded latents (straight-through), the rate from noisy ones"
    return ", latents plus uniform noise (CompressAI's forward)"


def _partial(config: dict) -> str:
    fresh, only = config.get("fresh") or [], config.get("train_only") or []
    return (f" ({', '.join(fresh)} newly initialised)" if fresh else "") + \
        (f", only {', '.join(only)} trained" if only else "")


def model_card(name: str, config: dict, saved: dict, sha256: str, run_dir: Path, notes: str) -> str:
    params = sum(v.numel() for k, v in saved["model"].items() if not k.startswith("entropy_bottleneck._") and "_cdf" not in k)
    return f"""# Learned codec model `{name}`

{notes}

- Architecture: `{config['arch']}`, N={config['N']}, M={config['M']}{''.join(f", {OWN_WIDTHS[k]} {k}={v}" for k, v in own_widths(config).items())} ({params / 1e6:.2f}M weights)
- λ = {config['lmbda']}, SSIM weight w = {config.get('ssim_weight', 0.0)} (loss = λ·255²·MSE + w·(1 - SSIM) + bpp){f", curriculum from {config['lmbda_start']} over {config['lmbda_ramp']} steps" if config.get('lmbda_start') else ''}
- Recipe: Adam lr {config['lr']} ({config['warmup']} warm-up steps, cosine decay to {config['lr_min']} over the steps after {config['decay_from']:.0%} of {config['steps']}), aux lr {config['aux_lr']}, gradient clip {config['clip']}, batch {config['batch']} of {config['crop']} px crops, channels_last, {_precision(config)}, {config['threads']} threads{_quantization(config)}{f", started from {config['init']}" if config.get('init') else ''}{_partial(config)}
- Training data: `{LC25000}` (reduced 2x, or 1.75x for 128 px crops) and `{', '.join(config.get('slides', LEGACY_TRAIN_SLIDES))}` at level 0 and its 2x reductions{_level_draw(config)}; random crops, flips, rot90, mild colour jitter
- Validation (never trained on): 48 tissue tiles of `{VAL_SLIDE}` level 0 (`tcga48`), 256 px tissue tiles of `{VAL_FIXTURES}` H&E images (`fixtures`)
- Steps: {saved['step']}; CPU time: {saved['cpu_seconds'] / 3600:.2f} CPU hours ({saved['wall_seconds'] / 3600:.2f} h wall, on 2 shared cores)
- Run directory: `{run_dir}`
- File sha256: `{sha256}`

## Validation during training (real bitstreams through LearnedCodec; bpp counts the codec body)

{_validation_table(run_dir / 'val.csv')}"""


def export_run(run_dir: Path, name: str, models: Path | None = None, notes: str = "") -> tuple[Path, str]:
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.exists():
        raise InputError(f"{checkpoint} does not exist")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = saved["config"]
    net = build_net(config["arch"], config["N"], config["M"], **own_widths(config))
    net.load_state_dict(saved["model"])
    net.eval().update(force=True)
    path = model_path(name, models)
    model_config = {k: config[k] for k in ("arch", "N", "M", "lmbda")} | {
        "ssim_weight": config.get("ssim_weight", 0.0), "steps": saved["step"]} | own_widths(config)
    sha256 = save_model(net, model_config, path)
    path.with_suffix(".md").write_text(model_card(name, config, saved, sha256, run_dir, notes))
    (run_dir / "exports.jsonl").open("a").write(json.dumps({"name": name, "step": saved["step"], "sha256": sha256}) + "\n")
    return path, sha256
