"""Split LBI, plain reference: one image at a time, one line per equation of README.md beside this file.

The oracle every other backend is tested against; it runs in the input's dtype (float64 in the tests) and is slow.
"""

from __future__ import annotations

import torch

from ...config import SolverConfig, edge_count, required_active
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


def lbi_path_image(x, targets, config: SolverConfig, joint: bool, projection: str):
    """Run the path of one image (C, H, W) in [0, 1] and stop once per target (ascending).

    Returns one (output (C, H, W), iterations, sparsity, regions, reached) per target.
    """
    kappa, nu, alpha, mu, s = config.kappa, config.nu, config.alpha, config.momentum, config.scale
    channels, height, width = x.shape
    edges = edge_count(height, width) * (1 if joint else channels)

    beta = torch.zeros_like(x)
    zh, zv = x.new_zeros(channels, height, width - 1), x.new_zeros(channels, height - 1, width)
    beta_prev, zh_prev, zv_prev = beta, zh, zv
    stops, k = [], 0
    for target in targets:
        while True:
            ah, av = support(zh, zv, joint)
            active = int(ah.sum() + av.sum())
            reached = active >= required_active(target, edges)
            if reached or k >= config.max_iter:
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
        projected, regions = projection_reference.project(x if projection == "input" else beta / s, ah, av)
        out = beta / s if projection == "none" else projected
        stops.append((out, k, active / edges if edges else 1.0, regions, reached))
    return stops


def solve(x: torch.Tensor, targets: list[float], config: SolverConfig, channels: str, projection: str):
    """Backend entry: x (B, C, H, W) in [0, 1]; ``targets`` ascending. Returns [(out, SparsifyInfo)] per target."""
    per_image = [lbi_path_image(img, targets, config, channels == "joint", projection) for img in x]
    results = []
    for t in range(len(targets)):
        stops = [image_stops[t] for image_stops in per_image]
        out = torch.stack([s[0] for s in stops]) if stops else torch.empty_like(x)
        info = SparsifyInfo(
            iterations=torch.tensor([s[1] for s in stops], dtype=torch.int64),
            sparsity=torch.tensor([s[2] for s in stops], dtype=torch.float64),
            regions=torch.tensor([s[3] for s in stops], dtype=torch.int64),
            reached=torch.tensor([s[4] for s in stops], dtype=torch.bool),
        )
        results.append((out, info))
    return results
