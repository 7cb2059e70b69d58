"""The anisotropic 4-neighbour difference operator D (ops/lbi/README.md) and its adjoint, on the last two dims.

An image of H x W pixels has horizontal edges (i, j)-(i, j+1) and vertical edges (i, j)-(i+1, j); no wrap-around,
no padding. ``D v`` is returned as the pair (horizontal (.., H, W-1), vertical (.., H-1, W)) with value
``v[far end] - v[near end]``.
"""

from __future__ import annotations

import torch


def grad(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D v: (..., H, W) -> ((..., H, W-1), (..., H-1, W))."""
    return v[..., :, 1:] - v[..., :, :-1], v[..., 1:, :] - v[..., :-1, :]


def grad_adjoint(rh: torch.Tensor, rv: torch.Tensor) -> torch.Tensor:
    """D^T (rh, rv): each edge adds its value to its far end and subtracts it from its near end."""
    height, width = rh.shape[-2], rh.shape[-1] + 1
    out = rh.new_zeros(*rh.shape[:-2], height, width)
    out[..., :, 1:] += rh
    out[..., :, :-1] -= rh
    out[..., 1:, :] += rv
    out[..., :-1, :] -= rv
    return out
