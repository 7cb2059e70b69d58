"""The events integrator in Triton for small images (README.md beside this file, "Events integrator"): one program
per image runs the image's whole path, as ``triton_events.py`` does, but its state never leaves the chip. Each array
is one register tensor over the image padded to powers of two, (CP, HP, WP) with CP HP WP <= ON_CHIP_MAX_ELEMENTS
(1 x 32 x 32: a 28x28 or 32x32 greyscale image; 4 x 16 x 16), at most 4 channels and 32 a side: s x, beta and z of
both directions are loaded once and stored once, the jumps read where a pass counts them, so global memory carries
a few KB per image instead of ~0.4 MB a step (docs/performance.md, the model). A neighbour is ``tl.gather`` along
the width or height axis (warp shuffles, with a layout change through shared memory for the height); the step's
order statistic is the same three histogram passes over the waiting times' integer keys as
``triton_events._kth_smallest``, here over registers and with 32-bit keys (``triton_events._key32``).

Registers are the budget: at 1,024 elements a program takes 8 warps at 197-235 registers a thread, the whole
register file of an SM, without spills; 2,048 elements spill at 16 warps, and a 32x32x3 image (4 x 32 x 32) spills
1.2-2 KB a thread at 16 warps and 0.8-1.4 KB at 32 (``tools/compile_report.py``; docs/performance.md), so it keeps
``triton_events.py``'s state in global memory. Holding it on chip would take shared memory the program
addresses itself, which Triton's language does not express.

The arithmetic is ``triton_events.py``'s, expression for expression, except the solve's operator, which is the
torch backend's flux form (each edge's w (D v) / nu, then D^T of it), so the kernels agree with each other and with
the torch backend to rounding. The bookkeeping differs: a solve's edge weights are derived from z (as
``torch_path`` derives them) where ``triton_events`` updates stored ones, and D beta, the times and the jumps are
recomputed or reread where a pass needs them instead of held.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ...config import SolverConfig, required_active
from .reference import ACTIVE_FLOOR
from .triton_events import (
    PAD_Z,
    _arg,
    _bin_of,
    _decide,
    _key32,
    _time_independent,
    _time_joint,
    _value32,
    steps_on,
)

PAD = tl.constexpr(PAD_Z)  # z of an edge off the image: active
ON_CHIP_MAX_ELEMENTS = 1024  # CP * HP * WP of the largest padded image a program holds in registers, unspilled
ON_CHIP_MAX_CHANNELS, ON_CHIP_MAX_SIDE = 4, 32  # and its padded channels and sides: elongated shapes spill sooner
NUM_WARPS = 8  # 4 values a thread and array at 1,024 elements; fewer warps spill there or at 512 (joint channels)


def fits_on_chip(channels: int, height: int, width: int) -> bool:
    """Whether an image of this shape runs in this kernel (its arrays padded to powers of two fit the register
    budget, as ``tools/compile_report.py`` checks); the others take ``triton_events.py`` or the tiled path."""
    cp, hp, wp = (triton.next_power_of_2(n) for n in (channels, height, width))
    return cp <= ON_CHIP_MAX_CHANNELS and max(hp, wp) <= ON_CHIP_MAX_SIDE and cp * hp * wp <= ON_CHIP_MAX_ELEMENTS


@triton.jit
def _events_onchip_kernel(
    p_beta, p_zh, p_zv,  # (B, C, H, W), (B, C, H, W-1), (B, C, H-1, W): the grid state in, and out where it stops
    p_out_beta, p_out_zh, p_out_zv,  # the same shapes: the state the output is read from
    p_xs,  # scale * x (B, C, H, W)
    p_jh, p_jv,  # int8 (B, CJ, H, W-1), (B, CJ, H-1, W): the jumps (CJ = 1 when JOINT, else C)
    p_steps,  # (iterations, 2) float32: each solve iteration's coefficients (reference.chebyshev_steps)
    p_fresh,  # (B,) int8: a path not started (beta is first solved for the empty support)
    p_need, p_per_step,  # (B,) int32: active jumps at which the image stops; jumps activated per grid step
    p_limit,  # (B,) float64: residual sum of squares at which it stops (NOISE only)
    p_iters,  # (B,) int32 in/out: grid steps taken
    p_out_iters,  # (B,) int32 out: steps taken to the output state (one more than the grid's after a last step)
    C, H, W, max_iter, iterations, inv_nu, inv_kappa, floor,
    JOINT: tl.constexpr, NOISE: tl.constexpr, CP: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr,
):  # fmt: skip
    """``triton_events._events_kernel`` for image ``program_id(0)`` with its state in registers: grid steps until its
    rule stops it, or until its target lies within one step; that shorter last step moves on from the grid state,
    which is written to p_beta, p_zh, p_zv first. Images already stopped do not move.

    Registers are the budget (module docstring), so only beta, s x and z of both directions live through the loop;
    D beta, the times and the jumps are recomputed or reread where a pass needs them, and nothing needs a mask inside
    the loop: an edge off the image
    holds z = PAD (active: weight 0, time inf, never moved) in the image's channels and z = 0 in the padding
    channels (whose beta and s x are 0), and the neighbours wrap around each axis of the padded shape, whose last
    column and row hold only edges off the image."""
    b = tl.program_id(0).to(tl.int64)
    xs, beta, zh, zv = _load_state(p_xs, p_beta, p_zh, p_zv, b, C, H, W, CP, HP, WP)
    if tl.load(p_fresh + b) != 0:  # a path not started: beta solved for the empty support, from s x
        beta = _solve(xs, xs, zh, zv, p_steps, iterations, inv_nu, JOINT)
    count, finite = _counts(beta, zh, zv, p_jh, p_jv, b, C, H, W, inv_nu, JOINT)
    iters = tl.load(p_iters + b)
    need, per_step = tl.load(p_need + b), tl.load(p_per_step + b)
    limit = tl.load(p_limit + b) if NOISE else -1.0
    phase = 0  # 0: stepping on the grid, 1: stopped on it, 2: a last step taken from it
    while phase == 0:
        if NOISE:
            noise = _residual_squares(beta, xs) <= limit
        else:
            noise = False
        done, iters, last, k = _decide(count, finite, iters, need, per_step, max_iter, noise)
        if done:
            phase = 1
        else:
            if last:  # the target lies within this step: the grid state is written first
                _store_state(p_beta, p_zh, p_zv, beta, zh, zv, b, C, H, W)
            # the step (reference.event_step): dt is the k-th smallest waiting time; z moves by dt; beta is solved
            # for the new support; z is corrected for the change of the rates since the step's mean entry time
            jump_h, jump_v = _jumps(p_jh, p_jv, b, C, H, W, JOINT, CP, HP, WP)
            th = tl.where(jump_h, _times(_difference(beta, 2), zh, inv_nu, JOINT), float("inf"))
            tv = tl.where(jump_v, _times(_difference(beta, 1), zv, inv_nu, JOINT), float("inf"))
            dt = _kth_smallest(th, tv, k)
            zh, total, entries = _move(_difference(beta, 2), zh, dt, inv_nu, inv_kappa, floor, JOINT)
            zv, total_v, entries_v = _move(_difference(beta, 1), zv, dt, inv_nu, inv_kappa, floor, JOINT)
            lag = (dt - (total + total_v) / tl.maximum(entries + entries_v, 1)).to(tl.float32)
            start = beta
            beta = _solve(beta, xs, zh, zv, p_steps, iterations, inv_nu, JOINT)
            zh = _correct(_difference(beta, 2), _difference(start, 2), zh, lag, inv_nu, inv_kappa, floor, JOINT)
            zv = _correct(_difference(beta, 1), _difference(start, 1), zv, lag, inv_nu, inv_kappa, floor, JOINT)
            count, finite = _counts(beta, zh, zv, p_jh, p_jv, b, C, H, W, inv_nu, JOINT)
            if last:
                phase = 2
            else:
                iters += 1
    if phase != 2:
        _store_state(p_beta, p_zh, p_zv, beta, zh, zv, b, C, H, W)
    _store_state(p_out_beta, p_out_zh, p_out_zv, beta, zh, zv, b, C, H, W)
    tl.store(p_iters + b, iters)
    tl.store(p_out_iters + b, iters + (phase == 2).to(tl.int32))


# ------------------------------------------------------------------------------------------ the layout
@triton.jit
def _offsets(C, H, W, CP: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr):
    """For the padded shape (CP, HP, WP): each element's flat offset in the image's (C, H, W) pixels, (C, H, W-1)
    horizontal and (C, H-1, W) vertical edges, and whether it is a pixel and an edge of each direction."""
    c = tl.arange(0, CP)[:, None, None]
    h = tl.arange(0, HP)[None, :, None]
    w = tl.arange(0, WP)[None, None, :]
    pixel = (c < C) & (h < H) & (w < W)
    at = c * (H * W) + h * W + w
    return at, at - c * H - h, at - c * W, pixel, pixel & (w < W - 1), pixel & (h < H - 1)


@triton.jit
def _load_state(p_xs, p_beta, p_zh, p_zv, b, C, H, W, CP: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr):
    """s x, beta, zh, zv of image b over the padded shape; an edge off the image holds PAD in the image's channels,
    0 in the padding channels."""
    at, at_h, at_v, pixel, edge_h, edge_v = _offsets(C, H, W, CP, HP, WP)
    pad = tl.where(tl.arange(0, CP)[:, None, None] < C, PAD, 0.0)
    return (
        tl.load(p_xs + b * C * H * W + at, mask=pixel, other=0.0),
        tl.load(p_beta + b * C * H * W + at, mask=pixel, other=0.0),
        tl.where(edge_h, tl.load(p_zh + b * C * H * (W - 1) + at_h, mask=edge_h, other=0.0), pad),
        tl.where(edge_v, tl.load(p_zv + b * C * (H - 1) * W + at_v, mask=edge_v, other=0.0), pad),
    )


@triton.jit
def _store_state(p_beta, p_zh, p_zv, beta, zh, zv, b, C, H, W):
    at, at_h, at_v, pixel, edge_h, edge_v = _offsets(C, H, W, beta.shape[0], beta.shape[1], beta.shape[2])
    tl.store(p_beta + b * C * H * W + at, beta, mask=pixel)
    tl.store(p_zh + b * C * H * (W - 1) + at_h, zh, mask=edge_h)
    tl.store(p_zv + b * C * (H - 1) * W + at_v, zv, mask=edge_v)


@triton.jit
def _jumps(p_jh, p_jv, b, C, H, W, JOINT: tl.constexpr, CP: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr):
    """The jumps of both directions, in the times' shape: (CP, HP, WP), or (HP, WP) when JOINT (one for all
    channels); False off the image."""
    if JOINT:
        h, w = tl.arange(0, HP)[:, None], tl.arange(0, WP)[None, :]
        jump_h = tl.load(p_jh + b * H * (W - 1) + h * (W - 1) + w, mask=(h < H) & (w < W - 1), other=0) != 0
        jump_v = tl.load(p_jv + b * (H - 1) * W + h * W + w, mask=(h < H - 1) & (w < W), other=0) != 0
    else:
        _, at_h, at_v, _, edge_h, edge_v = _offsets(C, H, W, CP, HP, WP)
        jump_h = tl.load(p_jh + b * C * H * (W - 1) + at_h, mask=edge_h, other=0) != 0
        jump_v = tl.load(p_jv + b * C * (H - 1) * W + at_v, mask=edge_v, other=0) != 0
    return jump_h, jump_v


@triton.jit
def _neighbour(x, by: tl.constexpr, axis: tl.constexpr):
    """x at the element ``by`` further along ``axis`` (1: height, 2: width), wrapping around the padded shape."""
    c = tl.arange(0, x.shape[0])[:, None, None]
    h = tl.arange(0, x.shape[1])[None, :, None]
    w = tl.arange(0, x.shape[2])[None, None, :]
    if axis == 2:
        index = ((w + by) & (x.shape[2] - 1)) + h * 0 + c * 0
    else:
        index = ((h + by) & (x.shape[1] - 1)) + w * 0 + c * 0
    return tl.gather(x, index, axis)


@triton.jit
def _difference(beta, axis: tl.constexpr):
    """(D beta) of the edges along ``axis`` (2: horizontal, 1: vertical): beta at each edge's far pixel minus at its
    near one."""
    return _neighbour(beta, 1, axis) - beta


# ------------------------------------------------------------------------------------------ the solve
@triton.jit
def _weights(z, JOINT: tl.constexpr):
    """1/nu-free edge weights of one direction: 1 on the inactive edges, 0 on the active ones (``path.support``)."""
    if JOINT:
        weight = tl.where(tl.sum(z * z, 0) <= 1.0, 1.0, 0.0)[None, :, :]
    else:
        weight = tl.where(tl.abs(z) <= 1.0, 1.0, 0.0)
    return weight


@triton.jit
def _solve(beta, xs, zh, zv, p_steps, iterations, inv_nu, JOINT: tl.constexpr):
    """``triton_events._solve`` in registers: ``iterations`` Chebyshev iterations of (I + D^T W D / nu) beta = s x
    from ``beta`` (``reference.chebyshev_steps``' (a_k, b_k) in p_steps), W from the support of (zh, zv), in the
    torch backend's form: each edge's flux w (D v) / nu, then each pixel's v + (D^T flux). Returns the last
    iterate."""
    v, previous = beta, beta
    for iteration in range(iterations):
        a, b = tl.load(p_steps + 2 * iteration), tl.load(p_steps + 2 * iteration + 1)
        flux_h = _weights(zh, JOINT) * _difference(v, 2) * inv_nu
        flux_v = _weights(zv, JOINT) * _difference(v, 1) * inv_nu
        out = v + (_neighbour(flux_h, -1, 2) - flux_h) + (_neighbour(flux_v, -1, 1) - flux_v)
        following = v + a * (v - previous) + b * (xs - out)
        previous, v = v, following
    return v


# ------------------------------------------------------------------------------------------ the edges
@triton.jit
def _times(d, z, inv_nu, JOINT: tl.constexpr):
    """Each edge's time to activate at the rates d / nu (inf: it never does or is active), in the jumps' shape."""
    if JOINT:
        rate = d * inv_nu
        time = _time_joint(tl.sum(z * z, 0), tl.sum(z * rate, 0), tl.sum(rate * rate, 0))
    else:
        time = _time_independent(d, z, inv_nu)
    return time


@triton.jit
def _active(z, JOINT: tl.constexpr):
    """The support (|z| > 1, or ||z|| > 1 over the channels when JOINT), in the jumps' shape."""
    if JOINT:
        active = tl.sqrt_rn(tl.sum(z * z, 0)) > 1.0
    else:
        active = tl.abs(z) > 1.0
    return active


@triton.jit
def _counts(beta, zh, zv, p_jh, p_jv, b, C, H, W, inv_nu, JOINT: tl.constexpr):
    """(active jumps, finite waiting times) of the state: what the loop's stop and budget read."""
    jump_h, jump_v = _jumps(p_jh, p_jv, b, C, H, W, JOINT, beta.shape[0], beta.shape[1], beta.shape[2])
    count = tl.sum((jump_h & _active(zh, JOINT)).to(tl.int32)) + tl.sum((jump_v & _active(zv, JOINT)).to(tl.int32))
    finite_h = jump_h & (_times(_difference(beta, 2), zh, inv_nu, JOINT) < float("inf"))
    finite_v = jump_v & (_times(_difference(beta, 1), zv, inv_nu, JOINT) < float("inf"))
    return count, tl.sum(finite_h.to(tl.int32)) + tl.sum(finite_v.to(tl.int32))


@triton.jit
def _move(d, z, dt, inv_nu, inv_kappa, floor, JOINT: tl.constexpr):
    """``triton_events._move`` for one direction's edges in registers: the inactive edges' z += dt * rate; those
    whose time is <= dt enter the support where ||z|| reached 1, scaled to their quasi-steady size. Returns (z, the
    sum of the entering edges' times, their number)."""
    time = _times(d, z, inv_nu, JOINT)  # inf on the active edges
    entering = time <= dt
    if JOINT:
        inactive = tl.sqrt_rn(tl.sum(z * z, 0)) <= 1.0
        moved = z + tl.where(entering, time, dt)[None, :, :] * (d * inv_nu)
        factor = (1.0 + tl.maximum(tl.sqrt_rn(tl.sum(d * d, 0)) * inv_kappa, floor)) / tl.maximum(
            tl.sqrt_rn(tl.sum(moved * moved, 0)), 1e-30)  # fmt: skip
        z = tl.where(inactive[None, :, :], moved * tl.where(entering, factor, 1.0)[None, :, :], z)
    else:
        rate = d * inv_nu
        arrived = z + time * rate
        sign = (arrived > 0).to(tl.float32) - (arrived < 0).to(tl.float32)
        moved = tl.where(entering, sign * (1.0 + tl.maximum(tl.abs(d) * inv_kappa, floor)), z + dt * rate)
        z = tl.where(tl.abs(z) > 1.0, z, moved)
    return z, tl.sum(tl.where(entering, time, 0.0).to(tl.float64)), tl.sum(entering.to(tl.int32))


@triton.jit
def _correct(d, d_start, z, lag, inv_nu, inv_kappa, floor, JOINT: tl.constexpr):
    """The correction after a step's solve (``triton_events._edge_times`` with CORRECT) for one direction's edges,
    d = D beta and d_start = D beta at the step's start: the inactive edges' z gain lag (d - d_start) / nu, then
    every active edge (entered by the correction too) takes its quasi-steady size. Returns z."""
    if JOINT:  # the correction's squares first: an edge settles when the corrected ||z|| exceeds 1
        inactive = (tl.sqrt_rn(tl.sum(z * z, 0)) <= 1.0)[None, :, :]
        z = tl.where(inactive, z + (d - d_start) * lag * inv_nu, z)
        squares = tl.sum(z * z, 0)
        settled = tl.sqrt_rn(squares) > 1.0
        factor = tl.where(settled, (1.0 + tl.maximum(tl.sqrt_rn(tl.sum(d * d, 0)) * inv_kappa, floor))
                          / tl.sqrt_rn(squares), 1.0)  # fmt: skip
        z = z * factor[None, :, :]
    else:
        z = tl.where(tl.abs(z) <= 1.0, z + (d - d_start) * lag * inv_nu, z)
        sign = (z > 0).to(tl.float32) - (z < 0).to(tl.float32)
        z = tl.where(tl.abs(z) > 1.0, sign * (1.0 + tl.maximum(tl.abs(d) * inv_kappa, floor)), z)
    return z


# ------------------------------------------------------------------------------------------ the order statistic
@triton.jit
def _digit_counts(keys_h, keys_v, prefix, shift: tl.constexpr, BITS: tl.constexpr):
    """A histogram of the keys' bits [shift, shift + BITS) over both directions' keys whose bits above them are
    ``prefix``."""
    if shift + BITS >= 32:  # the top bits: every key counts (a shift by the width is undefined)
        mask_h, mask_v = None, None
    else:
        mask_h, mask_v = (keys_h >> (shift + BITS)) == prefix, (keys_v >> (shift + BITS)) == prefix
    counts = tl.histogram(((keys_h >> shift) & ((1 << BITS) - 1)).to(tl.int32), 1 << BITS, mask=mask_h)
    return counts + tl.histogram(((keys_v >> shift) & ((1 << BITS) - 1)).to(tl.int32), 1 << BITS, mask=mask_v)


@triton.jit
def _kth_smallest(wait_h, wait_v, k):
    """The k-th smallest (0-based) waiting time of both directions, k below the number of finite ones, exactly:
    ``triton_events._kth_smallest``'s three histogram passes (log-spaced bins, then two inside the bin that holds
    it), over registers."""
    keys_h = _key32(tl.reshape(wait_h, [wait_h.numel], can_reorder=True))
    keys_v = _key32(tl.reshape(wait_v, [wait_v.numel], can_reorder=True))
    digit, rank = _bin_of(_digit_counts(keys_h, keys_v, 0, 21, 11), k, 2048)
    prefix = digit.to(tl.uint32)
    digit, rank = _bin_of(_digit_counts(keys_h, keys_v, prefix, 10, 11), rank, 2048)
    prefix = prefix * 2048 + digit.to(tl.uint32)
    digit, rank = _bin_of(_digit_counts(keys_h, keys_v, prefix, 0, 10), rank, 1024)
    return _value32(prefix * 1024 + digit.to(tl.uint32))


@triton.jit
def _residual_squares(beta, xs):
    """sum((beta - s x)^2) of one image in float64: what the noise stop compares with its limit."""
    d = (beta - xs).to(tl.float64)
    return tl.sum(d * d)


# ------------------------------------------------------------------------------------------ the host side
def advance_events(state, xs: torch.Tensor, rule, cfg: SolverConfig, joint: bool):
    """``path.Advance`` with the events integrator on this kernel (one launch for the whole batch, images for which
    ``fits_on_chip``): ``state`` moves on its grid of steps; returns the state each image's output is read from."""
    batch, channels, height, width = state.beta.shape
    grid = [t.contiguous() for t in (state.beta, state.zh, state.zv)]  # moved in place, copied back if a copy
    out = [torch.empty_like(t) for t in grid]
    steps = steps_on(cfg, xs.device)
    fresh = (state.beta.flatten(1).eq(0).all(1) & (state.iterations == 0)).to(torch.int8)
    per_step = required_active(cfg.events, rule.jump_count).clamp(min=1).to(torch.int32)
    iters = state.iterations.to(torch.int32)
    out_iters = torch.empty_like(iters)
    shape = {name: triton.next_power_of_2(n) for name, n in (("CP", channels), ("HP", height), ("WP", width))}
    _events_onchip_kernel[(batch,)](
        *(_arg(t) for t in grid), *(_arg(t) for t in out), xs.contiguous(), _arg(rule.jumps_h.to(torch.int8)),
        _arg(rule.jumps_v.to(torch.int8)), steps, fresh, rule.need.to(torch.int32), per_step,
        rule.limit.contiguous(), iters, out_iters, channels, height, width, cfg.max_iter, len(steps), 1.0 / cfg.nu,
        1.0 / cfg.kappa, ACTIVE_FLOOR, JOINT=joint, NOISE=rule.has_noise, **shape,
        num_warps=NUM_WARPS,
    )  # fmt: skip
    for t, g in zip((state.beta, state.zh, state.zv), grid):
        if g is not t:
            t.copy_(g)
    state.iterations.copy_(iters)
    return type(state)(*out, None, out_iters.to(state.iterations.dtype))
