"""Training loop for the learned codec (CompressAI hyperprior models) on this 2-core CPU.

A run lives in one directory: ``checkpoint.pt`` (model, optimisers, step, RNG states, CPU
time; written atomically every few minutes and on SIGTERM/SIGINT), ``config.json``,
``train.csv`` (loss terms every ``log_every`` steps) and ``val.csv`` (real bitstreams through
LearnedCodec on the validation tiles). ``--steps`` is the step to reach, so a run killed and
resumed ends where one uninterrupted run would.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from compressai.models import MeanScaleHyperprior

from tileserver import quality
from tileserver.codecs.hyperprior import build_net, own_widths, round_straight_through
from tileserver.codecs.learned import LearnedCodec
from tileserver.codecs.learned_models import LearnedModel
from tileserver.errors import InputError
from tileserver.train.grow import grown
from tileserver.train.mixed_precision import transforms_in
from tileserver.train.codec_data import (LEGACY_TRAIN_SLIDES, TRAIN_SLIDES, training_sampler,
                                         validation_tiles)

CHECKPOINT = "checkpoint.pt"
# Settings a resumed run may change; every other setting comes from the checkpoint.
# Filled by update() for coding; a training net has them empty, so --init leaves them out.
ENTROPY_TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
QUANTIZATIONS = ("noise", "rounded")
RESUMABLE = ("steps", "max_minutes", "threads", "data", "checkpoint_minutes", "val_minutes", "ssim_weight",
             "precision")


@dataclass
class TrainConfig:
    arch: str = "mbt2018-mean"
    N: int = 96
    M: int = 192
    N_s: int | None = None  # g_s's own width (mbt2018-mean-light-hs), else N
    N_a: int | None = None  # g_a's own width (mbt2018-mean-light-hs), else N
    lmbda: float = 0.0483  # loss = lmbda * 255^2 * MSE + ssim_weight * (1 - SSIM) + bpp
    ssim_weight: float = 0.0  # the targets are in SSIM: weight of the differentiable SSIM term
    lmbda_start: float | None = None  # curriculum: ramp from here to lmbda, log-linearly
    lmbda_ramp: int = 0  # ... over this many steps
    crop: int = 128
    batch: int = 8
    steps: int = 100_000
    lr: float = 3e-4
    warmup: int = 500  # linear warm-up steps
    decay_from: float = 0.7  # cosine decay to lr_min over the last 30% of the steps
    lr_min: float = 1e-5
    aux_lr: float = 1e-3
    clip: float = 1.0
    threads: int = 2
    precision: str = "fp32"  # or bf16: g_a and g_s under bf16 autocast (train.mixed_precision)
    quantization: str = "noise"  # what g_s and h_s see: see QUANTIZATIONS
    seed: int = 0
    data: list[str] = field(default_factory=list)
    slides: list[str] = field(default_factory=lambda: list(TRAIN_SLIDES))  # under the data roots
    init: str | None = None  # weights to start from (a run's checkpoint or a models/*.pt)
    fresh: list[str] = field(default_factory=list)  # modules (e.g. h_s) --init leaves at their initialisation
    train_only: list[str] = field(default_factory=list)  # if given, every other module stays frozen
    grow: list[str] = field(default_factory=list)  # modules of --init widened into this net's (train.grow)
    checkpoint_minutes: float = 5.0
    val_minutes: float = 15.0
    log_every: int = 100
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        start = int(self.decay_from * self.steps)
        if step < start:
            return self.lr
        progress = min(1.0, (step - start) / max(1, self.steps - start))
        return self.lr_min + (self.lr - self.lr_min) * 0.5 * (1 + math.cos(math.pi * progress))

    def lmbda_at(self, step: int) -> float:
        if self.lmbda_start is None or step >= self.lmbda_ramp:
            return self.lmbda
        ratio = step / self.lmbda_ramp
        return math.exp((1 - ratio) * math.log(self.lmbda_start) + ratio * math.log(self.lmbda))

    def model_config(self) -> dict:
        return {"arch": self.arch, "N": self.N, "M": self.M, "lmbda": self.lmbda,
                "ssim_weight": self.ssim_weight, **own_widths(asdict(self))}


def forward_rounded(net: MeanScaleHyperprior, x: torch.Tensor) -> dict:
    """``net(x)`` with the latents g_s and h_s see rounded as the decoder rounds them (y about
    its predicted means, z about the bottleneck's medians, straight-through gradients); the
    likelihoods, so the rate, are still those of the latents plus uniform noise. CompressAI's
    own forward feeds the noisy latents on, which no decoder ever sees."""
    y = net.g_a(x)
    z = net.h_a(y)
    _, z_likelihoods = net.entropy_bottleneck(z)
    medians = net.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
    scales, means = net.h_s(round_straight_through(z, medians)).chunk(2, 1)
    _, y_likelihoods = net.gaussian_conditional(y, scales, means=means)
    x_hat = net.g_s(round_straight_through(y, means))
    return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}


def rate_distortion(net, x: torch.Tensor, lmbda: float, ssim_weight: float = 0.0,
                    quantization: str = "noise") -> dict[str, torch.Tensor]:
    out = net(x) if quantization == "noise" else forward_rounded(net, x)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(-torch.log2(l).sum() for l in out["likelihoods"].values()) / pixels
    mse = torch.mean((out["x_hat"] - x) ** 2)
    terms = {"mse": mse, "bpp": bpp}
    loss = lmbda * 255**2 * mse + bpp
    if ssim_weight:
        terms["ssim"] = quality.ssim_torch(x, out["x_hat"].clamp(0, 1))
        loss = loss + ssim_weight * (1 - terms["ssim"])
    return {"loss": loss, **terms}


def validate(net, config: TrainConfig, tile_sets: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """bpp, PSNR, SSIM mean/min and decode ms per set, with real bitstreams via LearnedCodec."""
    frozen_net = copy.deepcopy(net).eval().to(memory_format=torch.contiguous_format)
    frozen_net.update(force=True)
    codec = LearnedCodec(model=LearnedModel.from_net("validation", frozen_net, config.model_config()))
    row: dict[str, float] = {}
    for name, tiles in tile_sets.items():
        bodies = [codec.encode(t) for t in tiles]
        start = time.perf_counter()
        decoded = [d for i in range(0, len(bodies), 8) for d in codec.decode_batch(bodies[i : i + 8])]
        row[f"{name}_dec_ms"] = (time.perf_counter() - start) * 1000 / len(tiles)
        ssims = [quality.ssim(t, d) for t, d in zip(tiles, decoded)]
        row[f"{name}_bpp"] = 8 * sum(map(len, bodies)) / sum(t.shape[0] * t.shape[1] for t in tiles)
        row[f"{name}_psnr"] = float(np.mean([quality.psnr(t, d) for t, d in zip(tiles, decoded)]))
        row[f"{name}_ssim"] = float(np.mean(ssims))
        row[f"{name}_ssim_min"] = float(np.min(ssims))
    return row


def _under(net: torch.nn.Module, modules: list[str], flag: str, buffers: bool = False) -> set[str]:
    """Names of the parameters (and buffers) of ``net`` inside the named submodules."""
    names = {n for n, _ in net.named_parameters()} | ({n for n, _ in net.named_buffers()} if buffers else set())
    found = set()
    for module in modules:
        inside = {n for n in names if n.startswith(module + ".")}
        if not inside:
            tops = sorted({n.split(".")[0] for n in names})
            raise InputError(f"{flag} {module}: no such module; the net has {', '.join(tops)}")
        found |= inside
    return found


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()})


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_weights(path: Path) -> dict:
    """The model state dict in a run checkpoint or an exported models/*.pt."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state = saved.get("model") or saved.get("state_dict")
    return {k: v for k, v in state.items() if k.split(".")[-1] not in ENTROPY_TABLES}


class CodecTrainer:
    """``overrides``: the RESUMABLE settings of ``config`` that replace the checkpoint's on
    resume (the command line passes those given explicitly)."""

    def __init__(self, config: TrainConfig, run_dir: Path, resume: bool, overrides=RESUMABLE):
        self.run_dir = run_dir
        checkpoint_path = run_dir / CHECKPOINT
        saved = None
        if checkpoint_path.exists():
            if not resume:
                raise InputError(f"{run_dir} already holds a run: pass --resume or another --out")
            saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
            stored = {"slides": list(LEGACY_TRAIN_SLIDES), **saved["config"]}
            stored.update({k: getattr(config, k) for k in RESUMABLE if k in overrides})
            config = TrainConfig(**stored)
        self.config = config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.net = build_net(config.arch, config.N, config.M, **own_widths(asdict(config)))
        if config.quantization not in QUANTIZATIONS:
            raise InputError(f"--quantization must be one of {', '.join(QUANTIZATIONS)}")
        if config.quantization == "rounded" and not isinstance(self.net, MeanScaleHyperprior):
            raise InputError(f"--quantization rounded needs a mean-scale model, not {config.arch}")
        trained = _under(self.net, config.train_only, "--train-only") if config.train_only else None
        aux = [p for n, p in self.net.named_parameters() if n.endswith("quantiles")]
        main = [p for n, p in self.net.named_parameters()
                if not n.endswith("quantiles") and (trained is None or n in trained)]
        for name, param in self.net.named_parameters():
            param.requires_grad_(name.endswith("quantiles") or trained is None or name in trained)
        self.optimizer = torch.optim.Adam(main, lr=config.lr)
        self.aux_optimizer = torch.optim.Adam(aux, lr=config.aux_lr)
        self.rng = np.random.default_rng(config.seed)
        self.step, self.cpu_seconds, self.wall_seconds = 0, 0.0, 0.0
        if saved is not None:
            self.net.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.aux_optimizer.load_state_dict(saved["aux_optimizer"])
            self.rng.bit_generator.state = json.loads(saved["numpy_rng"])
            torch.set_rng_state(saved["torch_rng"])
            self.step = int(saved["step"])
            self.cpu_seconds, self.wall_seconds = float(saved["cpu_seconds"]), float(saved["wall_seconds"])
        elif config.init:
            # nn.Module's loader: CompressAI's insists on CDF tables, which training does not use.
            misfit = f"--init {config.init} does not fit {config.arch} N={config.N} M={config.M}"
            fresh = _under(self.net, config.fresh, "--fresh", buffers=True)
            weights = {k: v for k, v in load_weights(Path(config.init)).items() if k not in fresh}
            if config.grow:
                weights = grown(self.net, weights, _under(self.net, config.grow, "--grow"))
            try:
                loaded = torch.nn.Module.load_state_dict(self.net, weights, strict=False)
            except RuntimeError as exc:  # tensor shapes differ
                raise InputError(f"{misfit}: {str(exc).splitlines()[1].strip()}") from None
            missing = [k for k in loaded.missing_keys
                       if k.split(".")[-1] not in ENTROPY_TABLES and k not in fresh]
            if missing or loaded.unexpected_keys:
                raise InputError(f"{misfit}: {(missing + loaded.unexpected_keys)[:4]}")
        self.net = self.net.to(memory_format=torch.channels_last).train()
        self.main_params = main
        self._stop = False

    def save(self) -> None:
        _save_atomic({
            "config": asdict(self.config),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "cpu_seconds": self.cpu_seconds,
            "wall_seconds": self.wall_seconds,
        }, self.run_dir / CHECKPOINT)

    def _on_signal(self, signum, _frame) -> None:
        print(f"signal {signum}: stopping after this step", flush=True)
        self._stop = True

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr_at(self.step)
        with transforms_in(self.net, config.precision):
            terms = rate_distortion(self.net, x, config.lmbda_at(self.step), config.ssim_weight,
                                    config.quantization)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if config.clip:
            torch.nn.utils.clip_grad_norm_(self.main_params, config.clip)
        self.optimizer.step()
        self.aux_optimizer.zero_grad(set_to_none=True)
        aux = self.net.aux_loss()
        aux.backward()
        self.aux_optimizer.step()
        self.step += 1
        return {**{k: v.item() for k, v in terms.items()}, "aux": aux.item()}

    def run(self) -> None:
        config, run_dir = self.config, self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
        data_dirs = [Path(d) for d in config.data]
        sampler = training_sampler(data_dirs, config.crop, config.slides)
        val_sets = validation_tiles(data_dirs) if config.val_minutes > 0 else {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        print(f"training {config.arch} N={config.N} M={config.M} from step {self.step} to "
              f"{config.steps}; validation tiles: {({k: len(v) for k, v in val_sets.items()})}", flush=True)
        self._clock = (time.monotonic(), time.process_time())
        run_start = last_save = last_val = window_start = time.monotonic()
        sums: dict[str, float] = {}
        window_steps = 0
        while self.step < config.steps and not self._stop:
            batch = sampler.batch(self.rng, config.batch)
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255)
            terms = self.train_step(x.contiguous(memory_format=torch.channels_last))
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            window_steps += 1
            now = time.monotonic()
            if self.step % config.log_every == 0:
                self._account()
                row = {"step": self.step, "minutes": self.wall_seconds / 60,
                       "steps_per_s": window_steps / (now - window_start),
                       "lr": config.lr_at(self.step), "lmbda": config.lmbda_at(self.step),
                       **{k: v / window_steps for k, v in sums.items()}}
                _append_csv(run_dir / "train.csv", row)
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in row.items()), flush=True)
                sums, window_start, window_steps = {}, now, 0
            if config.max_minutes is not None and now - run_start >= config.max_minutes * 60:
                break
            if now - last_save >= config.checkpoint_minutes * 60:
                self._account()
                self.save()
                last_save = now
            if val_sets and now - last_val >= config.val_minutes * 60:
                self.log_validation(val_sets)
                last_val = time.monotonic()
        self._account()
        self.save()
        print(f"stopped at step {self.step}; checkpoint saved", flush=True)
        if val_sets and self.step >= config.steps:
            self.log_validation(val_sets)

    def _account(self) -> None:
        """Add the wall and CPU time since the last call to the run's totals."""
        now, cpu = time.monotonic(), time.process_time()
        self.wall_seconds += now - self._clock[0]
        self.cpu_seconds += cpu - self._clock[1]
        self._clock = (now, cpu)

    def log_validation(self, val_sets: dict) -> None:
        self._account()
        row = {"step": self.step, "minutes": self.wall_seconds / 60,
               "cpu_hours": self.cpu_seconds / 3600, "lmbda": self.config.lmbda_at(self.step),
               **validate(self.net, self.config, val_sets)}
        _append_csv(self.run_dir / "val.csv", row)
        print("validation " + " ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
