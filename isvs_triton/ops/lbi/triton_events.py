"""The events integrator in Triton (README.md beside this file, "Events integrator"): one program per image runs the
image's whole path to its stop, every step and every Chebyshev iteration of its solves, as
``numba_cpu._events`` does on one CPU thread; ``advance_events`` (the host side, at the end) lays the state out and
launches once.

An image's arrays live in global memory (~170 KB of them for a 32x32x3 image, small enough to stay in L2) in the
numba integrator's layouts, so that every pass is one masked loop over a channel's pixels in BLOCK-sized chunks and a
neighbour is an offset of +-1 or +-W:

- the horizontal edges padded to the pixels' shape, (C, H, W): the padding column holds active edges (|z| = 2) that
  are never jumps, so it weighs 0 in every solve, never enters (its time is inf) and is never counted;
- the solves' two iterates p, q and the edge weights (1/nu on inactive edges, 0 on active ones, at each edge's first
  pixel) with a zero row above and below each channel, (C, H + 2, W): every pixel's four neighbours exist.

A pass that writes an array its next pass reads at other pixels ends at a barrier (``tl.debug_barrier``: the
program's threads, one block). The step's order statistic (the time by which ``count`` more jumps have activated) is
picked by histograms of the waiting times' order-preserving integer keys: one over log-spaced bins, two inside the
bin that holds it: the k-th smallest time exactly, as the torch backend's sort gives it. The solve has a fixed
number of iterations and no inner products (``reference.chebyshev_steps``), so no step needs a reduction beyond the
counts; sums (the mean entry time, the noise stop's residual) are per chunk in float32 and across chunks in float64,
so states agree with the other backends to rounding, not bit for bit.

Cost per event step at 32x32x3 (6,144 edge slots, 3,072 pixels): three passes over the waiting times, one pass over
the pixels per solve iteration (11 at the default tolerance), four passes over the edges. Its GPU speed:
docs/performance.md.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from ...config import SolverConfig, required_active
from .reference import ACTIVE_FLOOR, chebyshev_steps

BLOCK = 256  # pixels or edges per chunk of a pass
NUM_WARPS = 4
PAD_Z = 2.0  # z of the padding column of the horizontal edges: active (|z| > 1, and ||z_e|| > 1 over any channels)


@triton.jit
def _events_kernel(
    p_beta, p_zh, p_zv,  # (B, C, H, W), (B, C, H, W) padded, (B, C, H-1, W): the path state, moved in place
    p_grid_beta, p_grid_zh, p_grid_zv,  # the same shapes, the last unpadded (B, C, H, W-1): the grid state out
    p_xs,  # scale * x (B, C, H, W)
    p_jh, p_jv,  # int8 (B, CJ, H, W) padded with 0, (B, CJ, H-1, W): the jumps (CJ = 1 when JOINT, else C)
    p_wh, p_wv, p_p, p_q,  # (B, C, H+2, W) with zero rows: edge weights and the solves' two iterates
    p_start,  # (B, C, H, W): beta at the step's start
    p_steps,  # (iterations, 2) float32: each solve iteration's coefficients (reference.chebyshev_steps)
    p_th, p_tv,  # (B, CJ, H, W), (B, CJ, H-1, W): each edge's time to activate
    p_wait,  # (B, CJ (2 H W - W)): the jumps' times (inf for the other edges), the order statistic's input
    p_fresh,  # (B,) int8: a path not started (beta is first solved for the empty support)
    p_need, p_per_step,  # (B,) int32: active jumps at which the image stops; jumps activated per grid step
    p_limit,  # (B,) float64: residual sum of squares at which it stops (NOISE only)
    p_iters,  # (B,) int32 in/out: grid steps taken
    p_out_iters,  # (B,) int32 out: steps taken to the output state (one more than the grid's after a last step)
    C, H, W, max_iter, iterations, inv_nu, inv_kappa, floor,
    JOINT: tl.constexpr, NOISE: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """``numba_cpu._events`` for image ``program_id(0)``: grid steps until its rule stops it, or until its target lies
    within one step; that shorter last step moves (beta, zh, zv) on from the grid state, which is written to the grid
    arrays first. Images already stopped do not move."""
    b = tl.program_id(0).to(tl.int64)
    size, halo = H * W, (H + 2) * W
    CJ = 1 if JOINT else C
    n_v = size - W  # vertical edges per channel
    n_wait = CJ * (size + n_v)
    p_beta += b * C * size
    p_zh += b * C * size
    p_zv += b * C * n_v
    p_grid_beta += b * C * size
    p_grid_zh += b * C * (size - H)
    p_grid_zv += b * C * n_v
    p_xs += b * C * size
    p_jh += b * CJ * size
    p_jv += b * CJ * n_v
    p_wh += b * C * halo
    p_wv += b * C * halo
    p_p += b * C * halo
    p_q += b * C * halo
    p_start += b * C * size
    p_th += b * CJ * size
    p_tv += b * CJ * n_v
    p_wait += b * n_wait

    _weights(p_zh, p_wh, size, 1, C, H, W, inv_nu, JOINT, BLOCK)
    _weights(p_zv, p_wv, n_v, W, C, H, W, inv_nu, JOINT, BLOCK)
    if tl.load(p_fresh + b) != 0:  # a path not started: beta solved for the empty support, from s x
        _copy(p_xs, p_beta, C * size, BLOCK)
        tl.debug_barrier()
        _solve(p_beta, p_xs, p_wh, p_wv, p_p, p_q, p_steps, iterations, C, H, W, BLOCK)
    tl.debug_barrier()
    count, finite = _edge_times(p_beta, p_start, p_zh, p_wh, p_jh, p_th, p_wait, 0.0, size, 1, C, H, W, inv_nu,
                                inv_kappa, floor, False, JOINT, BLOCK)  # fmt: skip
    count_v, finite_v = _edge_times(p_beta, p_start, p_zv, p_wv, p_jv, p_tv, p_wait + CJ * size, 0.0, n_v, W, C, H,
                                    W, inv_nu, inv_kappa, floor, False, JOINT, BLOCK)  # fmt: skip
    count += count_v
    finite += finite_v
    tl.debug_barrier()  # the waiting times, read by every thread's share of the selection
    iters = tl.load(p_iters + b)
    need, per_step = tl.load(p_need + b), tl.load(p_per_step + b)
    limit = tl.load(p_limit + b) if NOISE else -1.0
    phase = 0  # 0: stepping on the grid, 1: stopped on it, 2: a last step taken from it
    while phase == 0:
        if NOISE:
            noise = _residual_squares(p_beta, p_xs, C * size, BLOCK) <= limit
        else:
            noise = False
        done, iters, last, k = _decide(count, finite, iters, need, per_step, max_iter, noise)
        if done:
            phase = 1
        else:
            if last:  # the target lies within this step: the grid state is written first
                _write_grid(p_beta, p_zh, p_zv, p_grid_beta, p_grid_zh, p_grid_zv, C, H, W, BLOCK)
                tl.debug_barrier()
            count, finite = _step(
                p_beta, p_zh, p_zv, p_xs, p_jh, p_jv, p_wh, p_wv, p_p, p_q, p_start, p_steps, p_th, p_tv, p_wait, k,
                C, H, W, iterations, inv_nu, inv_kappa, floor, JOINT, BLOCK,
            )  # fmt: skip
            if last:
                phase = 2
            else:
                iters += 1
    if phase != 2:
        _write_grid(p_beta, p_zh, p_zv, p_grid_beta, p_grid_zh, p_grid_zv, C, H, W, BLOCK)
    tl.store(p_iters + b, iters)
    tl.store(p_out_iters + b, iters + (phase == 2).to(tl.int32))


@triton.jit
def _decide(count, finite, iters, need, per_step, max_iter, noise):
    """An image's rule before its next grid step (both per-image kernels' loop): (stop here, the grid steps taken
    — the budget when no jump can activate any more —, whether the step is the last, shorter one that reaches the
    target, the 0-based rank of its time among the waiting times). ``noise``: the noise stop has been reached."""
    remaining = need - count
    stop = (iters >= max_iter) | (remaining <= 0) | noise
    spent = ~stop & (finite == 0)  # no jump can activate any more: the budget is spent
    last = remaining <= per_step
    return (
        stop | spent,
        tl.where(spent, max_iter, iters),
        last,
        tl.minimum(tl.where(last, remaining, per_step), finite) - 1,
    )


@triton.jit
def _step(p_beta, p_zh, p_zv, p_xs, p_jh, p_jv, p_wh, p_wv, p_p, p_q, p_start, p_steps, p_th, p_tv, p_wait, k,
          C, H, W, iterations, inv_nu, inv_kappa, floor,
          JOINT: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """``reference.event_step`` on one image, in place, from the times the last pass left in th, tv and wait: dt is
    the k-th smallest waiting time (0-based); z moves by dt; beta is solved for the new support; z is corrected for
    the change of the rates since the step's mean entry time and the active edges settle. Returns the next step's
    (active jumps, finite waiting times), from the times it leaves in th, tv and wait."""
    size = H * W
    n_v = size - W
    CJ = 1 if JOINT else C
    dt = _kth_smallest(p_wait, CJ * (size + n_v), k, BLOCK)
    total, entries = _move(p_beta, p_zh, p_th, p_wh, dt, size, 1, C, H, W, inv_nu, inv_kappa, floor, JOINT, BLOCK)
    total_v, entries_v = _move(p_beta, p_zv, p_tv, p_wv, dt, n_v, W, C, H, W, inv_nu, inv_kappa, floor, JOINT, BLOCK)
    lag = (dt - (total + total_v) / tl.maximum(entries + entries_v, 1)).to(tl.float32)
    _copy(p_beta, p_start, C * size, BLOCK)
    tl.debug_barrier()  # the weights of the entering edges, read at their neighbours by the solve
    _solve(p_beta, p_xs, p_wh, p_wv, p_p, p_q, p_steps, iterations, C, H, W, BLOCK)
    tl.debug_barrier()  # beta, read at both ends of every edge
    count, finite = _edge_times(p_beta, p_start, p_zh, p_wh, p_jh, p_th, p_wait, lag, size, 1, C, H, W, inv_nu,
                                inv_kappa, floor, True, JOINT, BLOCK)  # fmt: skip
    count_v, finite_v = _edge_times(p_beta, p_start, p_zv, p_wv, p_jv, p_tv, p_wait + CJ * size, lag, n_v, W, C, H,
                                    W, inv_nu, inv_kappa, floor, True, JOINT, BLOCK)  # fmt: skip
    tl.debug_barrier()  # the weights, and the times the next selection counts
    return count + count_v, finite + finite_v


# ------------------------------------------------------------------------------------------ the solve
@triton.jit
def _apply(p_v, p_wh, p_wv, at, mask, W):
    """(I + D^T W D / nu) v at the flat indices ``at`` of one channel in the zero-row layout (weights already divided
    by nu): v + each pixel's weighted differences to its four neighbours. Returns (v, the product) there."""
    v = tl.load(p_v + at, mask=mask, other=0.0)
    out = v + tl.load(p_wh + at, mask=mask, other=0.0) * (v - tl.load(p_v + at + 1, mask=mask, other=0.0))
    out += tl.load(p_wh + at - 1, mask=mask, other=0.0) * (v - tl.load(p_v + at - 1, mask=mask, other=0.0))
    out += tl.load(p_wv + at, mask=mask, other=0.0) * (v - tl.load(p_v + at + W, mask=mask, other=0.0))
    out += tl.load(p_wv + at - W, mask=mask, other=0.0) * (v - tl.load(p_v + at - W, mask=mask, other=0.0))
    return v, out


@triton.jit
def _solve(p_beta, p_xs, p_wh, p_wv, p_p, p_q, p_steps, iterations, C, H, W, BLOCK: tl.constexpr):
    """``reference.solve_beta`` on one image, in place: ``iterations`` Chebyshev iterations of (I + D^T W D / nu)
    beta = s x from the current beta, in the form of ``reference.chebyshev_steps`` (whose (a_k, b_k) p_steps holds):
    one pass each, the next iterate overwriting the previous (q) while the current (p) is read at its neighbours. No
    inner products: no reduction, and a fixed cost."""
    size, halo = H * W, (H + 2) * W
    _copy_to_zero_rows(p_beta, p_p, C, H, W, BLOCK)  # both iterates start at beta (a_0 = 0)
    _copy_to_zero_rows(p_beta, p_q, C, H, W, BLOCK)
    tl.debug_barrier()
    for iteration in range(iterations):
        a, b = tl.load(p_steps + 2 * iteration), tl.load(p_steps + 2 * iteration + 1)
        for c in range(C):
            for s in range(0, size, BLOCK):
                k = s + tl.arange(0, BLOCK)
                m = k < size
                v, out = _apply(p_p + c * halo + W, p_wh + c * halo + W, p_wv + c * halo + W, k, m, W)
                at = p_q + c * halo + W + k
                following = v + a * (v - tl.load(at, mask=m)) + b * (tl.load(p_xs + c * size + k, mask=m) - out)
                tl.store(at, following, mask=m)
        tl.debug_barrier()  # the new iterate, read at its neighbours by the next pass
        p_p, p_q = p_q, p_p
    for c in range(C):
        _copy(p_p + c * halo + W, p_beta + c * size, size, BLOCK)


# ------------------------------------------------------------------------------------------ the edges
# One direction's edges: edge k of a channel joins pixel k to pixel k + offset (1: horizontal, W: vertical), for k
# < n (H W: the padded horizontal edges; (H - 1) W: the vertical ones); z, the jumps and the times are n per channel,
# the weights sit at the edge's first pixel in the zero-row layout.
# ------------------------------------------------------------------------------------------ the edges
# One direction's edges: edge k of a channel joins pixel k to pixel k + offset (1: horizontal, W: vertical), for k <
# H W - offset; z, the jumps and the times of a channel are ``stride`` apart (H W: the padded horizontal edges,
# (H - 1) W: the vertical ones); an edge's weight sits at its first pixel in the zero-row layout.
@triton.jit
def _weights(p_z, p_w, stride, offset, C, H, W, inv_nu, JOINT: tl.constexpr, BLOCK: tl.constexpr):
    """w = 1/nu on the inactive edges of one direction, 0 on the active ones."""
    halo = (H + 2) * W
    for s in range(0, H * W - offset, BLOCK):
        k = s + tl.arange(0, BLOCK)
        m = k < H * W - offset
        if JOINT:
            squares = tl.zeros([BLOCK], dtype=tl.float32)
            for c in range(C):
                z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                squares += z * z
            w = tl.where(squares <= 1.0, inv_nu, 0.0)
            for c in range(C):
                tl.store(p_w + c * halo + W + k, w, mask=m)
        else:
            for c in range(C):
                z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                tl.store(p_w + c * halo + W + k, tl.where(tl.abs(z) <= 1.0, inv_nu, 0.0), mask=m)


@triton.jit
def _difference(p_beta, k, offset, m):
    """(D beta) at the edges k of one channel: beta at the far pixel minus beta at the near one."""
    return tl.load(p_beta + k + offset, mask=m, other=0.0) - tl.load(p_beta + k, mask=m, other=0.0)


@triton.jit
def _time_independent(d, z, inv_nu):
    """An edge's time until |z| reaches 1 at the rate d / nu: (1 - sign(d) z) / |d / nu|; inf when it is active or
    d = 0."""
    sign = (d > 0).to(tl.float32) - (d < 0).to(tl.float32)
    rate = tl.abs(d) * inv_nu
    return tl.where((tl.abs(z) > 1.0) | (rate == 0.0), float("inf"), (1.0 - sign * z) / rate)


@triton.jit
def _time_joint(squares, zr, rr):
    """An edge's time until ||z + t rate|| reaches 1, from ||z||^2, z . rate and ||rate||^2: the positive root of
    rr t^2 + 2 zr t + squares - 1 = 0, written without cancellation; inf when it is active or rate = 0."""
    gap = 1.0 - squares
    root = tl.sqrt_rn(zr * zr + rr * gap)
    time = tl.where(zr >= 0.0, gap / (zr + root), (root - zr) / rr)
    return tl.where((tl.sqrt_rn(squares) > 1.0) | (rr <= 0.0), float("inf"), time)


@triton.jit
def _record(time, active, jump, p_t, p_wait, k, m):
    """Store one chunk's times, and the jumps' among them as waiting times (inf for the other edges); returns (active
    jumps, finite waiting times) of the chunk."""
    wait = tl.where(jump, time, float("inf"))
    tl.store(p_t + k, time, mask=m)
    tl.store(p_wait + k, wait, mask=m)
    return tl.sum((jump & active).to(tl.int32)), tl.sum((m & (wait < float("inf"))).to(tl.int32))


@triton.jit
def _edge_times(p_beta, p_start, p_z, p_w, p_jump, p_t, p_wait, lag, stride, offset, C, H, W, inv_nu, inv_kappa,
                floor, CORRECT: tl.constexpr, JOINT: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """For one edge direction: each inactive edge's time to activate at the rates D beta / nu into t (inf: never or
    active), and into ``wait`` where the edge is a jump. With CORRECT (after the solve that ends a step) z is first
    corrected and settled, as ``numba_cpu._correct``: the inactive edges' z gain lag (D beta - D start) / nu, then
    every active edge (entered by the correction too) takes its quasi-steady size, weight 0. Returns (active jumps,
    finite waiting times)."""
    size, halo = H * W, (H + 2) * W
    count = tl.zeros([], dtype=tl.int32)
    finite = tl.zeros([], dtype=tl.int32)
    for s in range(0, size - offset, BLOCK):
        k = s + tl.arange(0, BLOCK)
        m = k < size - offset
        if JOINT:
            inactive = m
            settled = m
            factor = tl.zeros([BLOCK], dtype=tl.float32) + 1.0
            if CORRECT:  # the correction's squares first: an edge settles when the corrected ||z|| exceeds 1
                before = tl.zeros([BLOCK], dtype=tl.float32)
                for c in range(C):
                    z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                    before += z * z
                inactive = tl.sqrt_rn(before) <= 1.0
                squares = tl.zeros([BLOCK], dtype=tl.float32)
                dd = tl.zeros([BLOCK], dtype=tl.float32)
                for c in range(C):
                    d = _difference(p_beta + c * size, k, offset, m)
                    change = (d - _difference(p_start + c * size, k, offset, m)) * lag * inv_nu
                    z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                    z = tl.where(inactive, z + change, z)
                    squares += z * z
                    dd += d * d
                settled = tl.sqrt_rn(squares) > 1.0
                factor = tl.where(settled, (1.0 + tl.maximum(tl.sqrt_rn(dd) * inv_kappa, floor)) / tl.sqrt_rn(squares),
                                  1.0)  # fmt: skip
            after = tl.zeros([BLOCK], dtype=tl.float32)
            zr = tl.zeros([BLOCK], dtype=tl.float32)
            rr = tl.zeros([BLOCK], dtype=tl.float32)
            for c in range(C):
                d = _difference(p_beta + c * size, k, offset, m)
                z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                if CORRECT:  # recomputed, not reloaded: the same operations, so the same values
                    change = (d - _difference(p_start + c * size, k, offset, m)) * lag * inv_nu
                    z = tl.where(inactive, z + change, z) * factor
                    tl.store(p_z + c * stride + k, z, mask=m)
                    tl.store(p_w + c * halo + W + k, 0.0, mask=m & settled)
                rate = d * inv_nu
                after += z * z
                zr += z * rate
                rr += rate * rate
            jump = tl.load(p_jump + k, mask=m, other=0) != 0
            chunk_count, chunk_finite = _record(_time_joint(after, zr, rr), tl.sqrt_rn(after) > 1.0, jump, p_t,
                                                p_wait, k, m)  # fmt: skip
            count += chunk_count
            finite += chunk_finite
        else:
            for c in range(C):
                d = _difference(p_beta + c * size, k, offset, m)
                z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                if CORRECT:
                    change = (d - _difference(p_start + c * size, k, offset, m)) * lag * inv_nu
                    z = tl.where(tl.abs(z) <= 1.0, z + change, z)
                    settled = tl.abs(z) > 1.0
                    sign = (z > 0).to(tl.float32) - (z < 0).to(tl.float32)
                    z = tl.where(settled, sign * (1.0 + tl.maximum(tl.abs(d) * inv_kappa, floor)), z)
                    tl.store(p_z + c * stride + k, z, mask=m)
                    tl.store(p_w + c * halo + W + k, 0.0, mask=m & settled)
                jump = tl.load(p_jump + c * stride + k, mask=m, other=0) != 0
                chunk_count, chunk_finite = _record(_time_independent(d, z, inv_nu), tl.abs(z) > 1.0, jump,
                                                    p_t + c * stride, p_wait + c * stride, k, m)  # fmt: skip
                count += chunk_count
                finite += chunk_finite
    return count, finite


@triton.jit
def _move(p_beta, p_z, p_t, p_w, dt, stride, offset, C, H, W, inv_nu, inv_kappa, floor, JOINT: tl.constexpr,
          BLOCK: tl.constexpr):  # fmt: skip
    """For one edge direction, as ``numba_cpu._move``: the inactive edges' z += dt * rate; those whose time is <= dt
    enter the support where |z| reached 1, scaled to their quasi-steady size, weight 0. Returns (the sum of the
    entering edges' times, their number)."""
    size, halo = H * W, (H + 2) * W
    total = tl.zeros([], dtype=tl.float64)
    entries = tl.zeros([], dtype=tl.int32)
    for s in range(0, size - offset, BLOCK):
        k = s + tl.arange(0, BLOCK)
        m = k < size - offset
        if JOINT:
            squares = tl.zeros([BLOCK], dtype=tl.float32)
            for c in range(C):
                z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                squares += z * z
            inactive = m & (tl.sqrt_rn(squares) <= 1.0)
            time = tl.load(p_t + k, mask=m, other=float("inf"))
            entering = inactive & (time <= dt)
            span = tl.where(entering, time, dt)
            moved = tl.zeros([BLOCK], dtype=tl.float32)
            dd = tl.zeros([BLOCK], dtype=tl.float32)
            for c in range(C):
                d = _difference(p_beta + c * size, k, offset, m)
                v = tl.load(p_z + c * stride + k, mask=m, other=0.0) + span * (d * inv_nu)
                moved += v * v
                dd += d * d
            factor = (1.0 + tl.maximum(tl.sqrt_rn(dd) * inv_kappa, floor)) / tl.maximum(tl.sqrt_rn(moved), 1e-30)
            factor = tl.where(entering, factor, 1.0)
            for c in range(C):  # recomputed: the same operations, so the same values
                d = _difference(p_beta + c * size, k, offset, m)
                v = tl.load(p_z + c * stride + k, mask=m, other=0.0) + span * (d * inv_nu)
                tl.store(p_z + c * stride + k, v * factor, mask=inactive)
                tl.store(p_w + c * halo + W + k, 0.0, mask=entering)
            total += tl.sum(tl.where(entering, time, 0.0)).to(tl.float64)
            entries += tl.sum(entering.to(tl.int32))
        else:
            for c in range(C):
                d = _difference(p_beta + c * size, k, offset, m)
                z = tl.load(p_z + c * stride + k, mask=m, other=0.0)
                time = tl.load(p_t + c * stride + k, mask=m, other=float("inf"))
                rate = d * inv_nu
                entering = m & (time <= dt)  # active edges have time inf
                arrived = z + time * rate
                sign = (arrived > 0).to(tl.float32) - (arrived < 0).to(tl.float32)
                moved = tl.where(entering, sign * (1.0 + tl.maximum(tl.abs(d) * inv_kappa, floor)), z + dt * rate)
                tl.store(p_z + c * stride + k, tl.where(tl.abs(z) > 1.0, z, moved), mask=m)
                tl.store(p_w + c * halo + W + k, 0.0, mask=entering)
                total += tl.sum(tl.where(entering, time, 0.0)).to(tl.float64)
                entries += tl.sum(entering.to(tl.int32))
    return total, entries


# ------------------------------------------------------------------------------------------ the order statistic
@triton.jit
def _key(value):
    """A float's order-preserving unsigned integer key, in [0, 2^32) as int64 (``_key32`` widened), for kernels
    that compare it with prefixes held as int64."""
    return _key32(value).to(tl.int64)


@triton.jit
def _value(key):
    """The float whose ``_key`` is ``key``."""
    return _value32(key.to(tl.uint32))


@triton.jit
def _key32(value):
    """A float's order-preserving key as uint32: its bits with the sign flipped, all bits flipped for negative
    floats (kernels whose keys live in registers keep it in 32 bits: an int64 key takes two registers a value)."""
    bits = value.to(tl.uint32, bitcast=True)
    return bits ^ ((0 - (bits >> 31)) | 0x80000000)


@triton.jit
def _value32(key):
    """The float whose ``_key32`` is ``key``."""
    return (key ^ (((key >> 31) - 1) | 0x80000000)).to(tl.float32, bitcast=True)


@triton.jit
def _digit_counts(p_values, n, prefix, shift, BITS: tl.constexpr, BLOCK: tl.constexpr):
    """A histogram of the keys' bits [shift, shift + BITS) over the values[:n] whose bits above them are ``prefix``."""
    counts = tl.zeros([1 << BITS], dtype=tl.int32)
    for s in range(0, n, BLOCK):
        i = s + tl.arange(0, BLOCK)
        m = i < n
        key = _key(tl.load(p_values + i, mask=m, other=float("inf")))
        digit = ((key >> shift) & ((1 << BITS) - 1)).to(tl.int32)
        counts += tl.histogram(digit, 1 << BITS, mask=m & ((key >> (shift + BITS)) == prefix))
    return counts


@triton.jit
def _bin_of(counts, rank, BINS: tl.constexpr):
    """The bin that holds the rank-th (0-based) counted value, and its rank inside the bin."""
    digit = tl.sum((tl.cumsum(counts, 0) <= rank).to(tl.int32))
    return digit, rank - tl.sum(tl.where(tl.arange(0, BINS) < digit, counts, 0))


@triton.jit
def _kth_smallest(p_values, n, k, BLOCK: tl.constexpr):
    """The k-th smallest (0-based) of values[:n], k below the number of finite values, exactly: one histogram pass
    over the keys' top 11 bits (sign, exponent and two mantissa bits: log-spaced bins, four per octave) finds the
    bin that holds it; two more count only that bin's values, by their next 11 and last 10 bits, which fixes the
    key and so the value. Three passes over the times, whatever their spread."""
    digit, rank = _bin_of(_digit_counts(p_values, n, 0, 21, 11, BLOCK), k, 2048)
    prefix = digit.to(tl.int64)
    digit, rank = _bin_of(_digit_counts(p_values, n, prefix, 10, 11, BLOCK), rank, 2048)
    prefix = prefix * 2048 + digit
    digit, rank = _bin_of(_digit_counts(p_values, n, prefix, 0, 10, BLOCK), rank, 1024)
    return _value(prefix * 1024 + digit)


# ------------------------------------------------------------------------------------------ copies and sums
@triton.jit
def _copy(p_src, p_dst, n, BLOCK: tl.constexpr):
    for s in range(0, n, BLOCK):
        i = s + tl.arange(0, BLOCK)
        tl.store(p_dst + i, tl.load(p_src + i, mask=i < n), mask=i < n)


@triton.jit
def _copy_to_zero_rows(p_src, p_dst, C, H, W, BLOCK: tl.constexpr):
    """(C, H, W) into the zero-row layout (C, H + 2, W); the zero rows are left as they are."""
    for c in range(C):
        _copy(p_src + c * H * W, p_dst + c * (H + 2) * W + W, H * W, BLOCK)


@triton.jit
def _write_grid(p_beta, p_zh, p_zv, p_grid_beta, p_grid_zh, p_grid_zv, C, H, W, BLOCK: tl.constexpr):
    """The state to the grid arrays, the horizontal edges without their padding column."""
    _copy(p_beta, p_grid_beta, C * H * W, BLOCK)
    _copy(p_zv, p_grid_zv, C * (H - 1) * W, BLOCK)
    for s in range(0, C * H * W, BLOCK):
        i = s + tl.arange(0, BLOCK)
        m = (i < C * H * W) & (i % W < W - 1)
        tl.store(p_grid_zh + i - i // W, tl.load(p_zh + i, mask=m), mask=m)  # row i // W of W - 1 edges


@triton.jit
def _residual_squares(p_beta, p_xs, n, BLOCK: tl.constexpr):
    """sum((beta - s x)^2) of one image in float64: what the noise stop compares with its limit."""
    total = tl.zeros([], dtype=tl.float64)
    for s in range(0, n, BLOCK):
        i = s + tl.arange(0, BLOCK)
        d = (tl.load(p_beta + i, mask=i < n, other=0.0) - tl.load(p_xs + i, mask=i < n, other=0.0)).to(tl.float64)
        total += tl.sum(d * d)
    return total


# ------------------------------------------------------------------------------------------ the host side
def _arg(t: torch.Tensor) -> torch.Tensor:
    # a tensor with no elements (W = 1 has no horizontal edges in the explicit kernels, H = 1 no vertical ones) is
    # never read or written, but needs a valid pointer (triton_fused.py launches with it too)
    return t if t.numel() else t.new_empty(1)


@functools.lru_cache(maxsize=32)
def steps_on(cfg: SolverConfig, device: torch.device) -> torch.Tensor:
    """``reference.chebyshev_steps`` (iterations, 2) float32 on ``device``, made once per solver and device: a copy
    from the host inside every call would be a synchronisation, which a CUDA graph cannot capture."""
    return torch.tensor(chebyshev_steps(cfg), dtype=torch.float32, device=device)


def advance_events(state, xs: torch.Tensor, rule, cfg: SolverConfig, joint: bool):
    """``path.Advance`` with the events integrator on the kernel (``torch_path.advance_events``, one launch for the
    whole batch): ``state`` moves on its grid of steps; returns the state each image's output is read from."""
    batch, channels, height, width = state.beta.shape
    beta = state.beta.contiguous().clone()  # becomes the output state
    zh = F.pad(state.zh, (0, 1), value=PAD_Z).contiguous()
    zv = state.zv.contiguous().clone()
    jh = F.pad(rule.jumps_h.to(torch.int8), (0, 1)).contiguous()
    jv = rule.jumps_v.to(torch.int8).contiguous()
    halo = (batch, channels, height + 2, width)
    wh, wv, p, q = (beta.new_zeros(halo) for _ in range(4))
    start = torch.empty_like(beta)
    steps = steps_on(cfg, beta.device)
    th, tv = torch.empty(jh.shape, device=beta.device), torch.empty(jv.shape, device=beta.device)
    wait = torch.full((batch, jh[0].numel() + jv[0].numel()), torch.inf, device=beta.device)
    grid = [t.contiguous() for t in (state.beta, state.zh, state.zv)]
    fresh = (state.beta.flatten(1).eq(0).all(1) & (state.iterations == 0)).to(torch.int8)
    per_step = required_active(cfg.events, rule.jump_count).clamp(min=1).to(torch.int32)
    iters = state.iterations.to(torch.int32)
    out_iters = torch.empty_like(iters)
    noise = rule.has_noise
    _events_kernel[(batch,)](
        beta, zh, _arg(zv), grid[0], _arg(grid[1]), _arg(grid[2]), xs.contiguous(), jh, _arg(jv), wh, wv, p,
        q, start, steps, th, _arg(tv), wait, fresh, rule.need.to(torch.int32), per_step, rule.limit.contiguous(),
        iters, out_iters, channels, height, width, cfg.max_iter, len(steps), 1.0 / cfg.nu, 1.0 / cfg.kappa,
        ACTIVE_FLOOR, JOINT=joint, NOISE=noise, BLOCK=BLOCK, num_warps=NUM_WARPS,
    )  # fmt: skip
    for t, g in zip((state.beta, state.zh, state.zv), grid):
        if g is not t:
            t.copy_(g)
    state.iterations.copy_(iters)
    return type(state)(beta, zh[..., : width - 1].contiguous(), zv, None, out_iters.to(state.iterations.dtype))
