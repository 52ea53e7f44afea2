"""Slides for engine and server tests, made with the real encoder from ../shared/data."""
from __future__ import annotations

import contextlib
import os

import numpy as np
from PIL import Image

from tileserver.encode.encoder import EncodeSettings, encode_slide
from tileserver.format.reader import NeuralTiff
from tileserver import codecs
from tileserver.slides.source import open_source


def crop_source(svs, out, x: int, y: int, width: int, height: int):
    """A PNG of part of a real slide: a small source that encodes in seconds."""
    with open_source(svs) as source:
        Image.fromarray(source.read_region(0, x, y, width, height)).save(out)
    return out


def encode(source, out, codec: str, glass: str = "keep"):
    encode_slide(source, out, EncodeSettings(codecs=[codec], fallback=codec, glass=glass), progress=False)
    return out


def tiny_learned_model(directory) -> str:
    """A real (untrained, seeded) learned-codec model file: enough to run the codec's stages."""
    import torch

    from tileserver.codecs.hyperprior import build_net
    from tileserver.codecs.learned_models import save_model

    torch.manual_seed(0)
    config = {"arch": "bmshj2018-hyperprior", "N": 32, "M": 48, "lmbda": 0.01}
    net = build_net(config["arch"], config["N"], config["M"])
    net.update(force=True)
    save_model(net.eval(), config, directory / "tiny.pt")
    return "tiny"


@contextlib.contextmanager
def learned_crop(work, svs, width: int, height: int):
    """A crop of a real slide coded with tiny_learned_model; $TILESERVER_MODELS points at the
    model until the block ends (decode processes started inside inherit it)."""
    models = work / "models"
    models.mkdir()
    before = os.environ.get("TILESERVER_MODELS")
    os.environ["TILESERVER_MODELS"] = str(models)
    try:
        name = tiny_learned_model(models)
        yield encode(crop_source(svs, work / "crop.png", 600, 800, width, height), work / "learned.tif", f"learned:{name}")
    finally:
        if before is None:
            del os.environ["TILESERVER_MODELS"]
        else:
            os.environ["TILESERVER_MODELS"] = before


def expected_tile(path, level: int, col: int, row: int) -> np.ndarray:
    """A tile decoded the offline way (reader + codec), cut to its valid size."""
    with NeuralTiff(path) as reader:
        stored = reader.tile_payload(level, col, row)
        info, t = reader.levels[level], reader.tile_size
        width, height = min(t, info.width - col * t), min(t, info.height - row * t)
        if stored is None:
            tile = np.empty((height, width, 3), np.uint8)
            tile[:] = reader.metadata.background
            return tile
        return codecs.decoder(stored[0]).decode(stored[1])[:height, :width]
