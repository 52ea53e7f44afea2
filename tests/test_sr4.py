"""SR4 codec: round trip with a tiny enhancer, model checks, corrupt bodies fail one tile only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tileserver import codecs
from tileserver.codecs.sr4 import Sr4Codec, pack_body, unpack_body
from tileserver.errors import CodecError, ModelError
from tileserver.precision import CODEC_PRECISION_ENV, SR_PRECISION_ENV, cpu_precision, native_bf16
from tileserver.sr import models
from tileserver.sr.rrdbnet import RRDBNet
from tileserver.sr.scale import bicubic_upscale, downscale
from tileserver.sr.storage import STORAGES


@pytest.fixture()
def tiny_model(tmp_path, monkeypatch):
    """models/sr4-tiny.pt: a 1-block RRDBNet whose residual branch is zero (pure bicubic skip)."""
    monkeypatch.setenv("TILESERVER_MODELS", str(tmp_path))
    torch.manual_seed(0)
    net = RRDBNet(blocks=1, features=8, growth=4)
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    sha = models.save_enhancer(net, {"steps": 0}, tmp_path / "sr4-tiny.pt")
    return "sr4-tiny", sha


def _tile(seed: int = 0) -> np.ndarray:
    """A smooth tile with some structure (a bicubic restoration comes close to it)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(60, 200, (16, 16, 3), dtype=np.uint8)
    return bicubic_upscale(bicubic_upscale(small))


def test_registered_by_id_and_name():
    assert codecs.class_for(4) is Sr4Codec
    assert codecs.class_for("sr4") is Sr4Codec


def test_body_round_trip_fields():
    body = pack_body("sr4-x", 3, b"\x01\x02")
    assert unpack_body(body) == ("sr4-x", 3, b"\x01\x02")


@pytest.mark.parametrize("store", sorted(STORAGES))
def test_round_trip_restores_tile(tiny_model, store):
    name, _ = tiny_model
    codec = codecs.from_spec(f"sr4:{name}:{store}")
    tile = _tile()
    body = codec.encode(tile)
    (restored,) = codecs.decoder(4).decode_batch([body])
    assert restored.shape == tile.shape and restored.dtype == np.uint8
    small = downscale(tile)
    assert len(body) < tile.nbytes // 8  # the body holds the 4x-reduced image, not the tile
    # With a zero residual the enhancer is torch's bicubic: close to Pillow's bicubic restoration.
    reference = bicubic_upscale(STORAGES[store].decode(STORAGES[store].encode(small)))
    assert np.abs(restored.astype(int) - reference.astype(int)).mean() < 3.0


def test_batch_equals_single_tiles(tiny_model):
    codec = codecs.from_spec(f"sr4:{tiny_model[0]}:webp")
    bodies = [codec.encode(_tile(seed)) for seed in range(3)]
    batch = codecs.decoder(4).decode_batch(bodies)
    for body, tile in zip(bodies, batch):
        assert np.array_equal(codecs.decoder(4).decode(body), tile)


def test_onnx_runner_matches_torch(tiny_model):
    body = codecs.from_spec(f"sr4:{tiny_model[0]}:webp").encode(_tile())
    torch_tile = codecs.decoder(4, "cpu").decode(body)
    onnx_tile = codecs.decoder(4, "onnx").decode(body)
    assert np.abs(torch_tile.astype(int) - onnx_tile.astype(int)).max() <= 1


def test_describe_records_model_and_check_entry(tiny_model, tmp_path):
    name, sha = tiny_model
    entry = codecs.from_spec(f"sr4:{name}").describe()
    assert entry["model"] == name and entry["sha256"] == sha and entry["blocks"] == 1
    Sr4Codec.check_entry(entry)
    with pytest.raises(ModelError, match="sha256"):
        Sr4Codec.check_entry({**entry, "sha256": "0" * 64})
    (tmp_path / f"{name}.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        Sr4Codec.check_entry(entry)


def test_unknown_storage_is_a_codec_error():
    with pytest.raises(CodecError, match="storage"):
        codecs.from_spec("sr4:sr4-tiny:gif")


def test_corrupt_body_fails_that_tile_only(tiny_model):
    codec = codecs.from_spec(f"sr4:{tiny_model[0]}:webp")
    good = codec.encode(_tile())
    name, kind, data = unpack_body(good)
    broken = [
        good[:2],  # truncated header
        pack_body(name, kind, data[: len(data) // 2]),  # truncated image
        pack_body(name, 99, data),  # unknown storage kind
        pack_body("sr4-absent", kind, data),  # model not present
    ]
    decoder = codecs.decoder(4)
    for body in broken:
        with pytest.raises(CodecError):
            decoder.prepare(body)
    assert decoder.decode(good).shape == (256, 256, 3)


def test_tile_sides_must_divide_by_four(tiny_model):
    with pytest.raises(CodecError, match="divisible"):
        codecs.from_spec(f"sr4:{tiny_model[0]}").encode(np.zeros((250, 256, 3), np.uint8))


@pytest.mark.parametrize("env", [SR_PRECISION_ENV, CODEC_PRECISION_ENV])
def test_cpu_precision_setting(monkeypatch, env):
    for value in ("fp32", "bf16"):
        monkeypatch.setenv(env, value)
        assert cpu_precision(env) == value
    monkeypatch.setenv(env, "auto")
    assert cpu_precision(env) == ("bf16" if native_bf16() else "fp32")
    monkeypatch.setenv(env, "fp16")
    with pytest.raises(CodecError, match="auto, fp32 or bf16"):
        cpu_precision(env)


def test_bf16_restoration_stays_close_to_fp32():
    """The shipped enhancer on real tiles: bfloat16 autocast against fp32, same input."""
    from tests.conftest import DATA, data_file
    from tileserver.codecs.sr4 import DEFAULT_MODEL
    from tileserver.codecs.synthesis import TorchSynthesis
    from tileserver.quality import psnr
    from tileserver.train.codec_data import validation_tiles

    data_file("patches/val/histolab-fixtures")
    tiles = validation_tiles([DATA])["fixtures"][:4]
    small = torch.from_numpy(np.stack([downscale(t) for t in tiles])).permute(0, 3, 1, 2).float() / 255
    net = models.load_enhancer(DEFAULT_MODEL).net
    fp32, bf16 = (TorchSynthesis(net, "cpu", bf16=flag)(small) for flag in (False, True))
    assert fp32.shape == bf16.shape == (4, 3, 256, 256)
    to_uint8 = lambda x: np.rint(x.transpose(0, 2, 3, 1) * 255).astype(np.uint8)  # noqa: E731
    for a, b in zip(to_uint8(fp32), to_uint8(bf16)):
        assert psnr(a, b) > 40
