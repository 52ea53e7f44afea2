"""Training loop for the SR4 enhancer (RRDBNet x4, L1 pixel loss) on this 2-core CPU.

High-resolution crops come from the learned codec's sampler (tileserver.train.codec_data);
each is reduced 4x exactly as the SR4 encoder reduces a tile, then passed through a low-res
storage drawn from ``lr_storages`` so that the net learns to restore what a decoder reads.
A run directory holds ``checkpoint.pt`` (atomic, every few minutes and on SIGTERM/SIGINT),
``config.json``, ``train.csv`` and ``val.csv`` (PSNR/SSIM of the net and of bicubic on the
validation tiles, per storage). ``steps`` is the step to reach, so resuming ends where one
uninterrupted run would.
"""
from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from tileserver import quality
from tileserver.errors import InputError
from tileserver.sr.models import ARCH
from tileserver.sr.rrdbnet import RRDBNet
from tileserver.sr.scale import bicubic_upscale, downscale
from tileserver.sr.storage import round_trip
from tileserver.train.codec_data import training_sampler, validation_tiles
from tileserver.train.codec_trainer import _append_csv, _save_atomic

CHECKPOINT = "checkpoint.pt"
# Settings a resumed run may change; every other setting comes from the checkpoint.
RESUMABLE = ("steps", "lr", "max_minutes", "threads", "data", "checkpoint_minutes", "val_minutes")


@dataclass
class SRConfig:
    blocks: int = 4
    features: int = 32
    growth: int = 16
    crop: int = 96  # high-res crop side, a multiple of 4
    batch: int = 16
    steps: int = 1_000_000
    lr: float = 2e-4
    lr_storages: list[str] = field(default_factory=lambda: ["webp", "jpeg95", "jxl0.5"])
    val_storages: list[str] = field(default_factory=lambda: ["webp", "jxl0.5"])
    threads: int = 1
    seed: int = 0
    data: list[str] = field(default_factory=list)
    checkpoint_minutes: float = 5.0
    val_minutes: float = 15.0
    log_every: int = 50
    max_minutes: float | None = None

    def model_config(self) -> dict:
        return {"arch": ARCH, "blocks": self.blocks, "features": self.features, "growth": self.growth}


def to_tensor(images: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [0, 1], channels_last."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2).float() / 255
    return x.contiguous(memory_format=torch.channels_last)


def to_images(x: torch.Tensor) -> list[np.ndarray]:
    return list(np.rint(x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8))


def restore(net, smalls: list[np.ndarray], batch: int = 8) -> list[np.ndarray]:
    with torch.inference_mode():
        return [t for i in range(0, len(smalls), batch) for t in to_images(net(to_tensor(smalls[i : i + batch])))]


def validate(net, tile_sets: dict[str, list[np.ndarray]], storages: list[str]) -> dict[str, float]:
    """Mean PSNR, mean and min SSIM of the net and of bicubic, per tile set and storage."""
    net.eval()
    row: dict[str, float] = {}
    for name, tiles in tile_sets.items():
        for store in storages:
            smalls = [round_trip(store, downscale(t)) for t in tiles]
            for method, restored in (("sr", restore(net, smalls)), ("bicubic", [bicubic_upscale(s) for s in smalls])):
                ssims = [quality.ssim(t, r) for t, r in zip(tiles, restored)]
                key = f"{name}_{store}_{method}"
                row[f"{key}_psnr"] = float(np.mean([quality.psnr(t, r) for t, r in zip(tiles, restored)]))
                row[f"{key}_ssim"] = float(np.mean(ssims))
                row[f"{key}_ssim_min"] = float(np.min(ssims))
    net.train()
    return row


class SRTrainer:
    def __init__(self, config: SRConfig, run_dir: Path, resume: bool):
        self.run_dir = run_dir
        saved = None
        if (run_dir / CHECKPOINT).exists():
            if not resume:
                raise InputError(f"{run_dir} already holds a run: pass --resume or another --out")
            saved = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
            stored = dict(saved["config"])
            stored.update({k: getattr(config, k) for k in RESUMABLE})
            config = SRConfig(**stored)
        elif resume:
            raise InputError(f"{run_dir} holds no {CHECKPOINT} to resume")
        self.config = config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.net = RRDBNet(config.blocks, config.features, config.growth)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr, betas=(0.9, 0.99))
        self.rng = np.random.default_rng(config.seed)
        self.step, self.cpu_seconds, self.wall_seconds = 0, 0.0, 0.0
        if saved is not None:
            self.net.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.rng.bit_generator.state = json.loads(saved["numpy_rng"])
            torch.set_rng_state(saved["torch_rng"])
            self.step = int(saved["step"])
            self.cpu_seconds, self.wall_seconds = float(saved["cpu_seconds"]), float(saved["wall_seconds"])
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr
        self.net = self.net.to(memory_format=torch.channels_last).train()
        self._stop = False

    def save(self) -> None:
        _save_atomic({
            "config": asdict(self.config),
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "cpu_seconds": self.cpu_seconds,
            "wall_seconds": self.wall_seconds,
        }, self.run_dir / CHECKPOINT)

    def pairs(self, sampler) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of (stored low-res input, high-res target)."""
        crops = sampler.batch(self.rng, self.config.batch)
        stores = self.rng.choice(self.config.lr_storages, size=len(crops))
        smalls = [round_trip(str(s), downscale(c)) for s, c in zip(stores, crops)]
        return to_tensor(smalls), to_tensor(crops)

    def train_step(self, small: torch.Tensor, target: torch.Tensor) -> float:
        loss = F.l1_loss(self.net(small), target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.item()

    def _on_signal(self, signum, _frame) -> None:
        print(f"signal {signum}: stopping after this step", flush=True)
        self._stop = True

    def run(self) -> None:
        config, run_dir = self.config, self.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
        data_dirs = [Path(d) for d in config.data]
        sampler = training_sampler(data_dirs, config.crop)
        val_sets = validation_tiles(data_dirs) if config.val_minutes > 0 else {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        print(f"training {ARCH} blocks={config.blocks} features={config.features} growth={config.growth} "
              f"from step {self.step} to {config.steps}; validation tiles: "
              f"{({k: len(v) for k, v in val_sets.items()})}", flush=True)
        clock = {"wall": time.monotonic(), "cpu": time.process_time()}

        def account() -> None:
            now, cpu = time.monotonic(), time.process_time()
            self.wall_seconds += now - clock["wall"]
            self.cpu_seconds += cpu - clock["cpu"]
            clock.update(wall=now, cpu=cpu)

        run_start = last_save = last_val = window_start = time.monotonic()
        if val_sets and self.step == 0:
            self.log_validation(val_sets)
        losses: list[float] = []
        while self.step < config.steps and not self._stop:
            losses.append(self.train_step(*self.pairs(sampler)))
            now = time.monotonic()
            if self.step % config.log_every == 0:
                account()
                row = {"step": self.step, "minutes": self.wall_seconds / 60,
                       "steps_per_s": len(losses) / (now - window_start), "lr": config.lr,
                       "l1": float(np.mean(losses))}
                _append_csv(run_dir / "train.csv", row)
                print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
                losses, window_start = [], now
            if config.max_minutes is not None and now - run_start >= config.max_minutes * 60:
                break
            if now - last_save >= config.checkpoint_minutes * 60:
                account()
                self.save()
                last_save = now
            if val_sets and now - last_val >= config.val_minutes * 60:
                self.log_validation(val_sets)
                last_val = time.monotonic()
        account()
        self.save()
        print(f"stopped at step {self.step}; checkpoint saved", flush=True)
        if val_sets and self.step >= config.steps:
            self.log_validation(val_sets)

    def export(self, path: Path) -> str:
        """Write the net's fp32 weights to a models/*.pt file; return its sha256."""
        from tileserver.sr.models import save_enhancer

        info = {"steps": self.step, "cpu_hours": round(self.cpu_seconds / 3600, 3),
                "crop": self.config.crop, "lr_storages": self.config.lr_storages}
        return save_enhancer(self.net, info, path)

    def log_validation(self, val_sets: dict) -> None:
        row = {"step": self.step, "minutes": self.wall_seconds / 60, "cpu_hours": self.cpu_seconds / 3600,
               **validate(self.net, val_sets, self.config.val_storages)}
        _append_csv(self.run_dir / "val.csv", row)
        print("validation " + " ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
