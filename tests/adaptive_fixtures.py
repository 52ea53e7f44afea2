"""An adaptive-coded slide for tests: a crop of the real CMU slide with glass and tissue, encoded
with `--codec adaptive` by a hand-set decision policy (compress the dark tiles, keep the light
ones) and the shipped SR4 enhancer, so one slide holds keep, compress and glass tiles."""
from __future__ import annotations

import os
from pathlib import Path

from tileserver.codecs.learned_models import models_dir
from tileserver.codecs.sr4 import DEFAULT_MODEL
from tileserver.encode.encoder import EncodeSettings, encode_slide
from tileserver.sr.policy import save_policy

from .engine_fixtures import crop_source
from .test_agent import brightness_policy

POLICY = "cda-dark"
CROP = (512, 256, 1024, 768)  # x, y, width, height of cmu-1-small-region: glass at the left, tissue


def adaptive_models(directory: Path) -> Path:
    """A models directory holding the hand-set policy and (linked) the shipped enhancer."""
    directory.mkdir(parents=True, exist_ok=True)
    os.symlink(models_dir() / f"{DEFAULT_MODEL}.pt", directory / f"{DEFAULT_MODEL}.pt")
    save_policy(brightness_policy(), {}, directory / f"{POLICY}.pt")
    return directory


def adaptive_slide(cmu_svs: Path, work: Path, out_name: str = "adaptive.tif", **options) -> tuple[Path, Path]:
    """(the encoded slide, its PNG source); ``options`` go to EncodeSettings. Needs TILESERVER_MODELS
    set to an adaptive_models directory."""
    source = work / "adaptive-source.png"
    if not source.exists():
        crop_source(cmu_svs, source, *CROP)
    settings = EncodeSettings(**{"codecs": ["adaptive:0.5"], "policy": POLICY, **options})
    out = work / out_name
    encode_slide(source, out, settings, progress=False)
    return out, source
