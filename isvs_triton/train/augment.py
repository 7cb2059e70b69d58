"""The standard augmentation of the training loop, on the device, for a whole batch, after the smoothing (so that
every epoch smooths the same image); its random numbers are ``rng.sample_uniform`` draws of each image."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data import SMALL_SIDE

AUGMENT_DRAWS = 5


def augment(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Standard augmentation of a float batch (B, C, H, W) on its device; ``u`` (B, AUGMENT_DRAWS) uniform draws.

    Up to 64 px: random crop with 4 px reflect padding + horizontal flip (CIFAR). Above: random-resized-crop
    (area 8-100 %, aspect 3/4-4/3, bilinear) + horizontal flip (ImageNet)."""
    b, _, h, w = x.shape
    flip = u[:, 0] < 0.5
    if max(h, w) <= SMALL_SIDE:
        pad = 4
        top, left = (u[:, 1] * (2 * pad + 1)).long(), (u[:, 2] * (2 * pad + 1)).long()
        rows = (top[:, None] + torch.arange(h)).to(x.device)  # (B, H)
        cols = (left[:, None] + torch.arange(w)).to(x.device)  # (B, W)
        cols = torch.where(flip.to(x.device)[:, None], cols.flip(1), cols)
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        batch = torch.arange(b, device=x.device)[:, None, None]
        return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    area = 0.08 + 0.92 * u[:, 1]
    ratio = torch.exp(np.log(3 / 4) + np.log(16 / 9) * u[:, 2])
    sw, sh = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)  # crop side / image side
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = torch.where(flip, -sw, sw), sh
    theta[:, 0, 2], theta[:, 1, 2] = (u[:, 3] * 2 - 1) * (1 - sw), (u[:, 4] * 2 - 1) * (1 - sh)  # centre in [-1, 1]
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
