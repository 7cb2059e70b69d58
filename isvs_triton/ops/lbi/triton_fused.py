"""Split LBI in Triton, the host side: the state in rotating slots, one launch for all iterations (persistent) or
one per iteration, the host check, the write-back (the kernels are in ``triton_kernels.py``, their launch
configurations in ``triton_launch.py``; README.md beside this file). The events integrator has its kernels and host
sides in ``triton_events_onchip.py`` (one program per small image, its state in registers), ``triton_events.py``
(one program per image, its state in global memory) and ``triton_events_tiled.py`` (large images)."""

from __future__ import annotations

import functools

import torch
import triton

from ...config import SolverConfig
from . import triton_events_onchip, triton_events_tiled
from .path import PathState, StopRule, capturing, running
from .triton_events import _arg, advance_events
from .triton_kernels import _lbi_persistent_kernel, _lbi_step_kernel, _write_back_kernel
from .triton_launch import BLOCK, CONFIG_DIR, DEFAULT_LAUNCH, config_file, config_key, launch_config, tuned_configs

__all__ = ["BLOCK", "CONFIG_DIR", "DEFAULT_LAUNCH", "advance", "config_file", "config_key", "tuned_configs"]

PERSISTENT_MAX_SIDE = 64  # images up to this size per channel run in the persistent kernel, larger ones per iteration
# the events integrator: images up to this side run one program each for their whole path (triton_events.py), larger
# ones tile-parallel, every pass over (image, block) (triton_events_tiled.py): the same split as the explicit
# kernels', by the performance model (docs/performance.md), to be confirmed on a GPU (tools/gpu_check.sh)
EVENTS_PER_IMAGE_MAX_SIDE = PERSISTENT_MAX_SIDE
EVENTS_ON_CHIP = True  # images that fit (triton_events_onchip.fits_on_chip) hold their state in registers
CHECK_EVERY = 8  # launches of the step kernel between host checks for "every image has stopped"
INDEX_LIMIT = 2**31 - 1  # the kernels index the three slots with int32: larger batches run in chunks


def to_slots(state: PathState, index: torch.Tensor) -> list[torch.Tensor]:
    """The images ``index`` of ``state`` in three rotating slots per tensor, (3, A, ...) each: beta, zh, zv.

    Iteration k reads slot k%3 (and (k-1)%3 with momentum) and writes (k+1)%3, so an image that stops leaves its
    state where it is and nothing is copied per iteration. Slot 0 starts with the current state, slot 2 with the
    previous one (when the state keeps it)."""
    slots = []
    for i, cur in enumerate((state.beta, state.zh, state.zv)):
        slot = cur.new_empty(3, index.numel(), *cur.shape[1:])
        torch.index_select(cur, 0, index, out=slot[0])
        if state.prev is not None:
            torch.index_select(state.prev[i], 0, index, out=slot[2])
        slots.append(slot)
    return slots


def _solver_args(cfg: SolverConfig) -> tuple[float, ...]:
    """kappa, z step, beta step, 1/nu and momentum, as the kernels take them."""
    return cfg.kappa, cfg.alpha / cfg.nu, -(cfg.kappa * cfg.alpha), 1.0 / cfg.nu, cfg.momentum


def advance(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool,
            persistent: bool | None = None, launch: dict | None = None,
            index_limit: int = INDEX_LIMIT) -> PathState | None:  # fmt: skip
    """``path.Advance`` on the kernels: run every image until its ``rule`` stops it or ``cfg.max_iter``.

    ``persistent``: one launch for all iterations (default for images up to PERSISTENT_MAX_SIDE, or as tuned) or
    one launch per iteration (``functools.partial(advance, persistent=False)`` is the per-iteration backend that the
    tests and the bench run). ``launch`` ({"BLOCK_H", "BLOCK_W", "num_warps"}) defaults to the tuned configuration
    of this GPU and size. ``index_limit``: the largest index of the slots in one launch (a batch past it runs in
    chunks). The events integrator runs in its own kernels (``triton_events.py`` up to EVENTS_PER_IMAGE_MAX_SIDE,
    ``triton_events_tiled.py`` above), which take none of these options.
    """
    if cfg.integrator == "events":
        if max(state.beta.shape[-2:]) > EVENTS_PER_IMAGE_MAX_SIDE:
            return triton_events_tiled.advance_events(state, xs, rule, cfg, joint)
        if EVENTS_ON_CHIP and triton_events_onchip.fits_on_chip(*state.beta.shape[1:]):
            return triton_events_onchip.advance_events(state, xs, rule, cfg, joint)
        return advance_events(state, xs, rule, cfg, joint)
    go, active, squares = running(state, xs, rule, cfg, joint)
    noise = squares is not None
    squares = squares if noise else rule.limit  # a placeholder the kernels never read without NOISE
    height, width = state.beta.shape[-2:]
    if state.prev is None:  # a state kept without its previous iteration advances without momentum (as torch_path)
        cfg = cfg.replace(momentum=0.0)
    momentum = cfg.momentum > 0
    if persistent is None:
        persistent = use_persistent(height, width, joint, momentum, state.beta.device)
    # every image when the host must read nothing back (a CUDA graph can capture the call): one that has stopped
    # runs no iteration (the kernels test its stop first); otherwise the images still running
    fixed = persistent or capturing(xs)
    if fixed:
        index = torch.arange(len(go), device=go.device)
    else:
        index = go.nonzero().squeeze(1)
        if not index.numel():
            return
    launch = launch or launch_config(height, width, joint, momentum, state.beta.device)
    run = _run_persistent if persistent else functools.partial(_run_stepped, fixed=fixed)
    # the kernels write where the state lives: a non-contiguous state goes through a contiguous copy
    tensors = state.tensors()
    dst = [t.contiguous() for t in tensors]
    target = PathState(*dst[:3], tuple(dst[3:]) if state.prev is not None else None, state.iterations)
    for chunk in index.split(max(1, index_limit // (3 * state.beta[0].numel()))):
        slots = to_slots(state, chunk)
        budget = (cfg.max_iter - state.iterations[chunk]).to(torch.int32)
        stop = (rule.need[chunk].to(torch.int32), rule.limit[chunk], budget)
        iters = run(slots, xs.index_select(0, chunk), stop, active[chunk].to(torch.int32), squares[chunk], cfg,
                    joint, noise, launch)  # fmt: skip
        write_back(slots, iters, target, chunk, joint, launch)
        state.iterations[chunk] += iters.to(state.iterations.dtype)
    for t, d in zip(tensors, dst):
        if d is not t:
            t.copy_(d)


def lbi_step(slots: list[torch.Tensor], xs: torch.Tensor, stop: tuple[torch.Tensor, ...], iters: torch.Tensor,
             count: torch.Tensor, squares: torch.Tensor, k: int, cfg: SolverConfig, joint: bool, noise: bool,
             launch: dict) -> None:  # fmt: skip
    """Launch iteration ``k`` of ``_lbi_step_kernel`` (its arguments are described there); ``stop`` is
    (need, limit, budget)."""
    batch, channels, height, width = slots[0].shape[1:]
    tiles_w = triton.cdiv(width, launch["BLOCK_W"])
    grid = (triton.cdiv(height, launch["BLOCK_H"]) * tiles_w, batch if joint else batch * channels)
    need, limit, budget = stop
    _lbi_step_kernel[grid](
        *(_arg(t) for t in slots), xs, need, limit, budget, iters, count, squares,
        k, batch, channels, height, width, tiles_w, *(t[0].numel() for t in slots), *_solver_args(cfg),
        JOINT=joint, MOMENTUM=cfg.momentum > 0, NOISE=noise, BLOCK_H=launch["BLOCK_H"], BLOCK_W=launch["BLOCK_W"],
        num_warps=launch["num_warps"],
    )  # fmt: skip


def _run_stepped(slots, xs, stop, count, squares, cfg, joint, noise, launch, fixed: bool) -> torch.Tensor:
    """One launch per iteration; the images stop themselves, the host looks every CHECK_EVERY launches, or with
    ``fixed`` (a CUDA graph capturing) runs the solver's whole budget without looking: the launches after every
    image has stopped return at once."""
    need, limit, budget = stop
    counts = count.new_zeros(3, count.numel())  # row k%3: active jumps of state k
    counts[0] = count
    resids = squares.new_zeros(3, count.numel())  # row k%3: residual of state k (noise stop only)
    resids[0] = squares
    iters = torch.zeros_like(count)
    for k in range(cfg.max_iter if fixed else int(budget.max())):
        if k and k % CHECK_EVERY == 0 and not fixed:
            go = (counts[k % 3] < need) & (budget > k)
            if noise:
                go &= resids[k % 3] > limit
            if not bool(go.any()):
                break
        lbi_step(slots, xs, stop, iters, counts, resids, k, cfg, joint, noise, launch)
    return iters


def _run_persistent(slots, xs, stop, count, squares, cfg, joint, noise, launch) -> torch.Tensor:
    """All iterations in one launch of ``_lbi_persistent_kernel`` (one program per image)."""
    batch, channels, height, width = slots[0].shape[1:]
    need, limit, budget = stop
    iters = torch.zeros_like(count)
    _lbi_persistent_kernel[(batch,)](
        *(_arg(t) for t in slots), xs, need, limit, budget, iters, count, squares.contiguous(),
        channels, height, width, triton.cdiv(height, launch["BLOCK_H"]), triton.cdiv(width, launch["BLOCK_W"]),
        *(t[0].numel() for t in slots), *_solver_args(cfg),
        JOINT=joint, MOMENTUM=cfg.momentum > 0, NOISE=noise, BLOCK_H=launch["BLOCK_H"], BLOCK_W=launch["BLOCK_W"],
        num_warps=launch["num_warps"],
    )  # fmt: skip
    return iters


def write_back(slots: list[torch.Tensor], iters: torch.Tensor, state: PathState, rows: torch.Tensor,
               joint: bool, launch: dict) -> None:  # fmt: skip
    """Each image's state after ``iters`` (A,) iterations, from the slots to rows ``rows`` of ``state``
    (contiguous tensors)."""
    batch, channels, height, width = slots[0].shape[1:]
    tiles_w = triton.cdiv(width, launch["BLOCK_W"])
    grid = (triton.cdiv(height, launch["BLOCK_H"]) * tiles_w, batch if joint else batch * channels)
    dst = state.tensors() if state.prev is not None else state.tensors() * 2  # placeholders: never written
    _write_back_kernel[grid](
        *(_arg(t) for t in slots), iters, *(_arg(t) for t in dst), rows,
        channels, height, width, tiles_w, *(t[0].numel() for t in slots), int(state.prev is not None),
        JOINT=joint, BLOCK_H=launch["BLOCK_H"], BLOCK_W=launch["BLOCK_W"], num_warps=launch["num_warps"],
    )  # fmt: skip


def use_persistent(height: int, width: int, joint: bool, momentum: bool, device: torch.device) -> bool:
    """All iterations in one launch (persistent) or one launch per iteration: tuned per GPU where known."""
    if max(height, width) > PERSISTENT_MAX_SIDE:
        return False
    return launch_config(height, width, joint, momentum, device).get("persistent", True)
