"""Portable, bit-exact entropy coding for CompressAI's hyperprior models.

CompressAI computes the hyperprior's scales in float32; a rounding difference between two
machines (thread count, batch size, SIMD width) near a scale-table boundary picks another CDF,
and rANS decodes the rest of the tile into garbage. Here h_s(z_hat) and the CDF indexes are
computed in float64 on the CPU, one tile at a time, in the encoder and the decoder alike, and
the quantised CDF tables come from the model file (computed once by ``update()`` at export),
never recomputed on the decoding machine. Only g_s, which turns the decoded y into pixels and
cannot corrupt the bitstream, runs on the fast device or runtime.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from compressai.ans import RansDecoder, RansEncoder
from compressai.layers import GDN
from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from compressai.models.utils import conv, deconv
from torch import nn

PAD = 64  # g_a and h_a downsample 64x: tile sides are padded to a multiple of this


class LightHyperSynthesisMeanScale(MeanScaleHyperprior):
    """mbt2018-mean with a lighter h_s: its second layer keeps M channels (not 3M/2) and its last
    is a 1x1 convolution (not 3x3). The decoder runs h_s in float64 on the CPU for every tile
    (see BitExactHyperprior): at M=192 this one does 83M multiply-accumulates a 256 px tile
    instead of 348M. g_a, h_a and g_s are mbt2018-mean's, so a trained mbt2018-mean model
    starts one with ``--init`` and ``--fresh h_s``. ``N_s`` gives g_s a width of its own (g_s is
    most of the decoder's work and, at high rates, of its quality; ``--grow g_s`` widens a
    trained one), and ``N_a`` gives one to g_a, the encoder's transform, which no decoder runs."""

    def __init__(self, N: int, M: int, N_s: int | None = None, N_a: int | None = None, **kwargs):
        super().__init__(N=N, M=M, **kwargs)
        if N_a:
            self.g_a = nn.Sequential(
                conv(3, N_a), GDN(N_a), conv(N_a, N_a), GDN(N_a), conv(N_a, N_a), GDN(N_a), conv(N_a, M),
            )
        if N_s:
            self.g_s = nn.Sequential(
                deconv(M, N_s), GDN(N_s, inverse=True), deconv(N_s, N_s), GDN(N_s, inverse=True),
                deconv(N_s, N_s), GDN(N_s, inverse=True), deconv(N_s, 3),
            )
        self.h_s = nn.Sequential(
            deconv(N, M, stride=2, kernel_size=5), nn.LeakyReLU(inplace=True),
            deconv(M, M, stride=2, kernel_size=5), nn.LeakyReLU(inplace=True),
            conv(M, M * 2, stride=1, kernel_size=1),
        )


ARCHITECTURES = {"mbt2018-mean": MeanScaleHyperprior, "bmshj2018-hyperprior": ScaleHyperprior,
                 "mbt2018-mean-light-hs": LightHyperSynthesisMeanScale}


OWN_WIDTHS = {"N_s": "g_s", "N_a": "g_a"}  # widths of their own (mbt2018-mean-light-hs): transform


def own_widths(config: dict) -> dict[str, int]:
    """The OWN_WIDTHS a model or run config sets, for ``build_net``."""
    return {k: int(config[k]) for k in OWN_WIDTHS if config.get(k)}


def build_net(arch: str, N: int, M: int, N_s: int | None = None, N_a: int | None = None) -> ScaleHyperprior:
    """The untrained net; ``N_s`` and ``N_a`` (mbt2018-mean-light-hs only) are g_s's and g_a's
    widths, else N."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    widths = own_widths({"N_s": N_s, "N_a": N_a})
    if widths and ARCHITECTURES[arch] is not LightHyperSynthesisMeanScale:
        raise ValueError(f"widths of their own ({', '.join(widths)}) need mbt2018-mean-light-hs, not {arch}")
    return ARCHITECTURES[arch](N=N, M=M, **widths)


class FixedGDN(nn.Module):
    """A trained (inverse) GDN with its reparametrised beta and gamma frozen: plain ops that
    ONNX exports, and no reparametrisation on every call."""

    def __init__(self, gdn: GDN):
        super().__init__()
        channels = gdn.beta.numel()
        self.inverse = gdn.inverse
        with torch.no_grad():
            self.register_buffer("beta", gdn.beta_reparam(gdn.beta).detach().clone())
            gamma = gdn.gamma_reparam(gdn.gamma).detach().reshape(channels, channels, 1, 1)
            self.register_buffer("gamma", gamma.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = nn.functional.conv2d(x * x, self.gamma, self.beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))


def round_straight_through(values: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``values`` rounded about ``offsets`` as the decoder rounds latents, with the identity's
    gradient (straight-through), for training (`--quantization rounded`). The forward value
    is exactly the decoder's, ``round(values - offsets) + offsets``."""
    rounded = (torch.round(values - offsets) + offsets).detach()
    return rounded + (values - values.detach())


LIKELIHOOD_FLOOR = 1e-9  # CompressAI's GaussianConditional lower bound


def gaussian_bits(offsets: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Information content in bits (summed) of integer ``offsets`` (latents minus their means)
    under zero-mean Gaussians of ``scales``, discretised to unit bins as CompressAI's
    GaussianConditional does; differentiable, for refinement and probes (not a bitstream)."""
    normal = torch.distributions.Normal(0.0, 1.0)
    distance = offsets.abs()
    likelihood = normal.cdf((0.5 - distance) / scales) - normal.cdf((-0.5 - distance) / scales)
    return -torch.log2(likelihood.clamp_min(LIKELIHOOD_FLOOR)).sum()


def frozen(module: nn.Module) -> nn.Module:
    """A copy of g_s (or any Sequential) in eval mode with every GDN replaced by FixedGDN."""
    module = copy.deepcopy(module).eval()
    for name, child in module.named_children():
        setattr(module, name, FixedGDN(child) if isinstance(child, GDN) else frozen(child))
    return module.requires_grad_(False)


class Float64Synthesis(nn.Module):
    """h_s in float64, with each transposed convolution as one GEMM and a fold.

    torch's float64 conv_transpose2d on the CPU has no fast kernel; the same sums as x^T W and
    a fold took 8.7 instead of 12.2 ms for he-msh64-a11's middle layer (one thread, 256 px
    tile). The results agree with conv_transpose2d to float64 rounding (~1e-15), as two
    machines' BLAS libraries do.
    """

    def __init__(self, h_s: nn.Module):
        super().__init__()
        self.layers = frozen(h_s).double()
        self.gemm_weights = {}  # layer index -> C_in x (C_out * k * k) weights, contiguous
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.ConvTranspose2d) and self._gemm_ready(layer):
                self.gemm_weights[i] = layer.weight.reshape(layer.in_channels, -1).contiguous()

    @staticmethod
    def _gemm_ready(layer: nn.ConvTranspose2d) -> bool:
        square = len(set(layer.kernel_size)) == len(set(layer.stride)) == 1
        return square and layer.groups == 1 and layer.dilation == (1, 1) and len(set(layer.padding)) == 1 \
            and len(set(layer.output_padding)) == 1

    def _transposed(self, layer: nn.ConvTranspose2d, weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        (k, _), (stride, _), (pad, _), (extra, _) = (layer.kernel_size, layer.stride, layer.padding,
                                                     layer.output_padding)
        n, channels, height, width = x.shape
        out = [(side - 1) * stride - 2 * pad + k + extra for side in (height, width)]
        columns = x.reshape(n, channels, -1).transpose(1, 2) @ weights  # n x HW x (C_out k k)
        y = nn.functional.fold(columns.transpose(1, 2), out, k, padding=pad, stride=stride)
        return y + layer.bias.reshape(1, -1, 1, 1)

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        x = z_hat.double()
        for i, layer in enumerate(self.layers):
            x = self._transposed(layer, self.gemm_weights[i], x) if i in self.gemm_weights else layer(x)
        return x


class _Tables:
    """One entropy model's CDF tables, converted to Python lists once.

    CompressAI's rANS coder takes every table on every call, and converting them to C++
    vectors cost more than the coding itself (2.9 of 4.6 ms a 256 px tile, ~200k entries).
    Tables no symbol of the call uses are passed as a one-step stand-in: rANS never reads them.
    """

    UNUSED_CDF = [0, 1 << 16]  # a valid CDF at CompressAI's 16-bit precision

    def __init__(self, entropy_model: nn.Module):
        if entropy_model._quantized_cdf.numel() == 0:
            raise ValueError("the model has no CDF tables: call update() before export")
        self.cdf = entropy_model._quantized_cdf.tolist()
        self.length = entropy_model._cdf_length.reshape(-1).tolist()
        self.offset = entropy_model._offset.reshape(-1).tolist()

    def _used(self, indexes: list[int]) -> tuple[list, list]:
        """(cdfs, lengths) with the tables ``indexes`` name and stand-ins for the rest."""
        used = set(indexes)
        cdfs = [cdf if i in used else self.UNUSED_CDF for i, cdf in enumerate(self.cdf)]
        lengths = [n if i in used else 2 for i, n in enumerate(self.length)]
        return cdfs, lengths

    def encode(self, symbols: torch.Tensor, indexes: torch.Tensor) -> bytes:
        indexes = indexes.reshape(-1).tolist()
        cdfs, lengths = self._used(indexes)
        return RansEncoder().encode_with_indexes(symbols.reshape(-1).tolist(), indexes, cdfs, lengths, self.offset)

    def decode(self, string: bytes, indexes: torch.Tensor) -> torch.Tensor:
        # CompressAI's rANS decoder reads 32-bit words with no bounds check: a stream shorter
        # than its symbols need (a malformed body whose CRC was forged) read past the buffer
        # and crashed the process. Zero words behind the stream keep every read in bounds: each
        # symbol reads at most one word, and bypass-coded escapes are bounded by the 4 bits a
        # read consumes from the stream (measured: no crash in 4,000 fuzzed bodies).
        padding = bytes(4 * (indexes.numel() + 4 * len(string) + 16))
        flat = indexes.reshape(-1).tolist()
        cdfs, lengths = self._used(flat)
        values = RansDecoder().decode_with_indexes(string + padding, flat, cdfs, lengths, self.offset)
        return torch.from_numpy(np.fromiter(values, np.int32, len(values))).reshape(indexes.shape)


@dataclass
class Analysis:
    """A padded tile after g_a, with z coded: y and the float64 parameters of y's Gaussians."""

    y: torch.Tensor  # 1 x M x H/16 x W/16 float32, before rounding
    z_string: bytes
    indexes: torch.Tensor  # int32 CDF index of each latent
    means: torch.Tensor  # float64
    scales: torch.Tensor  # float64: the scale-table entry each index codes with


class BitExactHyperprior:
    """Encode a padded tile to (z string, y string) and decode them back to y_hat.

    ``net`` must have been ``update()``d (its CDF tables filled); it is not modified.
    """

    def __init__(self, net: ScaleHyperprior):
        self.mean_scale = isinstance(net, MeanScaleHyperprior)
        self.analysis = frozen(net.g_a).to(memory_format=torch.channels_last)
        self.hyper_analysis = frozen(net.h_a)
        self.hyper_synthesis = Float64Synthesis(net.h_s)
        self.synthesis = frozen(net.g_s)
        bottleneck, conditional = net.entropy_bottleneck, net.gaussian_conditional
        self.z_tables, self.y_tables = _Tables(bottleneck), _Tables(conditional)
        self.z_medians = bottleneck._get_medians().detach().reshape(1, -1, 1, 1).clone()
        self.scale_table = conditional.scale_table.double().clone()
        self.scale_bound = float(conditional.lower_bound_scale.bound)

    def _y_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 (CDF indexes, means) of y from z_hat: the step that must be portable."""
        params = self.hyper_synthesis(z_hat)
        scales, means = params.chunk(2, 1) if self.mean_scale else (params, torch.zeros_like(params))
        scales = scales.clamp_min(self.scale_bound)
        # CompressAI's build_indexes: len - 1 minus the bounds at or above the scale, i.e. the
        # number of bounds (all but the last) strictly below it; exact float64 comparisons.
        indexes = torch.searchsorted(self.scale_table[:-1], scales.contiguous(), right=False)
        return indexes.int(), means

    def _z_indexes(self, shape: torch.Size) -> torch.Tensor:
        return torch.arange(shape[1], dtype=torch.int32).reshape(1, -1, 1, 1).expand(shape)

    @torch.inference_mode()
    def analyse(self, x: torch.Tensor) -> Analysis:
        """x: 1 x 3 x H x W float32 in [0, 1], H and W multiples of PAD. Codes z; y is left to
        ``code_y``, so that an encoder may refine it first (tileserver.codecs.refine)."""
        y = self.analysis(x.contiguous(memory_format=torch.channels_last)).contiguous()
        z = self.hyper_analysis(y)
        z_symbols = torch.round(z - self.z_medians).int()
        z_string = self.z_tables.encode(z_symbols, self._z_indexes(z.shape))
        indexes, means = self._y_parameters(z_symbols.float() + self.z_medians)
        return Analysis(y, z_string, indexes, means, self.scale_table[indexes.long()])

    @torch.inference_mode()
    def code_y(self, y: torch.Tensor, analysis: Analysis) -> bytes:
        """The y string of latents ``y`` under the CDFs that ``analysis`` chose."""
        return self.y_tables.encode(torch.round(y.double() - analysis.means).int(), analysis.indexes)

    def encode(self, x: torch.Tensor) -> tuple[bytes, bytes]:
        """x: 1 x 3 x H x W float32 in [0, 1], H and W multiples of PAD -> (z string, y string)."""
        analysis = self.analyse(x)
        return analysis.z_string, self.code_y(analysis.y, analysis)

    @torch.inference_mode()
    def decode_y(self, z_string: bytes, y_string: bytes, height: int, width: int) -> torch.Tensor:
        """The entropy-decoded y_hat (1 x M x H/16 x W/16 float32) of a padded H x W tile."""
        z_shape = torch.Size((1, self.z_medians.shape[1], height // PAD, width // PAD))
        z_hat = self.z_tables.decode(z_string, self._z_indexes(z_shape)).float() + self.z_medians
        indexes, means = self._y_parameters(z_hat)
        return (self.y_tables.decode(y_string, indexes).double() + means).float()
