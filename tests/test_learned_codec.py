"""The LEARNED codec: round trips, portable bit-exact decoding, model checks, corruption,
and the trainer's resume. A tiny random-weight model keeps these fast; quality needs training
and is measured by `tileserver evaluate`, not here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import DATA, data_file, lc25000_subset
from tileserver.codecs import decoder, from_spec, ids
from tileserver.codecs.hyperprior import build_net
from tileserver.codecs.learned import LearnedCodec, pack_body, unpack_body
from tileserver.codecs.learned_models import load_model, read_model, save_model
from tileserver.errors import CodecError, CorruptTileError, ModelError
from tileserver.format import payload
from tileserver.precision import CODEC_PRECISION_ENV

TINY = {"arch": "mbt2018-mean", "N": 16, "M": 24, "lmbda": 0.0483}


@pytest.fixture(scope="module")
def tiles() -> list[np.ndarray]:
    from tileserver.train.codec_data import validation_tiles

    data_file("slides/tcga-cr-7395-01a-01-ts1.svs")
    return validation_tiles([DATA])["tcga48"][:8]


@pytest.fixture()
def models(tmp_path, monkeypatch):
    """A models/ directory holding tiny-a.pt (random weights, CDF tables filled)."""
    monkeypatch.setenv("TILESERVER_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    torch.manual_seed(1)
    net = build_net(TINY["arch"], TINY["N"], TINY["M"]).eval()
    net.update(force=True)
    save_model(net, TINY, tmp_path / "models" / "tiny-a.pt")
    return tmp_path / "models"


@pytest.fixture()
def codec(models) -> LearnedCodec:
    return from_spec("learned:tiny-a")


def _y_hats(codec: LearnedCodec, bodies: list[bytes]) -> list[bytes]:
    return [codec.prepare(b).y_hat.numpy().tobytes() for b in bodies]


def test_round_trip_keeps_the_quantised_latents_and_tile_size(codec, tiles):
    coder = codec.model.coder
    for tile in (tiles[0], tiles[1][:200, :130]):  # a whole tile and an edge tile
        body = codec.encode(tile)
        decoded = decoder(ids.LEARNED).decode(body)
        assert decoded.shape == tile.shape and decoded.dtype == np.uint8
        # The decoder's y_hat is exactly the encoder's quantised y.
        padded = np.pad(tile, ((0, -tile.shape[0] % 64), (0, -tile.shape[1] % 64), (0, 0)), mode="edge")
        x = torch.from_numpy(padded).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            y = coder.analysis(x).contiguous()
            z = coder.hyper_analysis(y)
            z_hat = torch.round(z - coder.z_medians) + coder.z_medians
            _, means = coder._y_parameters(z_hat)
            expected = (torch.round(y.double() - means) + means).float()
        assert torch.equal(codec.prepare(body).y_hat, expected)


def test_y_is_bit_identical_across_threads_batches_and_runtimes(models, tiles, monkeypatch):
    monkeypatch.setenv(CODEC_PRECISION_ENV, "fp32")  # pixels compared with ONNX Runtime's fp32
    bodies = [from_spec("learned:tiny-a").encode(t) for t in tiles]
    torch_codec, onnx_codec = LearnedCodec(device="cpu"), LearnedCodec(device="onnx")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one_thread, pixels_1t = _y_hats(torch_codec, bodies), torch_codec.decode_batch(bodies)
        torch.set_num_threads(2)
        two_threads = _y_hats(torch_codec, bodies)
    finally:
        torch.set_num_threads(threads)
    assert one_thread == two_threads
    assert _y_hats(onnx_codec, bodies) == one_thread
    batch_of_8 = torch_codec.decode_batch(bodies)
    batch_of_1 = [torch_codec.decode(b) for b in bodies]
    on_onnx = onnx_codec.decode_batch(bodies)
    for reference, others in zip(batch_of_8, zip(batch_of_1, on_onnx, pixels_1t)):
        for other in others:
            assert np.abs(reference.astype(int) - other).max() <= 1


def test_bf16_synthesis_stays_close_to_fp32(tiles, monkeypatch):
    """The shipped default model on real tiles: g_s under bf16 autocast (last layer fp32) gives
    pixels close to fp32's and keeps the SSIM; y_hat is untouched by the setting."""
    from tileserver.codecs.learned_models import default_model_name, models_dir
    from tileserver.codecs.synthesis import runner
    from tileserver.quality import psnr, ssim

    name = default_model_name()
    decoded = {}
    for precision in ("fp32", "bf16"):
        monkeypatch.setenv(CODEC_PRECISION_ENV, precision)
        codec = LearnedCodec(model=read_model(models_dir() / f"{name}.pt", name))  # fresh runners
        assert runner(codec.model, "cpu").bf16 == (precision == "bf16")
        decoded[precision] = codec.decode_batch([codec.encode(t) for t in tiles[:4]])
    for tile, fp32, bf16 in zip(tiles, decoded["fp32"], decoded["bf16"]):
        assert psnr(fp32, bf16) > 48
        assert abs(ssim(tile, fp32) - ssim(tile, bf16)) < 0.002


def test_describe_records_the_model_sha256_and_check_entry_accepts_it(codec, models):
    entry = codec.describe()
    assert entry["sha256"] == load_model("tiny-a").sha256 and entry["model"] == "tiny-a"
    LearnedCodec.check_entry(entry)


def test_missing_model_and_hash_mismatch_give_model_errors(codec, models):
    entry = codec.describe()
    with pytest.raises(ModelError, match="sha256"):
        LearnedCodec.check_entry({**entry, "sha256": "0" * 64})
    (models / "tiny-a.pt").rename(models / "elsewhere.pt")
    with pytest.raises(ModelError, match="missing"):
        LearnedCodec.check_entry(entry)
    with pytest.raises(ModelError, match="not found"):
        LearnedCodec().prepare(codec.encode(np.zeros((64, 64, 3), np.uint8)).replace(b"tiny-a", b"tiny-b"))


def test_truncated_or_bit_flipped_payloads_are_caught_before_decoding(codec, tiles):
    data = payload.pack(ids.LEARNED, codec.encode(tiles[2]))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    for bad in (data[:-7], bytes(flipped), data[: payload.HEADER_SIZE + 3]):
        with pytest.raises(CorruptTileError):
            payload.unpack(bad)
    codec_id, body = payload.unpack(data)
    assert codec_id == ids.LEARNED and unpack_body(body)[0] == "tiny-a"


def test_malformed_bodies_raise_codec_errors(codec, tiles):
    body = codec.encode(tiles[3])
    for bad in (body[:5], b"\x09" + body[1:], b""):
        with pytest.raises(CodecError):
            codec.prepare(bad)


def test_short_entropy_streams_behind_a_valid_crc_do_not_crash_the_process(codec, tiles):
    """CompressAI's rANS decoder read past the end of short streams (a segfault)."""
    name, height, width, z, y = unpack_body(codec.encode(tiles[4]))
    for short in (pack_body(name, height, width, z, y[:10]), pack_body(name, height, width, z[:3], b"")):
        decoded = codec.decode(short)
        assert decoded.shape == tiles[4].shape


def test_training_resumes_to_the_same_step_and_weights(tmp_path):
    from tileserver.train.codec_trainer import CHECKPOINT, CodecTrainer, TrainConfig

    base = dict(N=16, M=24, crop=64, batch=2, threads=1, warmup=2, val_minutes=0,
                data=[str(lc25000_subset(tmp_path, 12))], log_every=2)

    def train(run: str, steps: int, resume: bool) -> int:
        trainer = CodecTrainer(TrainConfig(steps=steps, **base), tmp_path / run, resume=resume)
        trainer.run()
        return trainer.step

    assert train("split", 3, False) == 3
    assert train("split", 6, True) == 6
    assert train("whole", 6, False) == 6
    split = torch.load(tmp_path / "split" / CHECKPOINT, weights_only=True)
    whole = torch.load(tmp_path / "whole" / CHECKPOINT, weights_only=True)
    assert split["step"] == whole["step"] == 6
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, split["model"][name]), name
    with pytest.raises(Exception, match="--resume"):
        CodecTrainer(TrainConfig(steps=9, **base), tmp_path / "whole", resume=False)


@pytest.mark.parametrize("arch", ["mbt2018-mean", "bmshj2018-hyperprior"])
def test_float64_hyper_synthesis_computes_torchs_float64_h_s(arch):
    """The GEMM-and-fold h_s gives torch's float64 h_s to rounding, for square and edge tiles'
    latents, so that tiles encoded before it decode to the same CDF indexes."""
    from tileserver.codecs.hyperprior import Float64Synthesis, frozen

    torch.manual_seed(2)
    net = build_net(arch, 16, 24).eval()
    fast, reference = Float64Synthesis(net.h_s), frozen(net.h_s).double()
    assert fast.gemm_weights, "no transposed convolution took the GEMM path"
    for shape in ((1, 16, 4, 4), (2, 16, 1, 3), (1, 16, 5, 2)):
        z_hat = torch.randn(shape).mul(4).round()
        with torch.inference_mode():
            expected, got = reference(z_hat.double()), fast(z_hat)
        assert got.dtype == torch.float64 and got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_a_new_hyper_synthesis_trains_alone_on_a_trained_models_transforms(tmp_path, tiles, monkeypatch):
    """--init from an mbt2018-mean model into mbt2018-mean-light-hs with --fresh h_s and
    --train-only h_s: every other weight is the model's and stays put, h_s learns, and the
    exported light model round-trips tiles bit-exactly."""
    from tileserver.train.codec_export import export_run
    from tileserver.train.codec_trainer import CHECKPOINT, CodecTrainer, TrainConfig

    torch.manual_seed(3)
    parent = build_net("mbt2018-mean", 16, 24).eval()
    parent.update(force=True)
    save_model(parent, TINY, tmp_path / "parent.pt")
    base = dict(arch="mbt2018-mean-light-hs", N=16, M=24, crop=64, batch=2, threads=1, warmup=2,
                val_minutes=0, data=[str(lc25000_subset(tmp_path, 12))], log_every=2,
                init=str(tmp_path / "parent.pt"), steps=4, lr=1e-3)
    with pytest.raises(Exception, match="h_s"):  # the h_s tensors differ in shape
        CodecTrainer(TrainConfig(**base), tmp_path / "whole", resume=False)
    with pytest.raises(Exception, match="no such module"):
        CodecTrainer(TrainConfig(**base, fresh=["hs"]), tmp_path / "typo", resume=False)
    CodecTrainer(TrainConfig(**base, fresh=["h_s"], train_only=["h_s"]), tmp_path / "run", resume=False).run()

    trained = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)["model"]
    started = parent.state_dict()
    for name, tensor in trained.items():
        if name.startswith(("g_a.", "h_a.", "g_s.")):
            assert torch.equal(tensor, started[name]), name
    torch.manual_seed(0)  # the run's seed: its h_s started as this one
    fresh = build_net("mbt2018-mean-light-hs", 16, 24).h_s.state_dict()
    assert any(not torch.equal(trained[f"h_s.{k}"], v) for k, v in fresh.items())

    monkeypatch.setenv("TILESERVER_MODELS", str(tmp_path / "models"))
    path, _ = export_run(tmp_path / "run", "tiny-light", tmp_path / "models")
    assert "(h_s newly initialised), only h_s trained" in path.with_suffix(".md").read_text()
    codec = LearnedCodec("tiny-light")
    assert read_model(path, "tiny-light").config["arch"] == "mbt2018-mean-light-hs"
    body = codec.encode(tiles[0])
    assert codec.decode(body).shape == tiles[0].shape
    assert torch.equal(codec.prepare(body).y_hat, LearnedCodec("tiny-light").prepare(body).y_hat)


@pytest.mark.parametrize("module, width", [("g_s", "N_s"), ("g_a", "N_a")])
def test_a_grown_transform_computes_the_trained_one_until_its_new_channels_learn(tmp_path, module, width):
    """--grow g_s with a wider --N-s (g_a with --N-a): at the start the wider transform gives the
    trained one's output; training then moves the weights from the new channels into the trained
    ones. The exported model keeps the width and codes tiles."""
    from tileserver.train.codec_export import export_run
    from tileserver.train.codec_trainer import CodecTrainer, TrainConfig

    torch.manual_seed(4)
    parent = build_net("mbt2018-mean-light-hs", 16, 24).eval()
    trained = getattr(parent, module)
    for p in trained.parameters():  # trained-looking GDN couplings, not the identity init
        p.data.add_(torch.rand_like(p).mul(0.05))
    parent.update(force=True)
    save_model(parent, {**TINY, "arch": "mbt2018-mean-light-hs"}, tmp_path / "parent.pt")
    base = dict(arch="mbt2018-mean-light-hs", N=16, M=24, crop=64, batch=2, threads=1, warmup=1,
                val_minutes=0, data=[str(lc25000_subset(tmp_path, 12))], log_every=2,
                init=str(tmp_path / "parent.pt"), steps=3, lr=1e-3, **{width: 24})
    with pytest.raises(Exception, match=module):  # wider without --grow: shapes differ
        CodecTrainer(TrainConfig(**base), tmp_path / "nogrow", resume=False)
    trainer = CodecTrainer(TrainConfig(**base, grow=[module]), tmp_path / "run", resume=False)
    wide = getattr(trainer.net, module)
    last, into_last = wide[-1].weight, 1 if module == "g_a" else 0  # Conv2d (out, in), deconv (in, out)
    assert last.shape[into_last] == 24
    x = torch.randn(2, 24, 4, 4) if module == "g_s" else torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(wide(x), trained(x), atol=1e-5)
    assert not last.narrow(into_last, 16, 8).any()  # the new channels do not reach the output yet
    trainer.run()
    assert getattr(trainer.net, module)[-1].weight.narrow(into_last, 16, 8).abs().sum() > 0
    export_run(tmp_path / "run", "tiny-wide", models=tmp_path / "models")
    wide_model = LearnedCodec(model=read_model(tmp_path / "models" / "tiny-wide.pt", "tiny-wide"))
    assert wide_model.model.config[width] == 24
    tile = np.full((64, 64, 3), 200, np.uint8)
    assert wide_model.decode(wide_model.encode(tile)).shape == tile.shape


def test_bf16_training_steps_run_g_a_and_g_s_in_bf16_and_leave_the_model_fp32(tmp_path):
    """--precision bf16: inside a step g_a's and g_s's bodies run in bf16 (outputs near, not equal
    to, fp32); outside it the modules compute in fp32 again, and the run's card says bf16."""
    from tileserver.train.codec_export import model_card
    from tileserver.train.codec_trainer import CHECKPOINT, CodecTrainer, TrainConfig
    from tileserver.train.mixed_precision import transforms_in

    torch.manual_seed(5)
    net = build_net("mbt2018-mean-light-hs", 16, 24).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y32, pixels32 = net.g_a(x), net.g_s(net.g_a(x))
        with transforms_in(net, "bf16"):
            y16, pixels16 = net.g_a(x), net.g_s(y32)
        assert y16.dtype == pixels16.dtype == torch.float32
        assert not torch.equal(y16, y32) and torch.allclose(y16, y32, atol=0.05 * y32.abs().max())
        assert not torch.equal(pixels16, pixels32)
        assert torch.equal(net.g_s(net.g_a(x)), pixels32)
    with pytest.raises(ValueError, match="precision"):
        with transforms_in(net, "fp16"):
            pass

    base = dict(arch="mbt2018-mean-light-hs", N=16, M=24, crop=64, batch=2, threads=1, warmup=1,
                val_minutes=0, data=[str(lc25000_subset(tmp_path, 12))], steps=2, precision="bf16")
    trainer = CodecTrainer(TrainConfig(**base), tmp_path / "run", resume=False)
    trainer.run()
    saved = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert all(t.dtype == torch.float32 for t in saved["model"].values() if t.is_floating_point())
    assert "forward" not in vars(trainer.net.g_a) and "forward" not in vars(trainer.net.g_s)
    assert "bf16 autocast" in model_card("m", saved["config"], saved, "0" * 64, tmp_path / "run", "")


def test_rounded_training_feeds_g_s_and_h_s_the_latents_the_decoder_sees(tmp_path):
    """--quantization rounded: g_s gets y rounded about h_s's means of the rounded z, exactly as
    the decoder builds y_hat, while gradients still reach g_a; CompressAI's noisy forward gives
    other pixels. The option is checked and the run's card names it."""
    from tileserver.train.codec_export import model_card
    from tileserver.train.codec_trainer import CHECKPOINT, CodecTrainer, TrainConfig, forward_rounded

    torch.manual_seed(6)
    net = build_net("mbt2018-mean-light-hs", 16, 24).train()
    x = torch.rand(1, 3, 64, 64)
    out = forward_rounded(net, x)
    with torch.no_grad():
        y = net.g_a(x)
        z = net.h_a(y)
        medians = net.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
        scales, means = net.h_s(torch.round(z - medians) + medians).chunk(2, 1)
        assert torch.equal(out["x_hat"], net.g_s(torch.round(y - means) + means))
        assert not torch.equal(net(x)["x_hat"], out["x_hat"])
    assert out["likelihoods"]["y"].shape == y.shape and out["likelihoods"]["z"].shape == z.shape
    out["x_hat"].mean().backward()
    assert net.g_a[0].weight.grad.abs().sum() > 0

    base = dict(N=16, M=24, crop=64, batch=2, threads=1, warmup=1, val_minutes=0,
                data=[str(lc25000_subset(tmp_path, 12))], steps=2)
    with pytest.raises(Exception, match="mean-scale"):
        CodecTrainer(TrainConfig(**base, arch="bmshj2018-hyperprior", quantization="rounded"), tmp_path / "s", resume=False)
    with pytest.raises(Exception, match="--quantization"):
        CodecTrainer(TrainConfig(**base, quantization="round"), tmp_path / "typo", resume=False)
    CodecTrainer(TrainConfig(**base, quantization="rounded"), tmp_path / "run", resume=False).run()
    saved = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert saved["step"] == 2
    assert "rounded latents" in model_card("m", saved["config"], saved, "0" * 64, tmp_path / "run", "")
