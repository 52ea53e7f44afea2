"""Encoder-side latent refinement: the codec spec ``learned:MODEL+refineN``.

g_a predicts a tile's latents y in one pass; they are good, not the best the decoder can be
given. Before y is rounded and coded, N Adam steps optimise y itself for this one tile at the
model's own training loss with the rate weighed up,
``lmbda * 255^2 * MSE + ssim_weight * (1 - SSIM) + RATE_WEIGHT * bpp``, with g_s and the
hyperprior fixed:

- z is the one g_a chose and is coded first, so every CDF (means, scales) stays fixed;
- rounding is relaxed by stochastic Gumbel annealing (SGA, Yang, Bamler and Mandt, "Improving
  Inference for Neural Image Compression", NeurIPS 2020): each latent is a random soft mix of
  the two integers about its mean that it lies between, and the mix hardens as a temperature
  falls from TEMPERATURE_START to TEMPERATURE_END, so both the rate and the pixels are those of
  (nearly) rounded latents and a latent can move to the other integer;
- the learning rate decays from PEAK_LEARNING_RATE to 0 along a cosine over the N steps;
- of g_a's y and the refined one, the one of lower loss with true rounding is kept, so a tile
  never gets worse by the loss. The noise comes from a fixed seed: a tile always refines the
  same way.

The bitstream is the standard one: any decoder reads a refined tile. The cost is at encoding
(30 steps: about 3 s, 100 steps: about 10 s, against 0.1 s a 256 px tile on one core of a Xeon,
bench/results/refine-he-msh64-a17-ga128-sga.md), for slides archived for good.
"""
from __future__ import annotations

import copy
import math

import torch

from tileserver import quality
from tileserver.codecs.hyperprior import Analysis, gaussian_bits
from tileserver.codecs.synthesis import torch_device
from tileserver.precision import CODEC_PRECISION_ENV, cpu_precision

# Measured on 12 tcga tiles with he-msh64-a17-ga128 (bench/results/refine-he-msh64-a17-ga128-sga.md).
PEAK_LEARNING_RATE = 0.03
RATE_WEIGHT = 1.8  # the rate's weight against the training loss's 1: keeps a tile near g_a's bytes
TEMPERATURE_START, TEMPERATURE_END = 0.5, 0.05  # SGA's, falling geometrically over the steps
_SEED = 0
_EPS = 1e-5
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

    def loss(self, y: torch.Tensor, x: torch.Tensor, analysis: Analysis, height: int, width: int,
             temperature: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """The refinement loss of latents ``y`` for the padded tile ``x`` (its top-left
        ``height`` x ``width`` the real tile), all tensors on this refiner's device: with
        ``y`` rounded as the decoder rounds it, or SGA-relaxed at ``temperature``."""
        means, scales = analysis.means, analysis.scales
        offsets = y.double() - means
        if temperature is None:
            quantised = torch.round(offsets)
        else:
            quantised = annealed_rounding(offsets, temperature, generator)
        pixels = self._pixels((quantised + means).float())[..., :height, :width]
        reference = x[..., :height, :width]
        bpp = gaussian_bits(quantised, scales) / (height * width)
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
        generator = torch.Generator(self.device).manual_seed(_SEED)
        for step in range(self.steps):
            progress = step / max(1, self.steps - 1)
            temperature = TEMPERATURE_START * (TEMPERATURE_END / TEMPERATURE_START) ** progress
            for group in optimizer.param_groups:
                group["lr"] = self.peak_lr * 0.5 * (1 + math.cos(math.pi * step / self.steps))
            loss = self.loss(y, x, on_device, height, width, temperature, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            before = self.loss(on_device.y, x, on_device, height, width).item()
            after = self.loss(y, x, on_device, height, width).item()
        return (y.detach() if after < before else on_device.y).cpu()


def annealed_rounding(offsets: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """SGA's relaxed rounding of ``offsets`` (latents minus their means): floor + a soft
    choice of 0 or 1 drawn from a two-way Gumbel-softmax whose logits favour the nearer integer,
    with the temperature applied to the logits and to the sample as in the paper's code. The
    difference of the two Gumbel draws is one logistic draw."""
    floor = torch.floor(offsets).detach()
    fraction = (offsets - floor).clamp(_EPS, 1 - _EPS)
    logit_up = (torch.atanh(fraction) - torch.atanh(1 - fraction)) / temperature
    uniform = torch.rand(offsets.shape, generator=generator, device=offsets.device, dtype=offsets.dtype)
    logistic = torch.log(uniform.clamp_min(_EPS)) - torch.log1p(-uniform.clamp_max(1 - _EPS))
    return floor + torch.sigmoid((logit_up + logistic) / temperature)
