"""Enhancer model files: ``models/<name>.pt`` = {"config": {...}, "state_dict": {...}} (fp32).

Names, paths and the sha256 check are shared with the learned codec's models
(tileserver.codecs.learned_models); a model is read once per process.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tileserver.codecs.learned_models import model_path, sha256_of
from tileserver.errors import ModelError

ARCH = "RRDBNet-x4"


@dataclass
class Enhancer:
    name: str
    config: dict  # arch, blocks, features, growth, and what the export recorded
    sha256: str
    net: "torch.nn.Module"  # noqa: F821
    runners: dict = field(default_factory=dict)  # device -> runner (tileserver.sr.runtime)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def build_net(config: dict):
    from tileserver.sr.rrdbnet import RRDBNet

    if config.get("arch") != ARCH:
        raise ModelError(f"enhancer architecture {config.get('arch')!r} is not {ARCH}")
    return RRDBNet(int(config["blocks"]), int(config["features"]), int(config["growth"]))


def save_weights(net, config: dict, path: Path) -> str:
    """Write {"config", fp32 "state_dict"} atomically; return the file's sha256."""
    import torch

    state = {k: v.detach().cpu().float() for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": dict(config), "state_dict": state}, tmp)
    os.replace(tmp, path)
    return sha256_of(path)


def save_enhancer(net, info: dict, path: Path) -> str:
    return save_weights(net, {"arch": ARCH, **net.config, **info}, path)


def read_enhancer(path: Path, name: str) -> Enhancer:
    import torch

    if not path.exists():
        raise ModelError(f"enhancer model {name!r} not found: {path} does not exist")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net = build_net(saved["config"])
        net.load_state_dict(saved["state_dict"])
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"enhancer model file {path} cannot be loaded: {exc}") from None
    return Enhancer(name, saved["config"], sha256_of(path), net.eval())


_cache: dict[Path, Enhancer] = {}
_lock = threading.Lock()


def load_enhancer(name: str, directory: Path | None = None) -> Enhancer:
    """The enhancer called ``name``, read from disk on first use in this process."""
    path = model_path(name, directory).resolve()
    with _lock:
        if path not in _cache:
            _cache[path] = read_enhancer(path, name)
        return _cache[path]
