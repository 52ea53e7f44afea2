"""Encoder-side latent refinement: the codec spec ``learned:MODEL+refineN``.

g_a predicts a tile's latents y in one pass; they are good, not the best the decoder can be
given. Before y is rounded and coded, N Adam steps optimise y itself for this one tile at the
model's own training loss, ``lmbda * 255^2 * MSE + ssim_weight * (1 - SSIM) + bpp``, with g_s
and the hyperprior fixed:

- z is the one g_a chose and is coded first, so every CDF (means, scales) stays fixed;
- the rate is the Gaussian's bits at the unrounded y (a smooth function of y);
- the distortion is that of g_s's pixels from the rounded y, with the rounding's gradient
  passed straight through;
- the y of the lowest loss seen is kept, g_a's own among them, so a tile never gets worse by
  the loss.

The bitstream is the standard one: any decoder reads a refined tile. The cost is at encoding
(30 steps: 2.8 s against 53 ms a 256 px tile on a 2-core CPU, bench/results/evaluate-tcga48-a16.md),
for slides archived for good.
"""
from __future__ import annotations

import copy

import torch

from tileserver import quality
from tileserver.codecs.hyperprior import Analysis
from tileserver.codecs.synthesis import torch_device
from tileserver.precision import CODEC_PRECISION_ENV, cpu_precision

LEARNING_RATE = 0.002  # the most SSIM per byte of 0.002, 0.004, 0.01 (bench/bench_refine.py)
_LIKELIHOOD_FLOOR = 1e-9  # CompressAI's GaussianConditional lower bound
_SSIM_WINDOW = 11  # quality.ssim_torch's window: smaller tiles get no SSIM term


class LatentRefiner:
    """Refines the latents of one model's tiles on one device ("cpu" or "cuda")."""

    def __init__(self, model, steps: int, device: str = "cpu"):
        self.steps, self.lr = steps, LEARNING_RATE
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
        """The training loss of latents ``y`` for the padded tile ``x`` (its top-left
        ``height`` x ``width`` the real tile), all tensors on this refiner's device."""
        means, scales = analysis.means, analysis.scales
        y64 = y.double()
        y_hat = y64 + (torch.round(y64 - means) + means - y64).detach()  # straight-through rounding
        pixels = self._pixels(y_hat.float())[..., :height, :width]
        reference = x[..., :height, :width]
        distance = (y64 - means).abs()
        normal = torch.distributions.Normal(0.0, 1.0)
        likelihood = normal.cdf((0.5 - distance) / scales) - normal.cdf((-0.5 - distance) / scales)
        bpp = -torch.log2(likelihood.clamp_min(_LIKELIHOOD_FLOOR)).sum() / (height * width)
        loss = self.lmbda * 255**2 * torch.mean((pixels - reference) ** 2) + bpp.float()
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
        optimizer = torch.optim.Adam([y], lr=self.lr)
        best_loss, best_y = float("inf"), on_device.y
        for step in range(self.steps + 1):
            loss = self.loss(y, x, on_device, height, width)
            if loss.item() < best_loss:
                best_loss, best_y = loss.item(), y.detach().clone()
            if step == self.steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return best_y.cpu()
