"""Learned-codec model files: ``models/<name>.pt`` = {"config": {...}, "state_dict": {...}}.

The state dict is fp32 and includes the entropy models' quantised CDF tables, filled by
``update()`` at export, so that every machine decodes with the very tables the encoder used.
The file's sha256 goes into each slide's codec table; a model is loaded once per process.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tileserver.errors import ModelError
from tileserver.hashing import sha256_of

MODELS_ENV = "TILESERVER_MODELS"


def models_dir() -> Path:
    """$TILESERVER_MODELS, else models/ at the repository root."""
    return Path(os.environ.get(MODELS_ENV) or Path(__file__).resolve().parents[2] / "models")


DEFAULT_FILE = "DEFAULT"  # models/DEFAULT names the default learned model (spec learned:default)


def default_model_name(directory: Path | None = None) -> str:
    """The model that ``models/DEFAULT`` names: the encoder's and the demo's learned codec."""
    path = (directory or models_dir()) / DEFAULT_FILE
    try:
        name = path.read_text().strip()
    except OSError:
        raise ModelError(f"no default learned model: {path} does not exist") from None
    if not model_path(name, directory).exists():
        raise ModelError(f"{path} names {name!r}, but {model_path(name, directory)} does not exist")
    return name


def model_path(name: str, directory: Path | None = None) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"bad learned model name {name!r}")
    return (directory or models_dir()) / f"{name}.pt"


@dataclass
class LearnedModel:
    """A model ready to code tiles: its bit-exact entropy coder and its g_s."""

    name: str
    config: dict  # arch, N, M, lmbda, and whatever the export recorded
    sha256: str
    coder: "BitExactHyperprior"  # noqa: F821 (imported lazily: torch is heavy)
    runners: dict = field(default_factory=dict)  # device -> g_s runner (codecs.synthesis)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_net(cls, name: str, net, config: dict, sha256: str = "") -> "LearnedModel":
        from tileserver.codecs.hyperprior import BitExactHyperprior

        return cls(name, dict(config), sha256, BitExactHyperprior(net))


def save_model(net, config: dict, path: Path) -> str:
    """Write an update()d net's fp32 weights and CDF tables atomically; return the sha256."""
    import torch

    state = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
             for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": dict(config), "state_dict": state}, tmp)
    os.replace(tmp, path)
    return sha256_of(path)


def read_net(path: Path) -> tuple:
    """(net in eval mode, config) of a model file, its CDF tables included."""
    import torch

    from tileserver.codecs.hyperprior import build_net, own_widths

    saved = torch.load(path, map_location="cpu", weights_only=True)
    config = saved["config"]
    net = build_net(config["arch"], int(config["N"]), int(config["M"]), **own_widths(config))
    net.load_state_dict(saved["state_dict"])
    return net.eval(), config


def read_model(path: Path, name: str) -> LearnedModel:
    if not path.exists():
        raise ModelError(f"learned model {name!r} not found: {path} does not exist")
    sha256 = sha256_of(path)
    try:
        net, config = read_net(path)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"learned model file {path} cannot be loaded: {exc}") from None
    return LearnedModel.from_net(name, net, config, sha256)


_cache: dict[Path, LearnedModel] = {}
_lock = threading.Lock()


def load_model(name: str, directory: Path | None = None) -> LearnedModel:
    """The model called ``name``, read from disk on first use in this process."""
    path = model_path(name, directory).resolve()
    with _lock:
        if path not in _cache:
            _cache[path] = read_model(path, name)
        return _cache[path]


def check_model(name: str, sha256: str, directory: Path | None = None) -> None:
    """Raise ModelError unless models/<name>.pt exists and has this sha256."""
    path = model_path(name, directory)
    if not path.exists():
        raise ModelError(
            f"learned model {name!r} needed by this slide is missing: {path} does not exist"
        )
    actual = sha256_of(path)
    if actual != sha256:
        raise ModelError(
            f"learned model {name!r} at {path} has sha256 {actual[:16]}..., but the slide was "
            f"encoded with {sha256[:16]}...: use the model file the slide was encoded with"
        )
