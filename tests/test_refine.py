"""Encoder-side latent refinement (``learned:MODEL+refineN``) with the shipped default model on
real tcga tiles: the refined latents score better at the model's loss, and the standard decoder
reads them back exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import DATA, data_file
from tileserver.codecs import decoder, from_spec, ids
from tileserver.codecs.learned import PAD
from tileserver.codecs.refine import LatentRefiner, annealed_rounding
from tileserver.encode.encoder import EncodeSettings, encode_slide
from tileserver.format.reader import NeuralTiff
from tileserver.errors import CodecError

STEPS = 6


@pytest.fixture(scope="module")
def tile() -> np.ndarray:
    from tileserver.train.codec_data import validation_tiles

    data_file("slides/tcga-cr-7395-01a-01-ts1.svs")
    return validation_tiles([DATA])["tcga48"][0]


def _padded(tile: np.ndarray) -> torch.Tensor:
    padded = np.pad(tile, ((0, -tile.shape[0] % PAD), (0, -tile.shape[1] % PAD), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("shape", [(256, 256), (200, 130)], ids=["whole", "edge"])
def test_refined_latents_lower_the_loss_and_decode_exactly(tile, shape):
    tile = np.ascontiguousarray(tile[: shape[0], : shape[1]])
    codec = from_spec(f"learned:default+refine{STEPS}")
    coder = codec.model.coder
    x = _padded(tile)
    analysis = coder.analyse(x)
    refined = codec.refiner(x, analysis, *shape)

    with torch.no_grad():
        before = codec.refiner.loss(analysis.y.clone(), x, analysis, *shape).item()
        after = codec.refiner.loss(refined, x, analysis, *shape).item()
    assert after < before

    symbols = torch.round(refined.double() - analysis.means)
    original = torch.round(analysis.y.double() - analysis.means)
    assert (symbols != original).any(), "refinement moved no latent to another integer"

    body = codec.encode(tile)
    prepared = decoder(ids.LEARNED).prepare(body)
    assert torch.equal(prepared.y_hat, (symbols + analysis.means).float())
    assert decoder(ids.LEARNED).decode(body).shape == tile.shape



def test_refinement_encodes_a_tile_to_the_same_bytes_every_time(tile):
    """SGA draws noise: from a fixed seed, so that re-encoding a slide reproduces it."""
    codec = from_spec(f"learned:default+refine{STEPS}")
    first = codec.encode(tile)
    assert codec.encode(tile) == first
    assert from_spec(f"learned:default+refine{STEPS}").encode(tile) == first

def test_an_encoded_slide_records_the_refinement_and_decodes(tmp_path, tile):
    """A 384 x 320 image of real tissue through ``encode_slide``: its learned tiles carry the
    refined latents and its codec table says how many steps made them."""
    source = tmp_path / "tissue.png"
    Image.fromarray(np.tile(tile, (2, 2, 1))[:320, :384]).save(source)
    settings = EncodeSettings(codecs=["learned:default+refine2"], glass="keep")
    encode_slide(source, tmp_path / "out.tiff", settings, progress=False)
    with NeuralTiff(tmp_path / "out.tiff") as slide:
        (entry,) = [e for e in slide.metadata.codecs if e["name"] == "learned"]
        assert entry["refine_steps"] == 2 and entry["setting"].endswith("+refine2")
        codec_id, body = slide.tile_payload(0, 1, 1)  # the corner tile, 128 x 64 px of the image
        assert codec_id == ids.LEARNED
        assert decoder(ids.LEARNED).decode(body).shape == (slide.tile_size, slide.tile_size, 3)
    assert "refine_steps" not in from_spec("learned:default").describe()


@pytest.mark.parametrize("suffix", ["+refine", "+refinex", "+refine0", "+refine5000", "+fast"])
def test_a_bad_refinement_suffix_is_refused(suffix):
    with pytest.raises(CodecError, match=r"\+refine"):
        from_spec(f"learned:default{suffix}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_refining_on_cuda_without_a_gpu_is_refused():
    model = from_spec("learned:default").model
    with pytest.raises(CodecError, match="no CUDA GPU"):
        LatentRefiner(model, STEPS, "cuda")


def test_annealed_rounding_lies_between_the_two_integers_and_hardens_as_it_cools():
    offsets = (torch.rand(4000, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) - 0.5) * 8
    offsets.requires_grad_(True)

    def relaxed(temperature):
        return annealed_rounding(offsets, temperature, torch.Generator().manual_seed(0))

    warm, cold = relaxed(0.5), relaxed(0.01)
    floor = torch.floor(offsets.detach())
    assert ((warm >= floor) & (warm <= floor + 1)).all()
    assert torch.equal(warm, relaxed(0.5)), "the same seed must relax the same way"
    # Cold: (nearly) every latent sits on an integer, mostly the nearest one.
    assert ((cold - torch.round(cold)).abs() < 1e-3).float().mean() > 0.99
    assert (torch.round(cold) == torch.round(offsets.detach())).float().mean() > 0.9
    assert (warm - torch.round(warm)).abs().mean() > 0.05
    warm.sum().backward()
    assert offsets.grad.abs().sum() > 0, "the relaxation must pass gradients to the latents"
