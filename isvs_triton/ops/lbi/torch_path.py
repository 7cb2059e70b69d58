"""Split LBI, batched torch path: any device and dtype (float64 too), and the oracle the numba loops and the Triton
kernels are compared with.

Same equations as ``reference.py`` (README.md beside this file), on a whole batch at once:
- the state (beta, z) lives in a ``PathState`` that can be advanced from one stop to the next, so ``path`` computes
  several sparsities in one run and a later stage continues an earlier one exactly;
- every iteration counts each image's active edges on the device and freezes the images that reached their target
  (their updates are multiplied by 0, which leaves the state bit-exact), so no image runs past its own stop;
- the host looks only every ``CHECK_EVERY`` iterations, and then drops finished images from the working set, so a
  batch does not run at the pace of its slowest image;
- buffers are allocated once per working set and updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...config import SolverConfig, edge_count, required_active
from ...info import SparsifyInfo
from ..projection import torch_path as projection_torch

CHECK_EVERY = 16  # iterations between host synchronisations


@dataclass
class PathState:
    """Split LBI state of a batch; z is split into horizontal (B, C, H, W-1) and vertical (B, C, H-1, W) edges."""

    beta: torch.Tensor  # (B, C, H, W), on the scaled image scale * x
    zh: torch.Tensor
    zv: torch.Tensor
    prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # (beta, zh, zv) one iteration back, momentum only
    iterations: torch.Tensor  # (B,) int64

    @staticmethod
    def zeros(x: torch.Tensor, momentum: bool) -> PathState:
        b, c, h, w = x.shape
        beta, zh, zv = x.new_zeros(b, c, h, w), x.new_zeros(b, c, h, w - 1), x.new_zeros(b, c, h - 1, w)
        prev = (beta.clone(), zh.clone(), zv.clone()) if momentum else None
        return PathState(beta, zh, zv, prev, torch.zeros(b, dtype=torch.int64, device=x.device))

    def tensors(self) -> list[torch.Tensor]:
        return [self.beta, self.zh, self.zv, *(self.prev or ())]


def support(zh: torch.Tensor, zv: torch.Tensor, joint: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Active edges (gamma != 0): (B, C or 1, H, W-1) and (B, C or 1, H-1, W) bool."""
    if joint:
        return zh.square().sum(1, keepdim=True) > 1, zv.square().sum(1, keepdim=True) > 1
    return zh.abs() > 1, zv.abs() > 1


def count_support(active_h: torch.Tensor, active_v: torch.Tensor) -> torch.Tensor:
    """Active edges per image (B,) of a support."""
    return active_h.flatten(1).sum(1) + active_v.flatten(1).sum(1)


def count_active(zh: torch.Tensor, zv: torch.Tensor, joint: bool) -> torch.Tensor:
    return count_support(*support(zh, zv, joint))


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
    """Advances a working set in place with ``_step``; returns the new active-edge counts."""

    def __init__(self, work: PathState, cfg: SolverConfig, joint: bool):
        self.workspace, self.cfg, self.joint = _Workspace(work.beta), cfg, joint

    def __call__(self, work: PathState, xs: torch.Tensor, run: torch.Tensor) -> torch.Tensor:
        _step(work, xs, run.view(-1, 1, 1, 1), self.workspace, self.cfg, self.joint)
        return count_active(work.zh, work.zv, self.joint)


def advance(state: PathState, xs: torch.Tensor, need: torch.Tensor, cfg: SolverConfig, joint: bool) -> None:
    """Run every image of ``state`` until it has ``need`` (B,) active edges or ``cfg.max_iter`` iterations.

    ``xs`` is scale * x (B, C, H, W). The state is updated in place; images already at their target do not move.
    """
    running = (count_active(state.zh, state.zv, joint) < need) & (state.iterations < cfg.max_iter)
    index = running.nonzero().squeeze(1)
    while index.numel():
        work, xw, need_w = _take(state, index), xs.index_select(0, index), need.index_select(0, index)
        step, run_w = TorchStepper(work, cfg, joint), torch.ones(index.numel(), dtype=torch.bool, device=xs.device)
        while True:
            for _ in range(CHECK_EVERY):
                count = step(work, xw, run_w.to(xw.dtype))
                work.iterations += run_w
                run_w &= (count < need_w) & (work.iterations < cfg.max_iter)
            still = int(run_w.sum())
            # compact once a quarter of the working set has finished: copying costs about one iteration
            if still == 0 or still <= 0.75 * index.numel():
                break
        _put(state, index, work)
        index = index[run_w]


def stops(x: torch.Tensor, targets: list[float], config: SolverConfig, joint: bool, advance_fn=advance,
          state: PathState | None = None):  # fmt: skip
    """Advance one path through ``targets`` (ascending); yield (state, active_h, active_v, need) at each stop.

    ``advance_fn`` has the signature of ``advance``; the numba and Triton backends pass their own. ``state``:
    continue this path (updated in place) instead of starting from zero; images already past a target do not move."""
    batch, c, h, w = x.shape
    edges = edge_count(h, w) * (1 if joint else c)
    if state is None:
        state = PathState.zeros(x, momentum=config.momentum > 0)
    xs = x * config.scale
    for target in targets:
        need = torch.full((batch,), required_active(target, edges), dtype=torch.int64, device=x.device)
        advance_fn(state, xs, need, config, joint)
        yield (state, *support(state.zh, state.zv, joint), need)


def solve(x: torch.Tensor, targets: list[float], config: SolverConfig, channels: str, projection: str,
          advance_fn=advance, project_fn=projection_torch.project, state: PathState | None = None):  # fmt: skip
    """Backend entry: x (B, C, H, W) in [0, 1]; ``targets`` ascending. Returns [(out, SparsifyInfo)] per target.

    The Triton backend is this function with its own ``advance_fn`` and ``project_fn``. ``state`` (optional) is a
    ``PathState`` of x to continue, updated in place: how training continues each image's path between stages."""
    joint = channels == "joint"
    batch, c, h, w = x.shape
    edges = edge_count(h, w) * (1 if joint else c)
    results = []
    for stop, active_h, active_v, need in stops(x, targets, config, joint, advance_fn, state):
        active = count_support(active_h, active_v)
        beta = stop.beta / config.scale
        projected, regions = project_fn(x if projection == "input" else beta, active_h, active_v)
        info = SparsifyInfo(
            iterations=stop.iterations.clone(),
            sparsity=active.double() / edges if edges else torch.ones(batch, dtype=torch.float64, device=x.device),
            regions=regions,
            reached=active >= need,
        )
        results.append((beta if projection == "none" else projected, info))
    return results
