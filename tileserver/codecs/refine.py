"""Encoder-side latent refinement: the codec spec ``learned:MODEL+refineN``.

g_a predicts a tile's latents y in one pass; they are good, not the best the decoder can be
given. Before y is rounded and coded, N Adam steps optimise y itself for this one tile at the
model's own training loss with the rate weighed up,
``lmbda * 255^2 * MSE + ssim_weight * (1 - SSIM) + RATE_WEIGHT * bpp``, with g_s and the
hyperprior fixed:

- z is the one g_a chose and is coded first, so every CDF (means, scales) stays fixed;
- the rate is the Gaussian's bits at the unrounded y (a smooth function of y);
- the distortion is that of g_s's pixels from the rounded y, with the rounding's gradient
  passed straight through;
- the learning rate decays from PEAK_LEARNING_RATE to 0 along a cosine over the N steps;
- the y of the lowest loss seen is kept, g_a's own among them, so a tile never gets worse by
  the loss.

The bitstream is the standard one: any decoder reads a refined tile. The cost is at encoding
(30 steps: 2.8 s against 53 ms a 256 px tile on a 2-core CPU, bench/results/evaluate-tcga48-a16.md),
for slides archived for good.
"""
from __future__ import annotations

import copy
import math

import torch

from tileserver import quality
from tileserver.codecs.hyperprior import Analysis, round_straight_through
from tileserver.codecs.synthesis import torch_device
from tileserver.precision import CODEC_PRECISION_ENV, cpu_precision

# Measured on 12 tcga tiles with he-msh64-a17-ga128 (bench/results/refine-he-msh64-a17-ga128.md):
# 30 steps from 0.008 with the rate weighed 1.6 times gave +0.0021 SSIM for 0.4% more bytes (the
# constant 0.002 at the training loss used before: +0.0015 for 0.7%); from 0.004, +0.0016 for
# 0.1%. 100 steps want the lower peak: 0.004 gave +0.0025 for 0.7%, 0.008 +0.0020 for 1.3%.
PEAK_LEARNING_RATE = 0.008
RATE_WEIGHT = 1.6  # the rate's weight against the training loss's 1: keeps a tile near g_a's bytes
_LIKELIHOOD_FLOOR = 1e-9  # CompressAI's GaussianConditional lower bound
_SSIM_WINDOW = 11  # quality.ssim_torch's window: smaller tiles get no SSIM term


class LatentRefiner:
    """Refines the latents of one model's tiles on one device ("cpu" or "cuda")."""

    def __init__(self, model, steps: int, device: str = "cpu"):
        self.steps, self.peak_lr, self.rate_weight = steps, PEAK_LEARNING_RATE, RATE_WEIGHT
        self.device = torch_device(device)
        self.lmbda = float(model.config.get("lmbda") or 0.0)
        self.ssim_weight = float(model.config.get("ssim_weight") or 0.0)
        layers = list(copy.deepcopy(model.coder.synthesis).to(self.device).children())
        self.head, self.tail = torch.nn.Sequential(*layers[:-1]), layers[-1]
        # As in the decoder: g_s in bf16 but for its last layer where the CPU has native bf16.
        self.bf16 = self.device.type == "cpu" and cpu_precision(CODEC_PRECISION_ENV) == "bf16"

    def _pixels(self, y_hat: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            x = self.head(y_hat)
        return self.tail(x.float()).clamp(0, 1)

    def loss(self, y: torch.Tensor, x: torch.Tensor, analysis: Analysis, height: int, width: int) -> torch.Tensor:
        """The refinement loss of latents ``y`` for the padded tile ``x`` (its top-left
        ``height`` x ``width`` the real tile), all tensors on this refiner's device."""
        means, scales = analysis.means, analysis.scales
        y64 = y.double()
        y_hat = round_straight_through(y64, means)
        pixels = self._pixels(y_hat.float())[..., :height, :width]
        reference = x[..., :height, :width]
        distance = (y64 - means).abs()
        normal = torch.distributions.Normal(0.0, 1.0)
        likelihood = normal.cdf((0.5 - distance) / scales) - normal.cdf((-0.5 - distance) / scales)
        bpp = -torch.log2(likelihood.clamp_min(_LIKELIHOOD_FLOOR)).sum() / (height * width)
        loss = self.lmbda * 255**2 * torch.mean((pixels - reference) ** 2) + self.rate_weight * bpp.float()
        if self.ssim_weight and min(height, width) >= _SSIM_WINDOW:
            loss = loss + self.ssim_weight * (1 - quality.ssim_torch(reference, pixels))
        return loss

    def __call__(self, x: torch.Tensor, analysis: Analysis, height: int, width: int) -> torch.Tensor:
        """The refined y (on the CPU, float32) for the padded tile ``x`` whose g_a pass is
        ``analysis``."""
        on_device = Analysis(analysis.y.clone().to(self.device), analysis.z_string, analysis.indexes,
                             analysis.means.clone().to(self.device), analysis.scales.clone().to(self.device))
        x = x.clone().to(self.device)
        y = on_device.y.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([y], lr=self.peak_lr)
        best_loss, best_y = float("inf"), on_device.y
        for step in range(self.steps + 1):
            loss = self.loss(y, x, on_device, height, width)
            if loss.item() < best_loss:
                best_loss, best_y = loss.item(), y.detach().clone()
            if step == self.steps:
                break
            for group in optimizer.param_groups:
                group["lr"] = self.peak_lr * 0.5 * (1 + math.cos(math.pi * step / self.steps))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return best_y.cpu()
