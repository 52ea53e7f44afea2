"""SR4 tiles in a real encoded slide, served by the decode engine; one corrupt tile fails alone."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from PIL import Image

from tileserver.codecs.sr4 import pack_body, unpack_body
from tileserver.engine import DecodeEngine
from tileserver.errors import CodecError
from tileserver.format import payload
from tileserver.format.reader import NeuralTiff
from tileserver.quality import psnr
from tileserver.slides.tiled import StoredSlide
from tileserver.sr.models import save_enhancer
from tileserver.sr.rrdbnet import RRDBNet

from .engine_fixtures import crop_source, encode, expected_tile


@pytest.fixture(scope="module")
def sr4_path(tmp_path_factory, cmu_svs):
    work = tmp_path_factory.mktemp("engine-sr4")
    patch = pytest.MonkeyPatch()
    patch.setenv("TILESERVER_MODELS", str(work))
    torch.manual_seed(0)
    net = RRDBNet(blocks=1, features=8, growth=4)
    torch.nn.init.zeros_(net.conv_last.weight)  # a bicubic restoration: enough to check the plumbing
    torch.nn.init.zeros_(net.conv_last.bias)
    save_enhancer(net, {}, work / "sr4-tiny.pt")
    source = crop_source(cmu_svs, work / "crop.png", 600, 800, 768, 512)
    yield encode(source, work / "sr4.tif", "sr4:sr4-tiny:jxl0.5"), source
    patch.undo()


def _corrupt_in_place(path, level: int, col: int, row: int) -> None:
    """Give one tile an unknown low-res storage kind, with a valid CRC: only the codec can tell."""
    with NeuralTiff(path) as reader:
        stored = reader.tile_bytes(level, col, row)
    codec_id, body = payload.unpack(stored)
    name, _, data = unpack_body(body)
    content = path.read_bytes()
    offset = content.find(stored)
    assert offset > 0 and content.count(stored) == 1
    path.write_bytes(content[:offset] + payload.pack(codec_id, pack_body(name, 99, data))
                     + content[offset + len(stored):])


def test_sr4_slide_decodes_through_the_engine(sr4_path):
    path, source = sr4_path
    original = np.asarray(Image.open(source).convert("RGB"))
    slide = StoredSlide(path)
    across, down = slide.pyramid.grid(0)

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2)
        tiles = await asyncio.gather(*(engine.tile(slide, 0, c, r) for r in range(down) for c in range(across)))
        engine.close()
        return tiles

    tiles = asyncio.run(run())
    assert len(tiles) == across * down == 6
    first = tiles[0]
    assert np.array_equal(first, expected_tile(path, 0, 0, 0))
    assert psnr(original[:256, :256], first) > 20  # a 4x restoration of real tissue, not noise


def test_corrupt_sr4_tile_fails_alone(sr4_path, tmp_path):
    path, _ = sr4_path
    broken = tmp_path / "broken.tif"
    broken.write_bytes(path.read_bytes())
    _corrupt_in_place(broken, 0, 1, 0)
    slide = StoredSlide(broken)

    async def run():
        engine = DecodeEngine("cpu", cpu_workers=2)
        results = await asyncio.gather(*(engine.tile(slide, 0, c, 0) for c in range(3)), return_exceptions=True)
        engine.close()
        return results

    left, bad, right = asyncio.run(run())
    assert isinstance(bad, CodecError) and "storage kind" in str(bad)
    assert np.array_equal(left, expected_tile(path, 0, 0, 0))
    assert np.array_equal(right, expected_tile(path, 0, 2, 0))
