"""How much a context model could save on a trained model's latents, with its transforms frozen.

    python bench/bench_context_probe.py [--model default] [--context checkerboard,channel]
        [--steps 300] [--out bench/results/context-probe-MODEL.md]

A context model refines each latent's Gaussian (mean, scale) from latents decoded before it:
- checkerboard (He et al. 2021): the anchors, half of the positions, are coded with the
  hyperprior's parameters; the others get parameters from a 3x3 convolution over the anchors;
- channel (Minnen and Singh 2020, two slices): the first half of the channels is coded with the
  hyperprior's parameters, the second gets parameters from a 3x3 convolution over the first.

Here g_a, h_a and h_s stay frozen and only the small context network learns, --steps Adam
steps on batches of 8 training crops of 256 px, to shrink y's bits (the Gaussians' information
content, not a bitstream). The saving on the 48 tcga-cr-7395 validation tiles is a floor on what
training the whole model with the context could give: there g_a would also learn to leave more
for the context to find. One thread; about a second a step.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: shared CPU
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tileserver.codecs.hyperprior import gaussian_bits, round_straight_through
from tileserver.codecs.learned_models import default_model_name, model_path, read_net
from tileserver.train.codec_data import DEFAULT_DATA, training_sampler, validation_tiles

SCALE_BOUND = 0.11  # CompressAI's lower bound on y's scales
WIDTH = 96  # the context network's hidden channels


class ContextParameters(nn.Module):
    """(means, scales) of the latents to code, refined from the context; starts as the identity."""

    def __init__(self, context_channels: int, channels: int):
        super().__init__()
        self.context = nn.Conv2d(context_channels, WIDTH, 3, padding=1)
        self.mix = nn.Sequential(nn.Conv2d(WIDTH + 2 * channels, WIDTH, 1), nn.LeakyReLU(),
                                 nn.Conv2d(WIDTH, 2 * channels, 1))
        nn.init.zeros_(self.mix[-1].weight)
        nn.init.zeros_(self.mix[-1].bias)

    def forward(self, context, means, scales):
        features = nn.functional.leaky_relu(self.context(context))
        shift, log_gain = self.mix(torch.cat([features, means, scales.log()], 1)).chunk(2, 1)
        return means + shift, (scales * log_gain.exp()).clamp_min(SCALE_BOUND)


def checkerboard_bits(network, y, means, scales):
    rows, cols = torch.meshgrid(torch.arange(y.shape[2]), torch.arange(y.shape[3]), indexing="ij")
    anchor = ((rows + cols) % 2 == 0).to(y.dtype)
    anchors = (round_straight_through(y, means) - means) * anchor
    context_means, context_scales = network(anchors, means, scales)
    others = (round_straight_through(y, context_means) - context_means) * (1 - anchor)
    return gaussian_bits(anchors + others, scales * anchor + context_scales * (1 - anchor))


def channel_bits(network, y, means, scales):
    half = y.shape[1] // 2
    first = round_straight_through(y[:, :half], means[:, :half]) - means[:, :half]
    context_means, context_scales = network(first, means[:, half:], scales[:, half:])
    second = round_straight_through(y[:, half:], context_means) - context_means
    return gaussian_bits(first, scales[:, :half]) + gaussian_bits(second, context_scales)


CONTEXTS = {"checkerboard": (checkerboard_bits, lambda m: ContextParameters(m, m)),
            "channel": (channel_bits, lambda m: ContextParameters(m // 2, m // 2))}


class FrozenModel:
    def __init__(self, name: str):
        self.net, config = read_net(model_path(name))
        self.net.requires_grad_(False)
        self.medians = self.net.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)
        self.M = int(config["M"])

    @torch.no_grad()
    def latents(self, tiles: np.ndarray):
        """y, means and scales (from the decoder's z_hat) of a batch of uint8 tiles."""
        x = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float() / 255
        y = self.net.g_a(x)
        z_hat = torch.round(self.net.h_a(y) - self.medians) + self.medians
        scales, means = self.net.h_s(z_hat).chunk(2, 1)
        return y, means, scales.clamp_min(SCALE_BOUND)


def probe(model: FrozenModel, context: str, steps: int, validation: list, pixels: int) -> tuple[float, float]:
    """(y bpp on the validation latents, training seconds) after ``steps`` steps of one context."""
    coded_bits, make = CONTEXTS[context]
    network = make(model.M)
    sampler = training_sampler([DEFAULT_DATA], 256)
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam(network.parameters(), 1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        loss = coded_bits(network, *model.latents(sampler.batch(rng, 8))) / (8 * 256 * 256)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(sum(coded_bits(network, *batch) for batch in validation)) / pixels, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--context", default="checkerboard,channel", help=f"comma-separated: {', '.join(CONTEXTS)}")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    name = default_model_name() if args.model == "default" else args.model
    model = FrozenModel(name)
    tiles = validation_tiles([DEFAULT_DATA])["tcga48"]
    validation = [model.latents(np.stack(tiles[i : i + 8])) for i in range(0, len(tiles), 8)]
    pixels = sum(t.shape[0] * t.shape[1] for t in tiles)
    plain = float(sum(gaussian_bits(torch.round(y - means), scales) for y, means, scales in validation)) / pixels
    lines = [f"# Context-model probe on {name}'s frozen latents", "",
             f"`python bench/bench_context_probe.py --model {args.model} --context {args.context} "
             f"--steps {args.steps}`; {len(tiles)} tcga-cr-7395 tiles, one thread. y's information content "
             f"with the hyperprior alone: {plain:.4f} bpp.", "",
             "| context | steps | y bpp | vs hyperprior alone | training s |", "|---|---:|---:|---:|---:|"]
    for context in args.context.split(","):
        bpp, seconds = probe(model, context, args.steps, validation, pixels)
        lines.append(f"| {context} | {args.steps} | {bpp:.4f} | {bpp / plain - 1:+.2%} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    out = args.out or Path(__file__).parent / "results" / f"context-probe-{name}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
