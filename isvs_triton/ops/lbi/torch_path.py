"""Split LBI, batched torch path: any device and dtype (float64 too), and the oracle the numba loops and the Triton
kernels are compared with.

Same equations as ``reference.py`` (README.md beside this file), on a whole batch at once; ``advance`` is this
backend's part of the shared driver in ``path.py``:
- every iteration counts each image's active jumps (and, with a noise stop, its residual) on the device and freezes
  the images that stopped (their updates are multiplied by 0, which leaves the state bit-exact), so no image runs
  past its own stop;
- the host looks only every ``CHECK_EVERY`` iterations, and then drops finished images from the working set, so a
  batch does not run at the pace of its slowest image;
- buffers are allocated once per working set and updated in place.
"""

from __future__ import annotations

import math

import torch

from ...config import SolverConfig, required_active
from ..graph import grad, grad_adjoint
from .path import PathState, StopRule, count_active, residual, running, support
from .reference import chebyshev_steps, settle, time_to_activate

CHECK_EVERY = 16  # iterations between host synchronisations


def _shrink_(z: torch.Tensor, out: torch.Tensor, joint: bool) -> torch.Tensor:
    """out = gamma / kappa for z; "independent": z - clamp(z, -1, 1); "joint": z * max(1 - 1/||z_e||, 0)."""
    if not joint:
        torch.clamp(z, -1.0, 1.0, out=out)
        return torch.sub(z, out, out=out)
    factor = (1 - z.square().sum(1, keepdim=True).rsqrt()).clamp_(min=0)  # rsqrt(0) = inf -> factor 0
    return torch.mul(z, factor, out=out)


class _Workspace:
    """In-place buffers of one working set of A images."""

    def __init__(self, beta: torch.Tensor):
        self.rh = beta.new_empty(*beta.shape[:-1], beta.shape[-1] - 1)
        self.rv = beta.new_empty(*beta.shape[:-2], beta.shape[-2] - 1, beta.shape[-1])
        self.grad_t = torch.empty_like(beta)  # D^T r
        self.fit = torch.empty_like(beta)  # (beta - s x) + D^T r / nu


def _step(s: PathState, xs: torch.Tensor, run: torch.Tensor, ws: _Workspace, cfg: SolverConfig, joint: bool):
    """One simultaneous Split LBI update of every image whose ``run`` weight (A, 1, 1, 1) is 1."""
    if s.prev is not None:
        # y = x_k + mu (x_k - x_{k-1}) is computed in the x_k buffers; x_{k-1} <- x_k for running images only
        for cur, prev, tmp in ((s.beta, s.prev[0], ws.fit), (s.zh, s.prev[1], ws.rh), (s.zv, s.prev[2], ws.rv)):
            torch.sub(cur, prev, out=tmp)
            prev.lerp_(cur, run)
            cur.addcmul_(tmp, run * cfg.momentum)
    beta = s.beta
    for z, r, near, far in (
        (s.zh, ws.rh, beta[..., :, :-1], beta[..., :, 1:]),
        (s.zv, ws.rv, beta[..., :-1, :], beta[..., 1:, :]),
    ):
        gamma = _shrink_(z, ws.grad_t[..., : z.shape[-2], : z.shape[-1]], joint).mul_(cfg.kappa)
        torch.sub(far, near, out=r).sub_(gamma)  # r = D beta - gamma
    g = ws.grad_t.zero_()
    g[..., :, 1:] += ws.rh
    g[..., :, :-1] -= ws.rh
    g[..., 1:, :] += ws.rv
    g[..., :-1, :] -= ws.rv
    s.zh.addcmul_(ws.rh, run * (cfg.alpha / cfg.nu))
    s.zv.addcmul_(ws.rv, run * (cfg.alpha / cfg.nu))
    torch.sub(beta, xs, out=ws.fit).add_(g.div_(cfg.nu))
    beta.addcmul_(ws.fit, run * -(cfg.kappa * cfg.alpha))


def _take(state: PathState, index: torch.Tensor) -> PathState:
    t = [x.index_select(0, index) for x in state.tensors()]
    return PathState(t[0], t[1], t[2], tuple(t[3:]) if state.prev is not None else None, state.iterations[index])


def _put(state: PathState, index: torch.Tensor, part: PathState) -> None:
    for dst, src in zip(state.tensors(), part.tensors()):
        dst.index_copy_(0, index, src)
    state.iterations.index_copy_(0, index, part.iterations)


class TorchStepper:
    """Advances a working set in place with ``_step``; returns the new active-jump counts and residuals (or None)."""

    def __init__(self, work: PathState, cfg: SolverConfig, joint: bool):
        self.workspace, self.cfg, self.joint = _Workspace(work.beta), cfg, joint

    def __call__(self, work: PathState, xs: torch.Tensor, run: torch.Tensor, rule: StopRule, noise: bool):
        _step(work, xs, run.view(-1, 1, 1, 1), self.workspace, self.cfg, self.joint)
        count = count_active(work.zh, work.zv, rule, self.joint)
        return count, residual(work.beta, xs) if noise else None


def advance(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool) -> None:
    """Run every image of ``state`` until its ``rule`` stops it or ``cfg.max_iter`` iterations (``path.Advance``).

    ``xs`` is scale * x (B, C, H, W). The state is updated in place; images already stopped do not move."""
    if cfg.integrator == "events":
        return advance_events(state, xs, rule, cfg, joint)
    noise = rule.has_noise
    index = running(state, xs, rule, cfg, joint)[0].nonzero().squeeze(1)
    while index.numel():
        work, xw, rule_w = _take(state, index), xs.index_select(0, index), rule.take(index)
        step, run_w = TorchStepper(work, cfg, joint), torch.ones(index.numel(), dtype=torch.bool, device=xs.device)
        while True:
            for _ in range(CHECK_EVERY):
                count, ssq = step(work, xw, run_w.to(xw.dtype), rule_w, noise)
                work.iterations += run_w
                run_w &= (count < rule_w.need) & (work.iterations < cfg.max_iter)
                if noise:
                    run_w &= ssq > rule_w.limit
            still = int(run_w.sum())
            # compact once a quarter of the working set has finished: copying costs about one iteration
            if still == 0 or still <= 0.75 * index.numel():
                break
        _put(state, index, work)
        index = index[run_w]


# ------------------------------------------------------------------------------------------ the events integrator
def solve_beta(beta: torch.Tensor, xs: torch.Tensor, wh: torch.Tensor, wv: torch.Tensor, cfg: SolverConfig) -> None:
    """``reference.solve_beta`` for a batch, in place, in the form ``chebyshev_steps`` gives: a fixed number of
    iterations and no inner products, so nothing is read back to the host."""
    previous = beta.clone()
    for a, b in chebyshev_steps(cfg):
        dh, dv = grad(beta)
        following = beta + a * (beta - previous) + b * (xs - beta - grad_adjoint(wh * dh, wv * dv) / cfg.nu)
        previous.copy_(beta)
        beta.copy_(following)


def _solve_support(
    beta: torch.Tensor, xs: torch.Tensor, zh: torch.Tensor, zv: torch.Tensor, cfg: SolverConfig, joint: bool
) -> None:
    ah, av = support(zh, zv, joint)
    solve_beta(beta, xs, (~ah).to(beta.dtype), (~av).to(beta.dtype), cfg)


def _event_step(beta, zh, zv, xs, rule: StopRule, count: torch.Tensor, cfg: SolverConfig, joint: bool):
    """``reference.event_step`` for a batch, each image activating its ``count`` (A,) jumps: returns the new
    (beta, zh, zv) and (A,) bool, the images in which no jump can activate any more (their state is unchanged)."""
    ah, av = support(zh, zv, joint)
    start = grad(beta)
    th, tv = (
        torch.where(a, torch.inf, time_to_activate(z, d / cfg.nu, joint, dim=1))
        for z, a, d in ((zh, ah, start[0]), (zv, av, start[1]))
    )
    waiting = torch.cat(
        [torch.where(rule.jumps_h, th, torch.inf).flatten(1), torch.where(rule.jumps_v, tv, torch.inf).flatten(1)], 1
    )
    finite = waiting.isfinite().sum(1)
    stuck = finite == 0
    count = torch.minimum(count, finite).clamp(min=1)
    dt = waiting.sort(1).values.gather(1, (count - 1).view(-1, 1)).view(-1, 1, 1, 1)
    dt = torch.where(stuck.view(-1, 1, 1, 1), 0, dt)
    moved, entry_sum, entries = [], 0, 0
    for z, a, d, t in ((zh, ah, start[0], th), (zv, av, start[1], tv)):
        entering = ~a & (t <= dt)
        arrived = settle(z + torch.minimum(t, dt) * d / cfg.nu, entering.expand_as(z), d, cfg.kappa, joint, dim=1)
        moved.append(torch.where(entering, arrived, torch.where(a, z, z + dt * d / cfg.nu)))
        entry_sum = entry_sum + torch.where(entering, t, 0).flatten(1).sum(1)
        entries = entries + entering.flatten(1).sum(1)
    new_zh, new_zv = moved
    new_beta = beta.clone()
    _solve_support(new_beta, xs, new_zh, new_zv, cfg, joint)
    end = grad(new_beta)
    ah, av = support(new_zh, new_zv, joint)
    # the rates changed as the step's edges entered: correct for the rest of the step after their mean entry time
    lag = (dt.view(-1) - entry_sum / entries.clamp(min=1)).view(-1, 1, 1, 1)
    new_zh, new_zv = (
        torch.where(a, z, z + lag * (d1 - d0) / cfg.nu)
        for z, a, d0, d1 in ((new_zh, ah, start[0], end[0]), (new_zv, av, start[1], end[1]))
    )
    new_zh, new_zv = (
        settle(z, a, d, cfg.kappa, joint, dim=1)
        for z, a, d in zip((new_zh, new_zv), support(new_zh, new_zv, joint), end)
    )
    keep = stuck.view(-1, 1, 1, 1)
    return [torch.where(keep, old, new) for old, new in ((beta, new_beta), (zh, new_zh), (zv, new_zv))], stuck


def advance_events(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool,
                   step=None, solve_support=None, rounds: int | None = None) -> PathState:  # fmt: skip
    """``path.Advance`` with the events integrator (``reference.events_path_image`` for a batch). ``state`` moves on
    its grid of steps; returns the state each image's output is read from: the grid state where it stopped, or the
    shorter last step that reaches its target (a path not started is first solved for its empty support).

    ``step`` and ``solve_support`` (default: this module's ``_event_step`` and ``_solve_support``) are how a step
    and a solve run: the tiled Triton path (``triton_events_tiled.py``) passes its kernels' and keeps this control
    flow. ``rounds``: first step every image that many times, the stopped ones kept by selects, nothing read back to
    the host (``step_bound``); then, and without it from the start, step the images still running, found on the
    host after each step (the check at the end is one read when the rounds were enough)."""
    step, solve_support = step or _event_step, solve_support or _solve_support
    per_step = required_active(cfg.events, rule.jump_count).clamp(min=1)  # jumps activated per grid step
    fresh = state.beta.flatten(1).eq(0).all(1) & (state.iterations == 0)
    if rounds:  # a path not started: beta solved for the empty support, from s x (here every image is solved)
        beta = xs.clone()
        solve_support(beta, xs, state.zh, state.zv, cfg, joint)
        state.beta.copy_(torch.where(fresh.view(-1, 1, 1, 1), beta, state.beta))
    elif bool(fresh.any()):
        index = fresh.nonzero().squeeze(1)
        beta, xw = xs.index_select(0, index).clone(), xs.index_select(0, index)
        solve_support(beta, xw, state.zh.index_select(0, index), state.zv.index_select(0, index), cfg, joint)
        state.beta.index_copy_(0, index, beta)
    out = PathState(state.beta.clone(), state.zh.clone(), state.zv.clone(), None, state.iterations.clone())
    finished = torch.zeros_like(fresh)  # images whose output came from a last step (or that cannot move)
    for _ in range(rounds or 0):  # every image, the stopped ones kept by the selects
        go, active, _ = running(state, xs, rule, cfg, joint)
        _grid_step(state, out, finished, go & ~finished, active, xs, rule, per_step, cfg, joint, step, None)
    go, active, _ = running(state, xs, rule, cfg, joint)
    index = (go & ~finished).nonzero().squeeze(1)
    while index.numel():  # the images still running
        _grid_step(state, out, finished, None, active, xs, rule, per_step, cfg, joint, step, index)
        go, active, _ = running(state, xs, rule, cfg, joint)
        index = (go & ~finished).nonzero().squeeze(1)
    return out


def _grid_step(state, out, finished, go, active, xs, rule, per_step, cfg, joint, step, index) -> None:
    """One step of ``advance_events``, in place: of the images ``index`` (every image: None), those that ``go``
    (None: all of them) move; a last step (the target within a step) is written to ``out`` only, the grid stays."""
    if index is not None:  # the running images gathered; rule.take copies only what the step reads
        take = lambda t: t.index_select(0, index)  # noqa: E731 - the same gather for every tensor below
        rule, active, per_step, xs = rule.take(index), take(active), take(per_step), take(xs)
    else:
        take = lambda t: t  # noqa: E731
    beta, zh, zv, steps = (take(t) for t in (state.beta, state.zh, state.zv, state.iterations))
    remaining = rule.need - active
    last = remaining <= per_step
    new, stuck = step(beta, zh, zv, xs, rule, torch.where(last, remaining, per_step), cfg, joint)
    go = torch.ones_like(last) if go is None else go
    grid = go & ~last & ~stuck  # the images whose grid moves
    updates = [(dst, torch.where(grid.view(-1, 1, 1, 1), moved, old)) for dst, old, moved in
               zip((state.beta, state.zh, state.zv), (beta, zh, zv), new)]  # fmt: skip
    updates += [(dst, torch.where(go.view(-1, 1, 1, 1), moved, take(dst))) for dst, moved in
                zip((out.beta, out.zh, out.zv), new)]  # fmt: skip
    updates += [
        (state.iterations, torch.where(go, torch.where(stuck, cfg.max_iter, steps + grid.long()), steps)),
        (out.iterations, torch.where(go, torch.where(stuck, cfg.max_iter, steps + 1), take(out.iterations))),
        (finished, take(finished) | (go & (last | stuck))),
    ]
    for dst, value in updates:
        if index is None:
            dst.copy_(value)
        else:
            dst.index_copy_(0, index, value)


def step_bound(rule: StopRule, cfg: SolverConfig) -> int | None:
    """Grid steps (the last, shorter one included) that bring an image to a number target when each step activates
    its share, ceil(target / events) + 1, at most the budget; None for per-image targets (no bound known on the host
    without reading them). An image whose step finds fewer waiting edges than its share may need more."""
    return None if rule.target is None else min(math.ceil(rule.target / cfg.events) + 1, cfg.max_iter)
