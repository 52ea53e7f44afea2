"""The Compression Decision Agent's policy: a small CNN, tile and λ -> P(compress).

The tile is seen at 128 px (Pillow's antialiased bicubic), through four stride-2
convolutions and a global average; an MLP head gives two numbers per tile, u and v, and the
logit of P(compress) is ``u - λ·softplus(v)``. That is the shape of the reward it is trained
on (compress pays ``gain - λ·loss``, loss ≥ 0): one policy serves every λ in [0.1, 1.0], and
P(compress) never rises with λ. Files: ``models/<name>.pt`` = {"config": {...},
"state_dict": {...}} (fp32).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from tileserver.codecs.learned_models import model_path, sha256_of
from tileserver.errors import ModelError
from tileserver.sr.models import save_weights

VIEW = 128  # the side the policy sees a tile at
ARCH = "cda-cnn-affine"
LMBDA_RANGE = (0.1, 1.0)


class DecisionPolicy(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.config = {"arch": ARCH, "width": width}
        channels = [3, width // 2, width, 2 * width, 2 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        for layer in layers[::2]:  # He init keeps the tile's signal alive through the ReLUs
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        self.head = nn.Sequential(nn.Linear(channels[-1], width), nn.ReLU(), nn.Linear(width, 2))

    def forward(self, x: torch.Tensor, lmbda: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x VIEW x VIEW in [0, 1]; lmbda: N -> N logits of P(compress)."""
        u, v = self.head(self.features(2 * x - 1)).unbind(1)
        return u - lmbda * nn.functional.softplus(v)


def view(tile: np.ndarray) -> np.ndarray:
    """A tile as the policy sees it: VIEW x VIEW x 3 uint8."""
    return np.asarray(Image.fromarray(tile).resize((VIEW, VIEW), Image.Resampling.BICUBIC))


def to_input(views: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float() / 255


def check_lmbda(lmbda: float) -> float:
    if not LMBDA_RANGE[0] <= lmbda <= LMBDA_RANGE[1]:
        raise ValueError(f"λ must be in [{LMBDA_RANGE[0]}, {LMBDA_RANGE[1]}], not {lmbda}")
    return lmbda


@dataclass
class Policy:
    name: str
    sha256: str
    net: DecisionPolicy
    lock: threading.Lock

    def p_compress(self, tiles: list[np.ndarray], lmbda: float) -> np.ndarray:
        """P(compress) per tile, deterministic: the same tile gives the same number."""
        x = to_input([view(t) for t in tiles])
        with self.lock, torch.inference_mode():
            logits = self.net(x, torch.full((len(tiles),), float(check_lmbda(lmbda))))
        return torch.sigmoid(logits).numpy().astype(np.float64)


def save_policy(net: DecisionPolicy, info: dict, path: Path) -> str:
    return save_weights(net, {**net.config, **info}, path)


def read_policy(path: Path, name: str) -> Policy:
    if not path.exists():
        raise ModelError(f"decision policy {name!r} not found: {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved["config"].get("arch") != ARCH:
            raise ModelError(f"{path} is not a {ARCH} decision policy")
        net = DecisionPolicy(int(saved["config"]["width"]))
        net.load_state_dict(saved["state_dict"])
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"decision policy file {path} cannot be loaded: {exc}") from None
    return Policy(name, sha256_of(path), net.eval(), threading.Lock())


def load_policy(name: str, directory: Path | None = None) -> Policy:
    return read_policy(model_path(name, directory), name)
