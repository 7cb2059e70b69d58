"""The events integrator in Triton for images larger than one program should carry (README.md beside this file,
"Events integrator"): every pass of a step runs over (image, block of pixels), so a batch of a few large images fills
the GPU, where ``triton_events.py`` gives each image one program for its whole path.

A step is ``torch_path._event_step`` with its passes fused, in the torch backend's layouts (no padding):

1. ``_times_kernel``: each inactive edge's time to activate at the rates D beta / nu, and the jumps' among them as
   the waiting times (inf for the other edges);
2. the step's time: the k-th smallest waiting time per image, exactly (what the torch backend's sort picks), by three
   histogram passes over the waiting times' integer keys, each summed over blocks by integer atomics, and a pick per
   image after each (``kth_smallest``);
3. ``_move_kernel``: z moves to it, the edges whose time has come entering at their quasi-steady size; the new
   support's weights for the solve; each block's sum and number of entry times (summed per image after it, in a
   fixed order: no atomics, so a batch's result does not depend on the order blocks run in);
4. ``_chebyshev_kernel``: beta solved for the new support, blocked in time: each program reads a tile with a halo
   as wide as the iterations it runs (8, the default's all) and iterates in registers, so the solve reads the state
   once instead of once per iteration;
5. ``_correct_kernel``: z corrected for the change of the rates since the step's mean entry time, the active edges
   settled.

The steps' control flow (which images still run, the shorter last step, the grid and output states, the noise stop,
the budget) is ``torch_path.advance_events``', which reads each image's count back once per step. Bytes and passes
per step, and when the dispatch takes this path: docs/performance.md.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ...config import SolverConfig
from . import torch_path
from .path import PathState, StopRule, support
from .reference import ACTIVE_FLOOR
from .triton_events import _arg, _bin_of, _difference, _key, _time_independent, _time_joint, _value, steps_on

BLOCK = 256  # pixels per program
NUM_WARPS = 4
# the solve, blocked in time: a TILE x TILE tile per program, read with a halo of HALO pixels (SPAN = TILE + 2 HALO,
# a power of two) so that HALO iterations run per launch: the default's 8 in one
TILE, HALO = 48, 8
SPAN = TILE + 2 * HALO
SOLVE_WARPS = 16


@triton.jit
def _edges(p, H, W, VERTICAL: tl.constexpr):
    """The edges that start at the pixels ``p`` in one direction: (exists, its index within a channel, the far
    pixel's offset, edges per channel) in the torch layouts (H, W - 1) and (H - 1, W)."""
    i = p // W
    if VERTICAL:
        exists, index, offset, count = (p < H * W) & (i < H - 1), p, W, (H - 1) * W
    else:
        exists, index, offset, count = (p < H * W) & (p % W < W - 1), p - i, 1, H * (W - 1)
    return exists, index, offset, count


@triton.jit
def _times(p_beta, p_z, p_jump, p_t, p_wait, p, C, H, W, inv_nu, JOINT: tl.constexpr, VERTICAL: tl.constexpr):
    """One direction's edges at pixels ``p`` of one image: times into t, the jumps' into wait (inf otherwise)."""
    m, e, offset, n = _edges(p, H, W, VERTICAL)
    if JOINT:
        squares = tl.zeros(p.shape, dtype=tl.float32)
        zr = tl.zeros(p.shape, dtype=tl.float32)
        rr = tl.zeros(p.shape, dtype=tl.float32)
        for c in range(C):
            d = _difference(p_beta + c * H * W, p, offset, m)
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            rate = d * inv_nu
            squares += z * z
            zr += z * rate
            rr += rate * rate
        time = _time_joint(squares, zr, rr)
        jump = tl.load(p_jump + e, mask=m, other=0) != 0
        tl.store(p_t + e, time, mask=m)
        tl.store(p_wait + e, tl.where(jump, time, float("inf")), mask=m)
    else:
        for c in range(C):
            d = _difference(p_beta + c * H * W, p, offset, m)
            time = _time_independent(d, tl.load(p_z + c * n + e, mask=m, other=0.0), inv_nu)
            jump = tl.load(p_jump + c * n + e, mask=m, other=0) != 0
            tl.store(p_t + c * n + e, time, mask=m)
            tl.store(p_wait + c * n + e, tl.where(jump, time, float("inf")), mask=m)


@triton.jit
def _times_kernel(p_beta, p_zh, p_zv, p_jh, p_jv, p_th, p_tv, p_wait, C, H, W, inv_nu, JOINT: tl.constexpr,
                  BLOCK: tl.constexpr):  # fmt: skip
    """Pass 1 over block ``program_id(1)`` of image ``program_id(0)``: wait holds the horizontal jumps' times, then
    the vertical ones' (each channel's in turn), as ``torch_path._event_step`` concatenates them."""
    b = tl.program_id(0).to(tl.int64)
    p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    CJ = 1 if JOINT else C
    nh, nv = H * (W - 1), (H - 1) * W
    p_beta += b * C * H * W
    p_wait += b * CJ * (nh + nv)
    _times(p_beta, p_zh + b * C * nh, p_jh + b * CJ * nh, p_th + b * CJ * nh, p_wait, p, C, H, W, inv_nu, JOINT,
           False)  # fmt: skip
    _times(p_beta, p_zv + b * C * nv, p_jv + b * CJ * nv, p_tv + b * CJ * nv, p_wait + CJ * nh, p, C, H, W, inv_nu,
           JOINT, True)  # fmt: skip


@triton.jit
def _settled(z, size_z, size_d, inv_kappa, floor):
    """z at its quasi-steady size: its direction z / |z| times 1 + max(|D beta| / kappa, floor) (``reference.settle``;
    ``size_z``, ``size_d``: the norms over the channels that share the edge)."""
    return z / tl.maximum(size_z, 1e-30) * (1.0 + tl.maximum(size_d * inv_kappa, floor))


@triton.jit
def _move(p_beta, p_z, p_t, p_new, p_w, dt, p, C, H, W, inv_nu, inv_kappa, floor, JOINT: tl.constexpr,
          VERTICAL: tl.constexpr):  # fmt: skip
    """One direction's edges at pixels ``p``: z moved to the step's time ``dt`` into new, the weights of the new
    support into w (1 inactive, 0 active). Returns the entering edges' (sum of times, number) over the block."""
    m, e, offset, n = _edges(p, H, W, VERTICAL)
    if JOINT:
        squares = tl.zeros(p.shape, dtype=tl.float32)
        for c in range(C):
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            squares += z * z
        active = squares > 1.0
        time = tl.load(p_t + e, mask=m, other=float("inf"))
        entering = m & ~active & (time <= dt)
        span = tl.minimum(time, dt)
        arrived = tl.zeros(p.shape, dtype=tl.float32)
        dd = tl.zeros(p.shape, dtype=tl.float32)
        for c in range(C):
            d = _difference(p_beta + c * H * W, p, offset, m)
            v = tl.load(p_z + c * n + e, mask=m, other=0.0) + span * (d * inv_nu)
            arrived += v * v
            dd += d * d
        after = tl.zeros(p.shape, dtype=tl.float32)
        for c in range(C):  # recomputed: the same operations, so the same values
            d = _difference(p_beta + c * H * W, p, offset, m)
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            v = _settled(z + span * (d * inv_nu), tl.sqrt_rn(arrived), tl.sqrt_rn(dd), inv_kappa, floor)
            moved = tl.where(entering, v, tl.where(active, z, z + dt * (d * inv_nu)))
            tl.store(p_new + c * n + e, moved, mask=m)
            after += moved * moved
        tl.store(p_w + e, tl.where(after > 1.0, 0.0, 1.0), mask=m)
        total = tl.sum(tl.where(entering, time, 0.0))
        entries = tl.sum(entering.to(tl.int32))
    else:
        total = tl.zeros([], dtype=tl.float32)
        entries = tl.zeros([], dtype=tl.int32)
        for c in range(C):
            d = _difference(p_beta + c * H * W, p, offset, m)
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            time = tl.load(p_t + c * n + e, mask=m, other=float("inf"))
            active = tl.abs(z) > 1.0
            entering = m & ~active & (time <= dt)
            v = z + tl.minimum(time, dt) * (d * inv_nu)
            v = _settled(v, tl.abs(v), tl.abs(d), inv_kappa, floor)
            moved = tl.where(entering, v, tl.where(active, z, z + dt * (d * inv_nu)))
            tl.store(p_new + c * n + e, moved, mask=m)
            tl.store(p_w + c * n + e, tl.where(tl.abs(moved) > 1.0, 0.0, 1.0), mask=m)
            total += tl.sum(tl.where(entering, time, 0.0))
            entries += tl.sum(entering.to(tl.int32))
    return total, entries


@triton.jit
def _move_kernel(p_beta, p_zh, p_zv, p_th, p_tv, p_dt, p_new_zh, p_new_zv, p_wh, p_wv, p_total, p_entries, C, H, W,
                 inv_nu, inv_kappa, floor, JOINT: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    """Pass 3 over one block of one image: both directions moved to the image's dt; the block's entry-time sum and
    count into its own slot of (B, blocks)."""
    b = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1)
    p = block * BLOCK + tl.arange(0, BLOCK)
    CJ = 1 if JOINT else C
    nh, nv = H * (W - 1), (H - 1) * W
    dt = tl.load(p_dt + b)
    p_beta += b * C * H * W
    total, entries = _move(p_beta, p_zh + b * C * nh, p_th + b * CJ * nh, p_new_zh + b * C * nh, p_wh + b * CJ * nh,
                           dt, p, C, H, W, inv_nu, inv_kappa, floor, JOINT, False)  # fmt: skip
    total_v, entries_v = _move(p_beta, p_zv + b * C * nv, p_tv + b * CJ * nv, p_new_zv + b * C * nv,
                               p_wv + b * CJ * nv, dt, p, C, H, W, inv_nu, inv_kappa, floor, JOINT,
                               True)  # fmt: skip
    slot = b * tl.num_programs(1) + block
    tl.store(p_total + slot, total + total_v)
    tl.store(p_entries + slot, entries + entries_v)


@triton.jit
def _chebyshev_kernel(p_cur, p_prev, p_cur_out, p_prev_out, p_xs, p_wh, p_wv, p_steps, p_scratch, first, last, inv_nu,
                      C, H, W, JOINT: tl.constexpr, TILE: tl.constexpr, SPAN: tl.constexpr):  # fmt: skip
    """Iterations [first, last) of the solve (``reference.chebyshev_steps``' coefficients in p_steps) on one TILE x
    TILE tile of image-channel ``program_id(0)``, blocked in time: the tile and a halo of (SPAN - TILE) / 2 >= last -
    first pixels around it are read once, every iteration runs on them in registers (each neighbour read back from
    the program's own scratch, after a barrier), and the tile's last two iterates are written. A halo pixel's value
    goes wrong by one pixel from the span's edge per iteration; the halo is wide enough that the tile never sees it.
    Each iteration: next = v + a (v - previous) + b (s x - (I + D^T W D / nu) v), the weights 1 on inactive edges."""
    bc = tl.program_id(0).to(tl.int64)
    CJ = 1 if JOINT else C
    halo = (SPAN - TILE) // 2
    r = tl.program_id(1) * TILE - halo + tl.arange(0, SPAN)[:, None]  # the span's rows and columns in the image
    c = tl.program_id(2) * TILE - halo + tl.arange(0, SPAN)[None, :]
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    base = bc * H * W
    weights = (bc // C) * CJ + (0 if JOINT else bc % C)  # the weights' (image, channel) row
    p_wh += weights * H * (W - 1)
    p_wv += weights * (H - 1) * W
    at = r * W + c
    right, left = inside & (c < W - 1), inside & (c > 0)
    down, up = inside & (r < H - 1), inside & (r > 0)
    w_right = tl.load(p_wh + r * (W - 1) + c, mask=right, other=0.0)
    w_left = tl.load(p_wh + r * (W - 1) + c - 1, mask=left, other=0.0)
    w_down = tl.load(p_wv + at, mask=down, other=0.0)
    w_up = tl.load(p_wv + at - W, mask=up, other=0.0)
    cur = tl.load(p_cur + base + at, mask=inside, other=0.0)
    prev = tl.load(p_prev + base + at, mask=inside, other=0.0)
    xs = tl.load(p_xs + base + at, mask=inside, other=0.0)
    program = (tl.program_id(0).to(tl.int64) * tl.num_programs(1) + tl.program_id(1)) * tl.num_programs(2)
    p_scratch += (program + tl.program_id(2)) * SPAN * SPAN
    i, j = tl.arange(0, SPAN)[:, None], tl.arange(0, SPAN)[None, :]
    local = i * SPAN + j
    for k in range(first, last):
        a, b = tl.load(p_steps + 2 * k), tl.load(p_steps + 2 * k + 1)
        tl.store(p_scratch + local, cur)
        tl.debug_barrier()  # every thread's share stored before any thread reads its neighbours
        lap = w_right * (cur - tl.load(p_scratch + local + 1, mask=j < SPAN - 1, other=0.0))
        lap += w_left * (cur - tl.load(p_scratch + local - 1, mask=j > 0, other=0.0))
        lap += w_down * (cur - tl.load(p_scratch + local + SPAN, mask=i < SPAN - 1, other=0.0))
        lap += w_up * (cur - tl.load(p_scratch + local - SPAN, mask=i > 0, other=0.0))
        tl.debug_barrier()  # every read done before the next iteration's stores
        cur, prev = cur + a * (cur - prev) + b * (xs - cur - lap * inv_nu), cur
    tile = inside & (i >= halo) & (i < halo + TILE) & (j >= halo) & (j < halo + TILE)
    tl.store(p_cur_out + base + at, cur, mask=tile)
    tl.store(p_prev_out + base + at, prev, mask=tile)


@triton.jit
def _correct(p_beta, p_start, p_z, p_lag_b, p, C, H, W, inv_nu, inv_kappa, floor, JOINT: tl.constexpr,
             VERTICAL: tl.constexpr):  # fmt: skip
    """One direction's edges at pixels ``p``, in place: the inactive z gain lag (D beta - D start) / nu, then every
    active edge (entered by the correction too) takes its quasi-steady size at the rates D beta."""
    m, e, offset, n = _edges(p, H, W, VERTICAL)
    lag = tl.load(p_lag_b)
    if JOINT:
        before = tl.zeros(p.shape, dtype=tl.float32)
        after = tl.zeros(p.shape, dtype=tl.float32)
        dd = tl.zeros(p.shape, dtype=tl.float32)
        for c in range(C):
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            before += z * z
        inactive = before <= 1.0
        for c in range(C):
            d1 = _difference(p_beta + c * H * W, p, offset, m)
            d0 = _difference(p_start + c * H * W, p, offset, m)
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            z = tl.where(inactive, z + lag * (d1 - d0) * inv_nu, z)
            tl.store(p_z + c * n + e, z, mask=m)
            after += z * z
            dd += d1 * d1
        settle = after > 1.0
        for c in range(C):  # the corrected z, read back from this program's own stores
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            z = tl.where(settle, _settled(z, tl.sqrt_rn(after), tl.sqrt_rn(dd), inv_kappa, floor), z)
            tl.store(p_z + c * n + e, z, mask=m)
    else:
        for c in range(C):
            d1 = _difference(p_beta + c * H * W, p, offset, m)
            d0 = _difference(p_start + c * H * W, p, offset, m)
            z = tl.load(p_z + c * n + e, mask=m, other=0.0)
            z = tl.where(tl.abs(z) > 1.0, z, z + lag * (d1 - d0) * inv_nu)
            z = tl.where(tl.abs(z) > 1.0, _settled(z, tl.abs(z), tl.abs(d1), inv_kappa, floor), z)
            tl.store(p_z + c * n + e, z, mask=m)


@triton.jit
def _correct_kernel(p_beta, p_start, p_zh, p_zv, p_lag, C, H, W, inv_nu, inv_kappa, floor, JOINT: tl.constexpr,
                    BLOCK: tl.constexpr):  # fmt: skip
    """Pass 5 over one block of one image: both directions corrected and settled in place."""
    b = tl.program_id(0).to(tl.int64)
    p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    nh, nv = H * (W - 1), (H - 1) * W
    p_beta += b * C * H * W
    p_start += b * C * H * W
    _correct(p_beta, p_start, p_zh + b * C * nh, p_lag + b, p, C, H, W, inv_nu, inv_kappa, floor, JOINT, False)
    _correct(p_beta, p_start, p_zv + b * C * nv, p_lag + b, p, C, H, W, inv_nu, inv_kappa, floor, JOINT, True)


# ------------------------------------------------------------------------------------------ the step's time
# The k-th smallest waiting time of each image, exactly, as ``triton_events._kth_smallest`` picks it (a histogram of
# the keys' top 11 bits, then of the next 11 and the last 10 bits inside the bin that holds it), each histogram
# summed over the image's blocks by integer atomics (exact, so in any order), each pick one program per image.
@triton.jit
def _histogram_kernel(p_wait, p_counts, p_prefix, n, shift, BITS: tl.constexpr, BLOCK: tl.constexpr):
    """Block ``program_id(1)`` of image ``program_id(0)``'s waiting times: the histogram of their keys' bits
    [shift, shift + BITS) over the values whose bits above them are the image's prefix, added to its counts."""
    b = tl.program_id(0).to(tl.int64)
    i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = i < n
    key = _key(tl.load(p_wait + b * n + i, mask=m, other=float("inf")))
    digit = ((key >> shift) & ((1 << BITS) - 1)).to(tl.int32)
    counts = tl.histogram(digit, 1 << BITS, mask=m & ((key >> (shift + BITS)) == tl.load(p_prefix + b)))
    tl.atomic_add(p_counts + b * (1 << BITS) + tl.arange(0, 1 << BITS), counts, mask=counts > 0)


@triton.jit
def _pick_kernel(p_counts, p_prefix, p_rank, p_dt, BITS: tl.constexpr, LAST: tl.constexpr):
    """Image ``program_id(0)``: the bin of its counts that holds its rank-th value, appended to its prefix, the rank
    inside it; the last pick turns the whole key into the step's time. The counts are cleared for the next pass."""
    b = tl.program_id(0).to(tl.int64)
    bins = tl.arange(0, 1 << BITS)
    counts = tl.load(p_counts + b * (1 << BITS) + bins)
    digit, rank = _bin_of(counts, tl.load(p_rank + b), 1 << BITS)
    prefix = tl.load(p_prefix + b) * (1 << BITS) + digit
    tl.store(p_counts + b * (1 << BITS) + bins, tl.zeros_like(counts))
    tl.store(p_prefix + b, prefix)
    tl.store(p_rank + b, rank)
    if LAST:
        tl.store(p_dt + b, _value(prefix))


# the passes' bits: (shift, bits), from the top; 11 + 11 + 10 = the 32 bits of a float's key
_PASSES = ((21, 11), (10, 11), (0, 10))


def kth_smallest(waiting: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Each row's k-th smallest (0-based) value of ``waiting`` (B, n) float32, k (B,) below the row's number of finite
    values: three histogram passes over the row, and a pick per row after each."""
    batch, n = waiting.shape
    # each pass reads its rows 2^bits apart in this buffer, which every pick leaves zero
    counts = torch.zeros(batch, 1 << 11, dtype=torch.int32, device=waiting.device)
    prefix = torch.zeros(batch, dtype=torch.int64, device=waiting.device)
    rank = k.to(device=waiting.device, dtype=torch.int64).contiguous()
    dt = torch.empty(batch, dtype=waiting.dtype, device=waiting.device)
    grid = (batch, triton.cdiv(n, BLOCK))
    for index, (shift, bits) in enumerate(_PASSES):
        _histogram_kernel[grid](waiting, counts, prefix, n, shift, BITS=bits, BLOCK=BLOCK, num_warps=NUM_WARPS)
        _pick_kernel[(batch,)](counts, prefix, rank, dt, BITS=bits, LAST=index == len(_PASSES) - 1, num_warps=4)
    return dt


# ------------------------------------------------------------------------------------------ the host side
def _grid(beta: torch.Tensor) -> tuple[int, int]:
    return beta.shape[0], triton.cdiv(beta.shape[2] * beta.shape[3], BLOCK)


def solve_beta(beta: torch.Tensor, xs: torch.Tensor, wh: torch.Tensor, wv: torch.Tensor, cfg: SolverConfig) -> None:
    """``torch_path.solve_beta`` on the kernel, in place: ``wh``, ``wv`` (B, C or 1, ...) float, 1 on the inactive
    edges; HALO iterations per launch (the default's 8 in one), each launch reading the state once."""
    batch, channels, height, width = beta.shape
    joint = wh.shape[1] == 1 and channels > 1
    steps = steps_on(cfg, beta.device)
    grid = (batch * channels, triton.cdiv(height, TILE), triton.cdiv(width, TILE))
    scratch = beta.new_empty(grid[0] * grid[1] * grid[2] * SPAN * SPAN)
    cur, prev = beta.contiguous(), beta.clone()
    cur_out, prev_out = torch.empty_like(cur), torch.empty_like(cur)
    for first in range(0, len(steps), HALO):
        last = min(first + HALO, len(steps))
        _chebyshev_kernel[grid](cur, prev, cur_out, prev_out, xs, _arg(wh), _arg(wv), steps, scratch, first, last,
                                1.0 / cfg.nu, channels, height, width, JOINT=joint, TILE=TILE, SPAN=SPAN,
                                num_warps=SOLVE_WARPS)  # fmt: skip
        cur, prev, cur_out, prev_out = cur_out, prev_out, cur, prev
    beta.copy_(cur)


def _solve_support(beta, xs, zh, zv, cfg: SolverConfig, joint: bool) -> None:
    ah, av = support(zh, zv, joint)
    solve_beta(beta, xs.contiguous(), (~ah).float().contiguous(), (~av).float().contiguous(), cfg)


def event_step(beta, zh, zv, xs, rule: StopRule, count: torch.Tensor, cfg: SolverConfig, joint: bool):
    """``torch_path._event_step`` on the kernels: the new (beta, zh, zv) of a batch whose images activate ``count``
    (A,) jumps each, and (A,) bool, the images in which no jump can activate any more (their state unchanged)."""
    batch, channels, height, width = beta.shape
    beta, zh, zv, xs = (t.contiguous() for t in (beta, zh, zv, xs))
    cj = 1 if joint else channels
    jh, jv = (j.contiguous().view(torch.uint8) for j in (rule.jumps_h, rule.jumps_v))
    th = beta.new_empty(batch, cj, height, width - 1)
    tv = beta.new_empty(batch, cj, height - 1, width)
    waiting = beta.new_empty(batch, th[0].numel() + tv[0].numel())
    grid = _grid(beta)
    inv_nu, inv_kappa = 1.0 / cfg.nu, 1.0 / cfg.kappa
    _times_kernel[grid](beta, _arg(zh), _arg(zv), _arg(jh), _arg(jv), _arg(th), _arg(tv), waiting, channels, height,
                        width, inv_nu, JOINT=joint, BLOCK=BLOCK, num_warps=NUM_WARPS)  # fmt: skip
    finite = waiting.isfinite().sum(1)
    stuck = finite == 0
    count = torch.minimum(count, finite).clamp(min=1)
    dt = torch.where(stuck, 0, kth_smallest(waiting, count - 1)).contiguous()
    new_zh, new_zv = torch.empty_like(zh), torch.empty_like(zv)
    wh, wv = torch.empty_like(th), torch.empty_like(tv)
    total = beta.new_empty(grid)
    entries = torch.empty(grid, dtype=torch.int32, device=beta.device)
    _move_kernel[grid](beta, _arg(zh), _arg(zv), _arg(th), _arg(tv), dt, _arg(new_zh), _arg(new_zv), _arg(wh),
                       _arg(wv), total, entries, channels, height, width, inv_nu, inv_kappa, ACTIVE_FLOOR,
                       JOINT=joint, BLOCK=BLOCK, num_warps=NUM_WARPS)  # fmt: skip
    new_beta = beta.clone()
    solve_beta(new_beta, xs, wh, wv, cfg)
    # the rates changed as the step's edges entered: correct for the rest of the step after their mean entry time
    lag = (dt - total.sum(1) / entries.sum(1).clamp(min=1)).contiguous()
    _correct_kernel[grid](new_beta, beta, _arg(new_zh), _arg(new_zv), lag, channels, height, width, inv_nu,
                          inv_kappa, ACTIVE_FLOOR, JOINT=joint, BLOCK=BLOCK, num_warps=NUM_WARPS)  # fmt: skip
    keep = stuck.view(-1, 1, 1, 1)
    return [torch.where(keep, old, new) for old, new in ((beta, new_beta), (zh, new_zh), (zv, new_zv))], stuck


def advance_events(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool) -> PathState:
    """``path.Advance`` with the events integrator, each step's passes on the kernels above and the control flow of
    ``torch_path.advance_events``, stepping every image ``torch_path.step_bound`` times before the host looks (one
    read per call instead of one per step, for a number target); returns the state each image's output is read
    from."""
    rounds = torch_path.step_bound(rule, cfg)
    return torch_path.advance_events(
        state, xs, rule, cfg, joint, step=event_step, solve_support=_solve_support, rounds=rounds
    )
