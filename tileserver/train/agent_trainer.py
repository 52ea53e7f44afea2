"""REINFORCE for the Compression Decision Agent (single step, one decision per tile).

Keep earns 0. Compress earns ``gain - λ·(1 - Dice)`` when the nuclei Dice of the restored tile
is at least τ, and -1 below τ. ``gain`` is the bytes SR4 saves against the keep codec as a
share of the raw tile (H·W·3 bytes): about 0.1 for JPEG q90 tiles, which puts the break-even
Dice between 0.9 (λ = 1) and 0 (λ = 0.1). Dice compares the nuclei masks (tileserver.nuclei)
of the tile and of its SR4 restoration.
Each training sample draws λ uniformly from [0.1, 1.0], so one policy serves every λ.
The advantage is the reward minus a learned baseline, and training tiles are drawn evenly
over nuclei-Dice bins (the tiles that lose nuclei are rare).

Rewards need the enhancer once per tile, so they are computed first and cached in the run
directory (``rewards-train.npz``, ``rewards-val.npz``); the policy then trains on them in
minutes. ``val.csv`` reports the mean reward of the greedy policy on the validation fixtures
against always-keep, always-compress and the oracle, per λ.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tileserver import codecs
from tileserver.nuclei import nuclei_dice
from tileserver.sr.policy import LMBDA_RANGE, DecisionPolicy, save_policy, to_input, view
from tileserver.train.codec_data import (DEFAULT_DATA, LC25000, TRAIN_SLIDES, _find, pyramid,
                                         read_slide_level0, tissue_fraction, validation_tiles)

TILE = 256
EVAL_LMBDAS = (0.1, 0.5, 1.0)
DICE_BINS = (0.7, 0.8, 0.9)  # edges of the Dice bins that balanced sampling evens out


@dataclass
class AgentConfig:
    sr4: str = "sr4"  # the SR4 codec spec whose restorations are judged
    keep: str = "jpeg:90"
    tau: float = 0.7  # below this nuclei Dice, compressing earns -1
    width: int = 32
    steps: int = 3000
    batch: int = 64
    lr: float = 3e-4
    baseline_lr: float = 1e-3
    entropy: float = 0.01  # entropy bonus weight, keeps exploring early
    balance: bool = True  # draw training tiles evenly over Dice bins (dice_balanced_weights)
    lc_patches: int = 1000  # LC25000 patches (224 px) added to the slide tiles
    min_tissue: float = 0.05
    threads: int = 1
    seed: int = 0
    data: list[str] = field(default_factory=lambda: [str(DEFAULT_DATA)])


def compress_reward(gain: np.ndarray, dice: np.ndarray, lmbda, tau: float) -> np.ndarray:
    return np.where(dice >= tau, gain - lmbda * (1.0 - dice), -1.0)


def training_tiles(config: AgentConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """256 px tiles of the training slides at every 2x level (some tissue), and LC25000 patches.

    The stride halves with each level (128 px at level 0, 64 at level 1, then 32): the coarse
    levels, where a 4x restoration loses most nuclei, would otherwise give a handful of tiles.
    """
    data_dirs = [Path(d) for d in config.data]
    tiles = []
    for relative in TRAIN_SLIDES:
        path = _find(data_dirs, relative)
        for index, level in enumerate(pyramid(read_slide_level0(path), TILE) if path else []):
            stride = TILE // 2 ** min(index + 1, 3)
            for y in range(0, level.shape[0] - TILE + 1, stride):
                for x in range(0, level.shape[1] - TILE + 1, stride):
                    tile = np.ascontiguousarray(level[y : y + TILE, x : x + TILE])
                    if tissue_fraction(tile[::4, ::4]) >= config.min_tissue:
                        tiles.append(tile)
    lc_root = _find(data_dirs, LC25000)
    if lc_root and config.lc_patches:
        files = sorted(lc_root.rglob("*.jpeg")) + sorted(lc_root.rglob("*.jpg"))
        for f in rng.choice(files, size=min(config.lc_patches, len(files)), replace=False):
            with Image.open(f) as im:
                tiles.append(np.asarray(im.convert("RGB")))
    return tiles


def outcomes(tiles: list[np.ndarray], sr4_spec: str, keep_spec: str, batch: int = 8) -> dict[str, np.ndarray]:
    """Per tile: the policy's view, the share of raw bytes SR4 saves against keep, nuclei Dice."""
    sr4, keep = codecs.from_spec(sr4_spec), codecs.from_spec(keep_spec)
    gains, dices = [], []
    for i in range(0, len(tiles), batch):
        chunk = tiles[i : i + batch]
        bodies = [sr4.encode(t) for t in chunk]
        for tile, body, restored in zip(chunk, bodies, sr4.decode_batch(bodies)):
            gains.append((len(keep.encode(tile)) - len(body)) / tile.nbytes)
            dices.append(nuclei_dice(tile, restored))
    return {"views": np.stack([view(t) for t in tiles]), "gain": np.array(gains), "dice": np.array(dices)}


def cached_outcomes(path: Path, make) -> dict[str, np.ndarray]:
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **make())
        tmp.replace(path)
    with np.load(path) as saved:
        return dict(saved)


def greedy_report(net, table: dict[str, np.ndarray], tau: float) -> dict[str, float]:
    """Mean reward per tile and share compressed: greedy policy, keep-all, compress-all, oracle."""
    row: dict[str, float] = {}
    x = to_input(list(table["views"]))
    net.eval()
    for lmbda in EVAL_LMBDAS:
        with torch.inference_mode():
            compress = (net(x, torch.full((len(x),), lmbda)) > 0).numpy()
        reward = compress_reward(table["gain"], table["dice"], lmbda, tau)
        row[f"l{lmbda}_policy"] = float(np.mean(reward * compress))
        row[f"l{lmbda}_policy_share"] = float(compress.mean())
        row[f"l{lmbda}_compress_all"] = float(np.mean(reward))
        row[f"l{lmbda}_oracle"] = float(np.mean(np.maximum(reward, 0)))
        row[f"l{lmbda}_oracle_share"] = float(np.mean(reward > 0))
    net.train()
    return row


def _augment(views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random rotation and flip per view (the policy should not care about orientation)."""
    out = [np.rot90(v, rng.integers(4)) for v in views]
    return np.stack([v[:, ::-1] if rng.random() < 0.5 else v for v in out])


def dice_balanced_weights(dice: np.ndarray, edges=DICE_BINS) -> np.ndarray:
    """Sampling probabilities that give every Dice bin the same share of the draws.

    Tiles whose restoration loses nuclei are a few percent of the training set; drawn
    uniformly, a batch of 64 seldom holds one and the policy learns to compress everything.
    Re-weighting states leaves the best action for each state unchanged.
    """
    bins = np.searchsorted(np.asarray(edges), dice, side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    weights = 1.0 / counts[bins]
    return weights / weights.sum()


def reinforce(config: AgentConfig, train: dict[str, np.ndarray], val: dict[str, np.ndarray],
              log_path: Path) -> DecisionPolicy:
    """REINFORCE with a learned baseline: a second net of the same shape regresses the reward
    of the sampled action from (tile, λ), and the policy's advantage is the reward minus it.
    The policy's learning rate decays to 0 along a cosine, so the last step is the policy."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net, baseline = DecisionPolicy(config.width), DecisionPolicy(config.width)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)  # settles the policy
    baseline_optimizer = torch.optim.Adam(baseline.parameters(), lr=config.baseline_lr)
    draw = dice_balanced_weights(train["dice"]) if config.balance else None
    with open(log_path, "w", newline="") as handle:
        writer = None
        for step in range(1, config.steps + 1):
            index = rng.choice(len(train["gain"]), size=config.batch, p=draw)
            lmbda = rng.uniform(*LMBDA_RANGE, size=config.batch)
            x, lmbda_t = to_input(list(_augment(train["views"][index], rng))), torch.tensor(lmbda).float()
            dist = torch.distributions.Bernoulli(logits=net(x, lmbda_t))
            action = dist.sample()
            reward = torch.tensor(compress_reward(train["gain"][index], train["dice"][index], lmbda,
                                                  config.tau)).float() * action
            expected = baseline(x, lmbda_t)
            baseline_loss = torch.nn.functional.mse_loss(expected, reward)
            baseline_optimizer.zero_grad(set_to_none=True)
            baseline_loss.backward()
            baseline_optimizer.step()
            advantage = reward - expected.detach()
            advantage = advantage / (advantage.std() + 1e-6)
            loss = -(advantage * dist.log_prob(action)).mean() - config.entropy * dist.entropy().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 100 == 0 or step == config.steps:
                row = {"step": step, "reward": float(reward.mean()), **greedy_report(net, val, config.tau)}
                if writer is None:
                    writer = csv.DictWriter(handle, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
                handle.flush()
                print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
    return net.eval()


def train_agent(config: AgentConfig, run_dir: Path, model_out: Path) -> str:
    """Compute (or reuse) the reward tables, train the policy, write it; return its sha256."""
    torch.set_num_threads(config.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    rng = np.random.default_rng(config.seed)
    train = cached_outcomes(run_dir / "rewards-train.npz",
                            lambda: outcomes(training_tiles(config, rng), config.sr4, config.keep))
    val = cached_outcomes(run_dir / "rewards-val.npz", lambda: outcomes(
        validation_tiles([Path(d) for d in config.data])["fixtures"], config.sr4, config.keep))
    print(f"{len(train['gain'])} training tiles, {len(val['gain'])} validation tiles", flush=True)
    net = reinforce(config, train, val, run_dir / "val.csv")
    sr4 = codecs.from_spec(config.sr4).describe()
    info = {"tau": config.tau, "keep": config.keep, "sr4_model": sr4["model"], "sr4_sha256": sr4["sha256"],
            "steps": config.steps, "training_tiles": int(len(train["gain"]))}
    return save_policy(net, info, model_out)
