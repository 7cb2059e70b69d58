"""Fidelity of a solver configuration to the reference path (docs/notes/calibration.md), used by tools/calibrate.py and
the tests.

Fidelity compares a configuration's output with the reference-constants output at the same target sparsity on the
same images. Three measures per image:

- ``psnr``: PSNR (dB, peak 1) between the two outputs: the measure the specification names;
- ``agreement``: the fraction of edges whose active/inactive state is the same in both;
- ``relative_error``: ||out - ref|| / ||x - ref||, the error measured against the size of the smoothing itself
  (0 = the reference output, 1 = as far from it as the unsmoothed input).

The last one exists because PSNR alone flatters: at sparsity 0.6 on 32x32 crops the reference changes the image
only slightly, so returning the input unchanged already scores ~43 dB (docs/notes/calibration.md).

And what the path is for, denoising: ``oracle_denoising`` (the best stop of a sparsity grid per image, chosen knowing
the clean image) against ``chambolle_oracle`` (scikit-image's TV denoiser at its best weight, chosen the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import backends
from .config import SolverConfig, edge_count, required_active
from .ops.lbi import path as lbi_path


@dataclass
class Stop:
    """Outputs (projection of the input) and supports of a batch stopped at one sparsity."""

    out: torch.Tensor  # (B, C, H, W)
    active_h: torch.Tensor  # (B, G, H, W-1) bool
    active_v: torch.Tensor  # (B, G, H-1, W) bool
    iterations: torch.Tensor  # (B,)
    reached: torch.Tensor  # (B,)

    def select(self, keep: torch.Tensor) -> Stop:
        """The images where ``keep`` (B,) is True."""
        return Stop(*(t[keep] for t in vars(self).values()))


def stop(
    x: torch.Tensor,
    sparsity: float,
    config: SolverConfig,
    channels: str = "independent",
    advance: lbi_path.Advance | None = None,
) -> Stop:
    """Run ``config``'s path on x (B, C, H, W) in [0, 1] to ``sparsity`` (with a batched backend's ``advance``, the
    torch backend's by default); keep the supports for the comparison."""
    joint = channels == "joint"
    torch_backend = backends.REGISTRY["torch"]
    advance = advance or torch_backend.advance
    ((state, active, rule),) = list(lbi_path.stops(x, [sparsity], config, joint, advance))
    out, _ = torch_backend.project(x, active.h, active.v)
    return Stop(out, active.h, active.v, state.iterations.clone(), active.jumps >= rule.need)


def threshold_stop(x: torch.Tensor, sparsity: float, channels: str = "independent") -> Stop:
    """Baseline without any path: activate the edges with the largest |D x| up to the target sparsity."""
    joint = channels == "joint"
    dh, dv = (x[..., :, 1:] - x[..., :, :-1]).abs(), (x[..., 1:, :] - x[..., :-1, :]).abs()
    if joint:
        dh, dv = dh.square().sum(1, keepdim=True).sqrt(), dv.square().sum(1, keepdim=True).sqrt()
    jumps = torch.cat([dh.flatten(1), dv.flatten(1)], 1)
    need = required_active(sparsity, (jumps > 0).sum(1))  # sparsity counts the jumps (edges with a difference)
    ranked = jumps.sort(1, descending=True).values
    threshold = ranked.gather(1, (need - 1).clamp(min=0).view(-1, 1)).view(-1, 1, 1, 1)
    # an image that needs no edge activates none (its threshold is then above every difference)
    threshold = torch.where(need.view(-1, 1, 1, 1) > 0, threshold.clamp(min=1e-30), torch.inf)
    active_h, active_v = dh >= threshold, dv >= threshold
    out, _ = backends.REGISTRY["torch"].project(x, active_h, active_v)
    zeros = torch.zeros(x.shape[0], dtype=torch.int64)
    return Stop(out, active_h, active_v, zeros, torch.ones_like(zeros, dtype=torch.bool))


def identity_stop(x: torch.Tensor, channels: str = "independent") -> Stop:
    """Baseline: no smoothing at all (every edge active)."""
    b, c, h, w = x.shape
    g = 1 if channels == "joint" else c
    ones = torch.ones(b, g, h, w - 1, dtype=torch.bool), torch.ones(b, g, h - 1, w, dtype=torch.bool)
    zeros = torch.zeros(b, dtype=torch.int64)
    return Stop(x.clone(), *ones, zeros, torch.ones_like(zeros, dtype=torch.bool))


def fidelity(candidate: Stop, reference: Stop, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image psnr, agreement and relative_error of ``candidate`` against ``reference`` (module docstring)."""
    diff = (candidate.out.double() - reference.out.double()).flatten(1)
    smoothing = (x.double() - reference.out.double()).flatten(1)
    mse = diff.square().mean(1)
    psnr = -10 * torch.log10(mse.clamp(min=1e-20))
    relative_error = diff.norm(dim=1) / smoothing.norm(dim=1).clamp(min=1e-20)
    h, w = x.shape[-2:]
    groups = reference.active_h.shape[1]
    agree = (candidate.active_h == reference.active_h).flatten(1).sum(1) + (
        candidate.active_v == reference.active_v
    ).flatten(1).sum(1)
    agreement = agree.double() / (edge_count(h, w) * groups)
    return {"psnr": psnr, "agreement": agreement, "relative_error": relative_error}


# ------------------------------------------------------------------------------------------------ denoising
DENOISE_GRID = [round(0.05 * i, 2) for i in range(1, 20)]  # the sparsities an oracle stop chooses from
CHAMBOLLE_WEIGHTS = [0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3]


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (B,) in dB, peak 1."""
    return -10 * torch.log10((a.double() - b.double()).square().flatten(1).mean(1).clamp(min=1e-20))


def gaussian_noisy(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """clean + sigma * N(0, 1), clipped to [0, 1], reproducible by seed."""
    generator = torch.Generator().manual_seed(seed)
    return (clean + sigma * torch.randn(clean.shape, generator=generator)).clamp(0, 1)


def oracle_denoising(noisy: torch.Tensor, clean: torch.Tensor, projection: str = "none", **solver) -> torch.Tensor:
    """(B,) PSNR to ``clean`` of the best output over ``DENOISE_GRID`` per image (one run of the path)."""
    from .api import path

    outs = path(noisy, DENOISE_GRID, projection=projection, **solver)
    return torch.stack([psnr(out, clean) for out in outs]).max(0).values


def chambolle_oracle(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR to ``clean`` of ``skimage.restoration.denoise_tv_chambolle`` at its best weight per image."""
    import numpy as np
    from skimage.restoration import denoise_tv_chambolle

    best = torch.full((len(noisy),), -np.inf, dtype=torch.float64)
    for weight in CHAMBOLLE_WEIGHTS:
        out = torch.stack(
            [
                torch.from_numpy(
                    denoise_tv_chambolle(img.permute(1, 2, 0).double().numpy(), weight=weight, channel_axis=-1)
                ).permute(2, 0, 1)
                for img in noisy
            ]
        )
        best = torch.maximum(best, psnr(out, clean))
    return best
