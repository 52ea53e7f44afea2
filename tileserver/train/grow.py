"""Function-preserving widening of a trained module, to fine-tune a wider one (as Net2Net).

A trained tensor fills the leading slice of the wider one, and every weight from a new channel
into a trained channel is zero, so the wider module computes exactly what the trained one did.
The new channels keep their usual initialisation and learn from the first step: the weights
they feed trained channels through are zero but get gradients. GDN couples channels through
gamma; its trained-from-new entries are set to zero through GDN's reparametrisation.
"""
from __future__ import annotations

import torch
from compressai.layers import GDN
from torch import nn

from tileserver.errors import InputError


def grown(net: nn.Module, weights: dict, names: set[str]) -> dict:
    """``weights`` with each tensor named in ``names`` that is narrower than ``net``'s widened."""
    state = net.state_dict()
    out = dict(weights)
    for name in names & weights.keys():
        if weights[name].shape != state[name].shape:
            module_name, _, kind = name.rpartition(".")
            out[name] = _widened(net.get_submodule(module_name), kind, weights[name], state[name], name)
    return out


def _widened(module: nn.Module, kind: str, old: torch.Tensor, new: torch.Tensor, name: str) -> torch.Tensor:
    if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape)):
        raise InputError(f"--grow: {name} {tuple(old.shape)} does not fit into {tuple(new.shape)}")
    new = new.detach().clone()
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and kind == "weight":
        inputs = 1 if isinstance(module, nn.Conv2d) else 0  # ConvTranspose2d: (in, out, kh, kw)
        new_into_trained = [slice(None)] * new.dim()
        new_into_trained[inputs] = slice(old.shape[inputs], None)
        new_into_trained[1 - inputs] = slice(0, old.shape[1 - inputs])
        new[tuple(new_into_trained)] = 0
    elif isinstance(module, GDN) and kind == "gamma":  # (channel, channel it is normalised by)
        new[: old.shape[0], old.shape[1]:] = module.gamma_reparam.init(torch.zeros(()))
    elif not (isinstance(module, GDN) and kind == "beta") and kind != "bias":
        raise InputError(f"--grow: cannot widen {name} ({type(module).__name__})")
    new[tuple(slice(0, n) for n in old.shape)] = old
    return new
