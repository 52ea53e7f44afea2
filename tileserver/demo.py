"""The demo's slides: the shipped CMU-1 region, encoded once per codec into a user cache directory.

The cache directory is $XDG_CACHE_HOME/tileserver (else ~/.cache/tileserver). Each encoding
lives under a name that carries the source's sha256 prefix and the codec spec (and, for a
learned model, the model file's sha256 prefix), so a new model or codec setting encodes afresh
and an unchanged one is reused. The encoder writes through a temporary file and renames it,
so an interrupted demo never leaves a half-written slide behind.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tileserver.codecs.learned_models import default_model_name, models_dir, sha256_of
from tileserver.encode.encoder import EncodeSettings, encode_slide
from tileserver.errors import ModelError
from tileserver.format.reader import NeuralTiff

SLIDE_NAME = "cmu-1-small-region.svs"
SLIDE_SHA256 = "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7"
FALLBACK_CODEC = "jxl:1.0"
COMPARISON_CODEC = "jpeg:90"


def shipped_slide() -> Path:
    """The path of the slide shipped in tileserver/data."""
    return Path(__file__).resolve().parent / "data" / SLIDE_NAME


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tileserver"


def best_codec(directory: Path | None = None) -> str:
    """learned:NAME for the default learned model (models/DEFAULT), else jxl:1.0."""
    try:
        return f"learned:{default_model_name(directory)}"
    except ModelError:
        return FALLBACK_CODEC


def _file_label(spec: str) -> str:
    """A file-name label for a codec spec: 'jxl-1.0', 'learned-NAME-<sha8>'."""
    label = spec.replace(":", "-")
    if spec.startswith("learned:"):
        label += "-" + sha256_of(models_dir() / f"{spec.split(':', 1)[1]}.pt")[:8]
    return label


@dataclass
class DemoSlide:
    slide_id: str  # path relative to the demo directory: the server's id
    codec: str
    encoded_now: bool
    tiles_per_codec: dict[str, int]  # what the encoder's quality guard actually wrote


def prepare(codecs: list[str], root: Path | None = None, workers: int = 1, progress: bool = True) -> tuple[Path, list[DemoSlide]]:
    """Copy the shipped slide into the demo directory and encode it with each codec not yet cached.

    Returns the demo directory (the server's root) and its slides, the original first.
    """
    root = root or cache_dir() / "demo"
    root.mkdir(parents=True, exist_ok=True)
    source = shipped_slide()
    original = root / SLIDE_NAME
    if not original.exists() or original.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, original)
    slides = [DemoSlide(SLIDE_NAME, "original", False, {})]
    stem = Path(SLIDE_NAME).stem
    for spec in codecs:
        name = f"{stem}.{SLIDE_SHA256[:8]}.{_file_label(spec)}.tiff"
        target = root / name
        fresh = not target.exists()
        if fresh:
            encode_slide(original, target, EncodeSettings(codecs=[spec], workers=workers), progress=progress)
        with NeuralTiff(target) as written:
            per_codec = dict(written.metadata.stats.get("tiles_per_codec", {}))
        slides.append(DemoSlide(name, spec, fresh, per_codec))
    return root, slides
