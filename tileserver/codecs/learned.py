"""The LEARNED codec: CompressAI hyperprior bitstreams, decoded bit-exactly everywhere.

Body (after the payload header):

    size  field
    1     body version (1)
    1     n = length of the model name
    n     model name, UTF-8 (models/<name>.pt)
    2     tile height, uint16 little-endian (before padding)
    2     tile width
    4     z string length, uint32 little-endian
    ...   z string, then the y string to the end

Tiles are edge-padded to a multiple of 64 and cropped on decode. ``prepare`` entropy-decodes
one body to y_hat on the CPU (holds the GIL); ``synthesize`` runs g_s over a batch on the
codec's device ("cpu", "cuda" or "onnx", see tileserver.codecs.synthesis).
"""
from __future__ import annotations

import re
import struct
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from tileserver.codecs import ids
from tileserver.codecs.base import Codec
from tileserver.codecs.learned_models import LearnedModel, check_model, default_model_name, load_model
from tileserver.errors import CodecError, ModelError

BODY_VERSION = 1
_SIZE = struct.Struct("<HHI")
MAX_REFINE_STEPS = 1000
_REFINE_SUFFIX = re.compile(r"\+refine(\d*)$")
PAD = 64  # equal to tileserver.codecs.hyperprior.PAD, kept here so importing stays cheap


@dataclass
class PreparedTile:
    model: LearnedModel
    y_hat: "torch.Tensor"  # noqa: F821  1 x M x h x w float32, bit-exact on every machine
    height: int
    width: int

    def __reduce__(self):
        """Pickled with the model by name (decode processes send prepared tiles to the server)."""
        return _unpickle_tile, (self.model.name, self.y_hat.numpy(), self.height, self.width)


def _unpickle_tile(model_name: str, y_hat: np.ndarray, height: int, width: int) -> PreparedTile:
    import torch

    return PreparedTile(load_model(model_name), torch.from_numpy(y_hat), height, width)


def pack_body(model_name: str, height: int, width: int, z: bytes, y: bytes) -> bytes:
    name = model_name.encode()
    return bytes([BODY_VERSION, len(name)]) + name + _SIZE.pack(height, width, len(z)) + z + y


def unpack_body(body: bytes) -> tuple[str, int, int, bytes, bytes]:
    """-> (model name, height, width, z string, y string); CodecError if malformed."""
    if len(body) < 2 or body[0] != BODY_VERSION:
        raise CodecError("learned tile body has an unknown version")
    end = 2 + body[1]
    if len(body) < end + _SIZE.size:
        raise CodecError("learned tile body is truncated")
    height, width, z_length = _SIZE.unpack_from(body, end)
    start = end + _SIZE.size
    if not height or not width or len(body) < start + z_length:
        raise CodecError("learned tile body is truncated or has a zero size")
    return (body[2:end].decode("utf-8", "replace"), height, width,
            body[start : start + z_length], body[start + z_length :])


def split_setting(setting: str) -> tuple[str, int]:
    """'MODEL+refine30' -> ('MODEL', 30) (refinement steps, tileserver.codecs.refine);
    'MODEL' -> ('MODEL', 0)."""
    match = _REFINE_SUFFIX.search(setting)
    if not match:
        if "+" in setting:
            raise CodecError(f"learned:{setting}: the only suffix is +refineN (e.g. +refine30)")
        return setting, 0
    if not match.group(1) or not 1 <= int(match.group(1)) <= MAX_REFINE_STEPS:
        raise CodecError(f"learned:{setting}: +refineN needs a step count N from 1 to {MAX_REFINE_STEPS}")
    return setting[: match.start()], int(match.group(1))


class LearnedCodec(Codec):
    """Spec ``learned:MODELNAME``, or ``learned:default`` for the model ``models/DEFAULT`` names;
    ``learned:MODELNAME+refineN`` refines each tile's latents N steps before coding them
    (tileserver.codecs.refine). ``model`` gives an in-memory model (training validation)."""

    codec_id = ids.LEARNED
    name = "learned"
    prepare_holds_gil = True  # rANS decoding and the float64 h_s

    def __init__(self, setting: str | None = None, device: str = "cpu",
                 model: LearnedModel | None = None):
        name, self.refine_steps = split_setting(setting or "")
        if name == "default":
            name = default_model_name()
        self.model_name = name or (model.name if model else "")
        suffix = f"+refine{self.refine_steps}" if self.refine_steps else ""
        super().__init__(self.model_name + suffix or None, device)
        self._model = model
        self._refiner = None

    @property
    def model(self) -> LearnedModel:
        if self._model is None:
            if not self.model_name:
                raise CodecError("the learned codec needs a model: learned:MODELNAME")
            self._model = load_model(self.model_name)
        return self._model

    @property
    def refiner(self):
        if self._refiner is None:
            from tileserver.codecs.refine import LatentRefiner

            # ONNX has no gradients: an onnx-decoding encoder refines with torch on the CPU.
            self._refiner = LatentRefiner(self.model, self.refine_steps, "cuda" if self.device == "cuda" else "cpu")
        return self._refiner

    def _model_named(self, name: str) -> LearnedModel:
        if self._model is not None and self._model.name == name:
            return self._model
        return load_model(name)

    def encode(self, tile: np.ndarray) -> bytes:
        import torch

        height, width = tile.shape[:2]
        padded = np.pad(tile, ((0, -height % PAD), (0, -width % PAD), (0, 0)), mode="edge")
        x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float() / 255
        coder = self.model.coder
        analysis = coder.analyse(x)
        y = self.refiner(x, analysis, height, width) if self.refine_steps else analysis.y
        return pack_body(self.model.name, height, width, analysis.z_string, coder.code_y(y, analysis))

    def batch_key(self, body: bytes) -> Hashable:
        return self.codec_id, unpack_body(body)[0]

    def prepare(self, body: bytes) -> PreparedTile:
        name, height, width, z, y = unpack_body(body)
        model = self._model_named(name)
        try:
            y_hat = model.coder.decode_y(z, y, height + -height % PAD, width + -width % PAD)
        except (ValueError, RuntimeError) as exc:
            raise CodecError(f"learned tile body cannot be entropy-decoded: {exc}") from None
        return PreparedTile(model, y_hat, height, width)

    def synthesize(self, prepared: Sequence[PreparedTile]) -> list[np.ndarray]:
        """g_s over the batch, one call per (model, latent shape) group."""
        import torch

        from tileserver.codecs.synthesis import runner

        out: list[np.ndarray | None] = [None] * len(prepared)
        groups: dict[tuple, list[int]] = {}
        for i, tile in enumerate(prepared):
            groups.setdefault((id(tile.model), tuple(tile.y_hat.shape)), []).append(i)
        for members in groups.values():
            model = prepared[members[0]].model
            pixels = runner(model, self.device)(torch.cat([prepared[i].y_hat for i in members]))
            for i, x in zip(members, pixels):
                tile = prepared[i]
                rgb = np.rint(x[:, : tile.height, : tile.width].transpose(1, 2, 0) * 255)
                out[i] = rgb.astype(np.uint8)
        return out

    def describe(self) -> dict:
        model = self.model
        return {**super().describe(), "model": model.name, "sha256": model.sha256,
                **{k: model.config.get(k) for k in ("arch", "N", "M", "lmbda")},
                **({"refine_steps": self.refine_steps} if self.refine_steps else {})}

    @classmethod
    def check_entry(cls, entry: dict) -> None:
        name = entry.get("model") or entry.get("setting")
        if not name or not entry.get("sha256"):
            raise ModelError(f"learned codec entry {entry} names no model or sha256")
        check_model(name, entry["sha256"])
