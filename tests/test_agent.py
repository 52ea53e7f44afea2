"""The decision agent: policy determinism, the reward, REINFORCE, and the adaptive encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tileserver import codecs
from tileserver.encode.adaptive import AdaptiveTileEncoder, decision_page, is_adaptive, parse_lmbda
from tileserver.errors import CodecError
from tileserver.sr import models
from tileserver.sr.policy import DecisionPolicy, load_policy, save_policy, to_input, view
from tileserver.sr.rrdbnet import RRDBNet
from tileserver.train.agent_trainer import AgentConfig, compress_reward, dice_balanced_weights, reinforce


def brightness_policy() -> DecisionPolicy:
    """A hand-set policy on the red channel: dark tiles are compressed, light ones kept."""
    net = DecisionPolicy(width=8)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for layer in [m for m in net.features if isinstance(m, torch.nn.Conv2d)]:
            layer.weight[0, 0, 1, 1] = 1.0  # carry channel 0 (red) through, unchanged
        net.head[0].weight[0, 0] = 1.0
        net.head[2].weight[0, 0] = -40.0
        net.head[2].bias[0] = 20.0
    return net.eval()


@pytest.fixture()
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TILESERVER_MODELS", str(tmp_path))
    torch.manual_seed(0)
    models.save_enhancer(RRDBNet(blocks=1, features=8, growth=4), {}, tmp_path / "sr4-tiny.pt")
    save_policy(brightness_policy(), {}, tmp_path / "cda-test.pt")
    return tmp_path


def _tile(value: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(value + rng.integers(-10, 10, (256, 256, 3)), 0, 255).astype(np.uint8)


def test_policy_is_deterministic_and_batch_independent(models_dir):
    torch.manual_seed(1)
    net = DecisionPolicy(width=16)
    save_policy(net, {}, models_dir / "cda-random.pt")
    policy = load_policy("cda-random")
    tiles = [_tile(v, seed) for seed, v in enumerate((40, 120, 200, 250))]
    together = policy.p_compress(tiles, 0.5)
    again = policy.p_compress(tiles, 0.5)
    alone = np.concatenate([policy.p_compress([t], 0.5) for t in tiles])
    assert np.array_equal(together, again)
    assert np.allclose(together, alone, atol=1e-6)
    assert np.all((together > 0) & (together < 1))
    reloaded = load_policy("cda-random").p_compress(tiles, 0.5)
    assert np.array_equal(together, reloaded)


def test_p_compress_never_rises_with_lambda(models_dir):
    torch.manual_seed(2)
    save_policy(DecisionPolicy(width=16), {}, models_dir / "cda-random.pt")
    policy = load_policy("cda-random")
    tiles = [_tile(v, seed) for seed, v in enumerate((40, 120, 200))]
    by_lambda = np.stack([policy.p_compress(tiles, lmbda) for lmbda in np.linspace(0.1, 1.0, 10)])
    assert np.all(np.diff(by_lambda, axis=0) <= 0)
    assert np.all(by_lambda[0] > by_lambda[-1])


def test_balanced_draws_give_each_dice_bin_the_same_share():
    dice = np.array([0.5] * 2 + [0.75] * 8 + [0.85] * 30 + [0.95] * 960)
    weights = dice_balanced_weights(dice)
    assert weights.sum() == pytest.approx(1.0)
    for low, high in ((0, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)):
        assert weights[(dice >= low) & (dice < high)].sum() == pytest.approx(0.25)


def test_lambda_outside_range_is_refused(models_dir):
    with pytest.raises(ValueError):
        load_policy("cda-test").p_compress([_tile(100)], 1.5)
    with pytest.raises(CodecError):
        parse_lmbda("adaptive:2")
    assert parse_lmbda("adaptive") == 0.5 and parse_lmbda("adaptive:0.1") == 0.1
    assert is_adaptive("adaptive:0.5") and not is_adaptive("jpeg:90")


def test_reward():
    gain, dice = np.array([0.1, 0.1, 0.1]), np.array([1.0, 0.8, 0.6])
    assert np.allclose(compress_reward(gain, dice, 0.5, tau=0.7), [0.1, 0.0, -1.0])
    assert np.allclose(compress_reward(gain, dice, 0.1, tau=0.7), [0.1, 0.08, -1.0])


def test_reinforce_learns_to_spare_tiles_that_lose_nuclei(tmp_path):
    """Dark views lose their nuclei (Dice 0.5 < τ), light ones do not: the policy must learn it."""
    rng = np.random.default_rng(0)
    dark = rng.random(64) < 0.5
    views = np.stack([view(_tile(60 if d else 200, i)) for i, d in enumerate(dark)])
    table = {"views": views, "gain": np.full(64, 0.1), "dice": np.where(dark, 0.5, 1.0)}
    config = AgentConfig(width=8, steps=100, batch=32, lr=1e-3)
    net = reinforce(config, table, table, tmp_path / "val.csv")
    with torch.inference_mode():
        compress = net(to_input(list(views)), torch.full((64,), 0.5)).numpy() > 0
    assert np.array_equal(compress, ~dark)
    assert (tmp_path / "val.csv").read_text().count("\n") == 2  # a header and step 100


def test_adaptive_encoder_keeps_compresses_and_records_p(models_dir):
    encoder = AdaptiveTileEncoder(0.5, keep="jpeg:90", sr4="sr4:sr4-tiny:webp", policy="cda-test")
    dark, light = encoder.encode(_tile(60)), encoder.encode(_tile(200))
    assert dark.label == "sr4:sr4-tiny:webp" and dark.codec.codec_id == 4 and dark.p_compress > 0.5
    assert light.label == "jpeg:90" and light.codec.codec_id == 1 and light.p_compress < 0.5
    assert codecs.decoder(4).decode(dark.body).shape == (256, 256, 3)
    assert len(dark.body) < len(light.body)
    table = encoder.describe()
    assert [e["name"] for e in table] == ["jpeg", "sr4"] and table[1]["model"] == "sr4-tiny"
    assert encoder.policy_entry()["policy"] == "cda-test"


def test_decision_page_marks_glass():
    page = decision_page([0.9, None, 0.2, 0.7, None, 0.1], across=3, down=2)
    assert page.shape == (2, 3) and page.dtype == np.float32
    assert np.isnan(page[0, 1]) and np.isnan(page[1, 1]) and page[1, 0] == pytest.approx(0.7)


def test_shipped_policy_was_trained_against_the_shipped_enhancer():
    """models/ holds the default policy, it loads, and its rewards came from the default SR4."""
    from tileserver.codecs.sr4 import DEFAULT_MODEL
    from tileserver.encode.adaptive import DEFAULT_POLICY
    from tileserver.codecs.learned_models import model_path

    saved = torch.load(model_path(DEFAULT_POLICY), map_location="cpu", weights_only=True)
    enhancer = codecs.from_spec("sr4").describe()
    assert saved["config"]["sr4_model"] == DEFAULT_MODEL == enhancer["model"]
    assert saved["config"]["sr4_sha256"] == enhancer["sha256"]
    tiles = [_tile(v, seed) for seed, v in enumerate((60, 150, 220))]
    low, high = (load_policy(DEFAULT_POLICY).p_compress(tiles, lmbda) for lmbda in (0.1, 1.0))
    assert np.all(high <= low)
