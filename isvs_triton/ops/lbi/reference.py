"""Split LBI, plain reference: one image at a time, one line per equation of README.md beside this file.

The oracle every other backend is tested against; it runs in the input's dtype (float64 in the tests) and is slow.
"""

from __future__ import annotations

import torch

from ...config import STOP_RULES, SolverConfig, chebyshev_bounds, edge_count, required_active
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


def lbi_path_image(
    x, targets, config: SolverConfig, joint: bool, projection: str, noise: float | None = None, discrepancy: float = 1.0
):
    """Run the path of one image (C, H, W) in [0, 1] and stop once per target (ascending).

    ``noise``: sigma of the noise stop (x's units), or None. Returns one (output (C, H, W), iterations, sparsity,
    regions, reached, stopped_by, active_fraction) per target.
    """
    kappa, nu, alpha, mu, s = config.kappa, config.nu, config.alpha, config.momentum, config.scale
    channels, height, width = x.shape
    edges = edge_count(height, width) * (1 if joint else channels)
    jh, jv, jumps = _jumps(s * x, joint)
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
        stops.append(_stop(x, beta / s, ah, av, (jh, jv), need, target, k, quiet, projection, edges))
    return stops


def _jumps(xs, joint: bool):
    """The jumps of one image: edges whose pixels differ (joint: in any channel), the edges sparsity counts; returns
    (jh, jv, their number)."""
    jh, jv = (d != 0 for d in grad(xs))
    if joint:
        jh, jv = jh.any(0, keepdim=True), jv.any(0, keepdim=True)
    return jh, jv, int(jh.sum() + jv.sum())


def _stop(x, beta, ah, av, jump_masks, need: int, target: float, steps: int, quiet: bool, projection: str, edges: int):
    """One stop's (output, iterations, sparsity, regions, reached, stopped_by, active_fraction) from its support
    (ah, av) and beta / s; a target of 1 returns the input itself (every jump kept, regions the runs of equal
    pixels), as does an image without jumps."""
    jh, jv = jump_masks
    jumps = int(jh.sum() + jv.sum())
    if target >= 1:
        ah, av, quiet = jh, jv, False
    active_jumps = int((ah & jh).sum() + (av & jv).sum())
    reached = active_jumps >= need or target >= 1
    stopped_by = "sparsity" if reached else "noise" if quiet else "budget"
    if projection == "auto":
        projection = "none" if stopped_by == "noise" else "input"
    projected, regions = projection_reference.project(x if projection == "input" or target >= 1 else beta, ah, av)
    out = x.clone() if jumps == 0 or target >= 1 else beta if projection == "none" else projected
    active = int(ah.sum() + av.sum())
    return (
        out,
        0 if target >= 1 else steps,
        active_jumps / jumps if jumps else 1.0,
        regions,
        reached,
        STOP_RULES.index(stopped_by),
        active / edges if edges else 1.0,
    )


# ------------------------------------------------------------------------------------------ the events integrator
ACTIVE_FLOOR = 2.0**-22  # an active edge's |z| is at least 1 + this, so that it stays active in float32


def solve_beta(beta, xs, wh, wv, nu: float, iterations: int):
    """beta minimising 1/2 ||s x - beta||^2 + 1/(2 nu) ||D beta||^2 over the inactive edges (weights wh, wv in {0, 1}):
    (I + D^T W D / nu) beta = s x, by ``iterations`` steps of the Chebyshev iteration from ``beta`` (Saad, Iterative
    Methods for Sparse Linear Systems, Algorithm 12.1) on the spectrum ``chebyshev_bounds``: no inner products, so a
    step's solve has a fixed cost and the error shrinks by at least 1 / T_iterations(sigma)."""

    def apply(v):
        dh, dv = grad(v)
        return v + grad_adjoint(wh * dh, wv * dv) / nu

    theta, delta, sigma = chebyshev_bounds(nu)
    rho = 1 / sigma
    r = xs - apply(beta)
    d = r / theta
    for _ in range(iterations):
        beta = beta + d
        r = r - apply(d)
        rho_next = 1 / (2 * sigma - rho)
        d = rho_next * rho * d + 2 * rho_next / delta * r
        rho = rho_next
    return beta


def chebyshev_steps(config: SolverConfig) -> list[tuple[float, float]]:
    """``solve_beta``'s Chebyshev iteration written on beta alone, as the fast backends run it:
    beta_{k+1} = beta_k + a_k (beta_k - beta_{k-1}) + b_k (s x - A beta_k); returns the (a_k, b_k) of each iteration
    (a_0 = 0: the first has no previous iterate). Each iteration is then one pass: the operator at beta_k's
    neighbours, and beta_{k-1}, which beta_{k+1} overwrites in place."""
    theta, delta, sigma = chebyshev_bounds(config.nu)
    rho, steps = 1 / sigma, [(0.0, 1 / theta)]
    for _ in range(config.solve_iterations - 1):
        rho_next = 1 / (2 * sigma - rho)
        steps.append((rho_next * rho, 2 * rho_next / delta))
        rho = rho_next
    return steps


def _size(v, joint: bool, dim: int):
    """|v| per edge, or the norm of its channel vector (joint, channels on ``dim``)."""
    return v.norm(dim=dim, keepdim=True) if joint else v.abs()


def time_to_activate(z, rate, joint: bool, dim: int = 0):
    """Time until |z + t rate| reaches 1 for an inactive edge (inf if it never does): (1 - sign(rate) z) / |rate|, or
    the positive root of ||rate||^2 t^2 + 2 (z . rate) t + ||z||^2 - 1 = 0 (joint, channels on ``dim``; written
    without cancellation)."""
    if not joint:
        return torch.where(rate != 0, (1 - torch.sign(rate) * z) / rate.abs(), torch.inf)
    a, q = rate.square().sum(dim, keepdim=True), (z * rate).sum(dim, keepdim=True)
    c = 1 - z.square().sum(dim, keepdim=True)
    root = (q.square() + a * c).sqrt()
    t = torch.where(q >= 0, c / (q + root), (root - q) / a)
    return torch.where(a > 0, t, torch.inf)


def settle(z, active, d, kappa: float, joint: bool, dim: int = 0):
    """Active edges at their quasi-steady size |z| = 1 + max(||D beta|| / kappa, ACTIVE_FLOOR), keeping their
    direction z / |z|: what z of the kappa-path holds while gamma = D beta on the edge (channels on ``dim``)."""
    size = (_size(d, joint, dim) / kappa).clamp(min=ACTIVE_FLOOR)
    return torch.where(active, z / _size(z, joint, dim).clamp(min=1e-30) * (1 + size), z)


def event_step(beta, zh, zv, xs, jh, jv, count: int, config: SolverConfig, joint: bool):
    """One step of the events integrator from a solved (beta, z): the inactive edges' times to activate at the rates
    D beta / nu; z moves to the time dt at which ``count`` more jumps have activated (the edges that reach |z| = 1
    enter at their quasi-steady size); beta is solved for the new support; the inactive edges' z are corrected for
    the change of their rates since the step's mean entry time (one entry per step: no correction); the active edges
    settle. Returns the new (beta, zh, zv), or None when no jump can activate any more."""
    nu = config.nu
    ah, av = support(zh, zv, joint)
    start = grad(beta)
    th, tv = (
        torch.where(a, torch.inf, time_to_activate(z, d / nu, joint))
        for z, a, d in ((zh, ah, start[0]), (zv, av, start[1]))
    )
    waiting = torch.cat([th[jh], tv[jv]])  # the inactive jumps' activation times
    waiting = waiting[waiting.isfinite()]
    if waiting.numel() == 0:
        return None
    dt = waiting.kthvalue(min(count, waiting.numel())).values
    moved, entry_times = [], []
    for z, a, d, t in ((zh, ah, start[0], th), (zv, av, start[1], tv)):
        entering = ~a & (t <= dt)  # joint: t has one channel and broadcasts
        arrived = settle(z + torch.minimum(t, dt) * d / nu, entering.expand_as(z), d, config.kappa, joint)
        moved.append(torch.where(entering, arrived, torch.where(a, z, z + dt * d / nu)))
        entry_times.append(t[entering])
    zh, zv = moved
    ah, av = support(zh, zv, joint)
    beta = solve_beta(beta, xs, (~ah).to(xs.dtype), (~av).to(xs.dtype), nu, config.solve_iterations)
    end = grad(beta)
    lag = dt - torch.cat(entry_times).mean()
    zh, zv = (
        torch.where(a, z, z + lag * (d1 - d0) / nu)
        for z, a, d0, d1 in ((zh, ah, start[0], end[0]), (zv, av, start[1], end[1]))
    )
    zh, zv = (settle(z, a, d, config.kappa, joint) for z, a, d in zip((zh, zv), support(zh, zv, joint), end))
    return beta, zh, zv


def events_path_image(
    x, targets, config: SolverConfig, joint: bool, projection: str, noise: float | None = None, discrepancy: float = 1.0
):
    """``lbi_path_image`` with the events integrator (README.md, "Events integrator"). The path moves on a grid of
    steps that each activate ``config.events`` of the image's jumps, whatever the targets; a target between two grid
    points is read off a shorter last step that activates what it still needs, from which the grid goes on
    unchanged. So every output is the one that target alone would give."""
    s = config.scale
    channels, height, width = x.shape
    edges = edge_count(height, width) * (1 if joint else channels)
    xs = s * x
    jh, jv, jumps = _jumps(xs, joint)
    per_step = max(1, required_active(config.events, jumps))
    limit = -1.0 if noise is None else (discrepancy * noise) ** 2

    zh, zv = x.new_zeros(channels, height, width - 1), x.new_zeros(channels, height - 1, width)
    beta = solve_beta(xs.clone(), xs, x.new_ones(zh.shape), x.new_ones(zv.shape), config.nu, config.solve_iterations)
    stops, k = [], 0  # k: grid steps taken
    for target in targets:
        need = required_active(target, jumps)
        stop, steps = (beta, zh, zv), k  # the state the output is read from, and its steps
        while target < 1:
            ah, av = support(zh, zv, joint)
            active_jumps = int((ah & jh).sum() + (av & jv).sum())
            quiet = float((beta / s - x).square().mean()) <= limit  # the discrepancy principle
            stop, steps = (beta, zh, zv), k
            if active_jumps >= need or quiet or k >= config.max_iter:
                break
            last = need - active_jumps <= per_step
            moved = event_step(beta, zh, zv, xs, jh, jv, need - active_jumps if last else per_step, config, joint)
            if moved is None:  # no jump can activate any more: the budget is spent
                k = steps = config.max_iter
                break
            if last:  # the output only: the grid does not move
                stop, steps = moved, k + 1
                break
            (beta, zh, zv), k = moved, k + 1
        quiet = float((stop[0] / s - x).square().mean()) <= limit
        ah, av = support(stop[1], stop[2], joint)
        stops.append(_stop(x, stop[0] / s, ah, av, (jh, jv), need, target, steps, quiet, projection, edges))
    return stops


def solve(
    x: torch.Tensor,
    targets: list[float],
    config: SolverConfig,
    channels: str,
    projection: str,
    noise: torch.Tensor | None = None,
    discrepancy: float = 1.0,
):
    """Backend entry: x (B, C, H, W) in [0, 1]; ``targets`` ascending; ``noise`` (B,) or None. Returns
    [(out, SparsifyInfo)] per target."""
    sigmas = [None] * len(x) if noise is None else noise.tolist()
    # a target may be one number for the batch or a (B,) tensor, one per image
    mine = [[float(t[i]) if isinstance(t, torch.Tensor) else t for t in targets] for i in range(len(x))]
    path_image = events_path_image if config.integrator == "events" else lbi_path_image
    per_image = [
        path_image(img, image_targets, config, channels == "joint", projection, sigma, discrepancy)
        for img, image_targets, sigma in zip(x, mine, sigmas)
    ]
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
