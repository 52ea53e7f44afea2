"""The project's SSIM convention, in numpy (evaluation, rate control) and in torch (training)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import DATA, data_file
from tileserver import quality


def _tensor(tile: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(tile).permute(2, 0, 1)[None].double() / 255


def test_torch_ssim_equals_the_evaluation_ssim_on_real_tiles():
    from tileserver.train.codec_data import validation_tiles

    data_file("slides/tcga-cr-7395-01a-01-ts1.svs")
    tiles = validation_tiles([DATA])["tcga48"][:3]
    rng = np.random.default_rng(0)
    for tile in tiles:
        noisy = np.clip(tile.astype(int) + rng.integers(-25, 26, tile.shape), 0, 255).astype(np.uint8)
        expected = quality.ssim(tile, noisy)
        assert expected < 0.95
        assert quality.ssim_torch(_tensor(tile), _tensor(noisy)).item() == pytest.approx(expected, abs=1e-9)


def test_torch_ssim_is_one_for_identical_images_and_has_gradients():
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    assert quality.ssim_torch(x, x).item() == pytest.approx(1.0, abs=1e-12)
    y = (x + 0.05 * torch.randn_like(x)).requires_grad_()
    quality.ssim_torch(x, y).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
