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

import torch

from ...config import SolverConfig
from .path import PathState, StopRule, count_active, residual, running

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
