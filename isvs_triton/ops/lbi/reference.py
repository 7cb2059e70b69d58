"""Split LBI, plain reference: one image at a time, one line per equation of README.md beside this file.

The oracle every other backend is tested against; it runs in the input's dtype (float64 in the tests) and is slow.
"""

from __future__ import annotations

import torch

from ...config import STOP_RULES, SolverConfig, edge_count, required_active
from ...info import SparsifyInfo
from ..graph import grad, grad_adjoint
from ..projection import reference as projection_reference


def shrink(zh: torch.Tensor, zv: torch.Tensor, joint: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """gamma / kappa: soft thresholding of each z ("independent") or of each edge's channel vector ("joint")."""
    if not joint:
        return tuple(torch.sign(z) * torch.clamp(z.abs() - 1, min=0) for z in (zh, zv))
    out = []
    for z in (zh, zv):
        norm = z.norm(dim=0, keepdim=True)
        out.append(torch.where(norm > 1, z * (1 - 1 / norm), torch.zeros_like(z)))
    return tuple(out)


def support(zh: torch.Tensor, zv: torch.Tensor, joint: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Active edges (gamma != 0), bool (C or 1, H, W-1), (C or 1, H-1, W)."""
    if joint:
        return zh.norm(dim=0, keepdim=True) > 1, zv.norm(dim=0, keepdim=True) > 1
    return zh.abs() > 1, zv.abs() > 1


def lbi_path_image(x, targets, config: SolverConfig, joint: bool, projection: str, noise: float | None = None,
                   discrepancy: float = 1.0):  # fmt: skip
    """Run the path of one image (C, H, W) in [0, 1] and stop once per target (ascending).

    ``noise``: sigma of the noise stop (x's units), or None. Returns one (output (C, H, W), iterations, sparsity,
    regions, reached, stopped_by, active_fraction) per target.
    """
    kappa, nu, alpha, mu, s = config.kappa, config.nu, config.alpha, config.momentum, config.scale
    channels, height, width = x.shape
    edges = edge_count(height, width) * (1 if joint else channels)
    # the jumps: edges whose pixels differ (joint: in any channel); sparsity counts the active ones among them
    jh, jv = (d != 0 for d in grad(s * x))
    if joint:
        jh, jv = jh.any(0, keepdim=True), jv.any(0, keepdim=True)
    jumps = int(jh.sum() + jv.sum())
    limit = -1.0 if noise is None else (discrepancy * noise) ** 2  # on the mean square of beta / s - x

    beta = torch.zeros_like(x)
    zh, zv = x.new_zeros(channels, height, width - 1), x.new_zeros(channels, height - 1, width)
    beta_prev, zh_prev, zv_prev = beta, zh, zv
    stops, k = [], 0
    for target in targets:
        need = required_active(target, jumps)
        while True:
            ah, av = support(zh, zv, joint)
            active_jumps = int((ah & jh).sum() + (av & jv).sum())
            reached = active_jumps >= need
            quiet = float((beta / s - x).square().mean()) <= limit  # the discrepancy principle
            if reached or quiet or k >= config.max_iter or target >= 1:
                break
            # Nesterov extrapolation (mu = 0: plain Split LBI at (beta_k, z_k))
            yb, yzh, yzv = beta + mu * (beta - beta_prev), zh + mu * (zh - zh_prev), zv + mu * (zv - zv_prev)
            gh, gv = shrink(yzh, yzv, joint)
            dh, dv = grad(yb)
            rh, rv = dh - kappa * gh, dv - kappa * gv  # r = D beta - gamma
            beta_prev, zh_prev, zv_prev = beta, zh, zv
            zh, zv = yzh + alpha / nu * rh, yzv + alpha / nu * rv  # z += alpha / nu * r
            beta = yb - kappa * alpha * ((yb - s * x) + grad_adjoint(rh, rv) / nu)
            k += 1
        if target >= 1:  # the input itself: every jump kept, regions are the runs of equal pixels
            ah, av, active_jumps, reached = jh, jv, jumps, True
        projected, regions = projection_reference.project(x if projection == "input" or target >= 1 else beta / s,
                                                          ah, av)  # fmt: skip
        out = x.clone() if jumps == 0 or target >= 1 else beta / s if projection == "none" else projected
        stopped_by = "sparsity" if reached else "noise" if quiet else "budget"
        active = int(ah.sum() + av.sum())
        stops.append((out, 0 if target >= 1 else k, active_jumps / jumps if jumps else 1.0, regions, reached,
                      STOP_RULES.index(stopped_by), active / edges if edges else 1.0))  # fmt: skip
    return stops


def solve(x: torch.Tensor, targets: list[float], config: SolverConfig, channels: str, projection: str,
          noise: torch.Tensor | None = None, discrepancy: float = 1.0):  # fmt: skip
    """Backend entry: x (B, C, H, W) in [0, 1]; ``targets`` ascending; ``noise`` (B,) or None. Returns
    [(out, SparsifyInfo)] per target."""
    sigmas = [None] * len(x) if noise is None else noise.tolist()
    # a target may be one number for the batch or a (B,) tensor, one per image
    mine = [[float(t[i]) if isinstance(t, torch.Tensor) else t for t in targets] for i in range(len(x))]
    per_image = [lbi_path_image(img, image_targets, config, channels == "joint", projection, sigma, discrepancy)
                 for img, image_targets, sigma in zip(x, mine, sigmas)]  # fmt: skip
    results = []
    for t in range(len(targets)):
        stops = [image_stops[t] for image_stops in per_image]
        out = torch.stack([s[0] for s in stops]) if stops else torch.empty_like(x)
        column = lambda i, dtype, stops=stops: torch.tensor([s[i] for s in stops], dtype=dtype)  # noqa: E731
        info = SparsifyInfo(
            iterations=column(1, torch.int64),
            sparsity=column(2, torch.float64),
            regions=column(3, torch.int64),
            reached=column(4, torch.bool),
            stop=column(5, torch.int8),
            active_fraction=column(6, torch.float64),
            noise=torch.full((len(x),), float("nan"), dtype=torch.float64) if noise is None else noise.double(),
        )
        results.append((out, info))
    return results
