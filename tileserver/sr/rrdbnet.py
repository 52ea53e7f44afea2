"""RRDBNet, the ESRGAN x4 generator (Wang et al. 2018), with blocks and widths as parameters.

Residual-in-Residual Dense Blocks run at the low resolution; two nearest-neighbour 2x
upsamplings with a convolution each, then two convolutions at full resolution. The study's
generator is ``RRDBNet(blocks=23, features=64, growth=32)``.

One change from ESRGAN: the net predicts a residual over the bicubic upscale (a global skip, as
in VDSR), so that a net trained for only a few CPU hours starts from bicubic, not from noise.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DenseBlock(nn.Module):
    """Five 3x3 convolutions, each seeing all earlier outputs; residual scaled by 0.2."""

    def __init__(self, features: int, growth: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(features + i * growth, growth if i < 4 else features, 3, padding=1)
            for i in range(5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(outputs, 1))
            if i < 4:
                outputs.append(F.leaky_relu(y, 0.2))
        return x + 0.2 * y


class RRDB(nn.Module):
    def __init__(self, features: int, growth: int):
        super().__init__()
        self.dense = nn.Sequential(*(DenseBlock(features, growth) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.dense(x)


class RRDBNet(nn.Module):
    """N x 3 x h x w in [0, 1] -> N x 3 x 4h x 4w (not clamped)."""

    scale = 4

    def __init__(self, blocks: int = 23, features: int = 64, growth: int = 32):
        super().__init__()
        self.config = {"blocks": blocks, "features": features, "growth": growth}
        self.conv_first = nn.Conv2d(3, features, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(features, features, 3, padding=1)
        self.conv_up1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv_up2 = nn.Conv2d(features, features, 3, padding=1)
        self.conv_hr = nn.Conv2d(features, features, 3, padding=1)
        self.conv_last = nn.Conv2d(features, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
