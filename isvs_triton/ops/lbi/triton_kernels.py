"""Split LBI in Triton, the kernels (the host side is ``triton_fused.py``; README.md beside this file). Two kernels
share one tile update, ``_step_tile``, and one layout of the state: three rotating slots per tensor (iteration k
reads slot k%3, and (k-1)%3 for momentum, and writes (k+1)%3), so an image that stops leaves its state where it is
and nothing is copied per iteration.

- ``_lbi_step_kernel``: one launch per iteration, any image size. One program owns a BLOCK_H x BLOCK_W tile of one
  image (every channel in "joint" mode, where the shrinkage needs each edge's channel norm; one channel in
  "independent" mode) and counts the tile's active jumps into its image's counter with one atomic add. Each image
  decides its own stop on the device from the count the previous launch completed, so the host issues one launch
  per iteration and synchronises only every CHECK_EVERY launches.
- ``_lbi_persistent_kernel``: one program per image (up to PERSISTENT_MAX_SIDE per channel) walks its tiles and runs
  every iteration until its own stop: no launch and no host check per iteration; a barrier separates iterations.
- ``_write_back_kernel``: after either, each image's last state (and the one before) from its slot to the caller's
  state tensors, in one read and one write.

The tile update computes the extrapolated point (Nesterov), gamma, the edge residual r = D beta - gamma at the
tile's own edges and at the edges entering from the left and from above, D^T r, and the new z and beta.
Per pixel-iteration, fp32, without momentum: read beta (4 B; its halo comes from L1/L2), z horizontal and vertical
(8 B) and x (4 B), write beta and z (12 B): 28 B. With momentum the previous beta and z are read too: 40 B.
About 40 flops: bandwidth-bound on any GPU (the roofline is in docs/performance.md).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit(do_not_specialize=["k"])  # one compiled kernel for every iteration
def _lbi_step_kernel(
    p_beta, p_zh, p_zv,  # (3, B, C, H, W), (3, B, C, H, W-1), (3, B, C, H-1, W): state k in slot k%3
    p_xs,  # scale * x (B, C, H, W)
    p_need,  # (B,) int32: active jumps at which the image stops
    p_limit,  # (B,) float64: residual sum of squares at which it stops (NOISE only)
    p_budget,  # (B,) int32: iterations it may run
    p_iters,  # (B,) int32 out: iterations run
    p_count,  # (3, B) int32: active jumps of state k in row k%3 (row (k+1)%3 zero at launch k)
    p_resid,  # (3, B) float64: residual sum of squares of state k in row k%3, like p_count (NOISE only)
    k, B, C, H, W, tiles_w, slot_beta, slot_zh, slot_zv,
    kappa, step_z, step_beta, inv_nu, momentum,
    JOINT: tl.constexpr, MOMENTUM: tl.constexpr, NOISE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """Iteration k of every image that has not stopped: state slot k%3 (and (k-1)%3) -> slot (k+1)%3.

    Each image decides its own stop on the device from the complete count (and residual) of state k (the previous
    launch's atomics), so the host only launches and looks now and then. A stopped image's programs return at once
    and its state stays in the slot of its stop; its leader (tile 0, first channel) carries its count to the next
    row."""
    pid_tile, pid_plane = tl.program_id(0), tl.program_id(1)
    if JOINT:
        b, c_first, c_last = pid_plane, 0, C
    else:
        b, c_first, c_last = pid_plane // C, pid_plane % C, pid_plane % C + 1
    cur, prev, new = k % 3, (k + 2) % 3, (k + 1) % 3
    count = tl.load(p_count + cur * B + b)
    running = (count < tl.load(p_need + b)) & (k < tl.load(p_budget + b))
    if NOISE:
        resid = tl.load(p_resid + cur * B + b)
        running = running & (resid > tl.load(p_limit + b))
    if (pid_tile == 0) & (c_first == 0):
        tl.store(p_count + prev * B + b, 0)  # the row the next launch accumulates into (read by nobody here)
        if NOISE:
            tl.store(p_resid + prev * B + b, 0.0)
        if running:
            tl.store(p_iters + b, k + 1)
        else:
            tl.store(p_count + new * B + b, count)
            if NOISE:
                tl.store(p_resid + new * B + b, resid)
    if running:
        i, j = _tile(pid_tile, tiles_w, BLOCK_H, BLOCK_W)
        active, squares = _step_tile(
            p_beta + cur * slot_beta, p_zh + cur * slot_zh, p_zv + cur * slot_zv,
            p_beta + prev * slot_beta, p_zh + prev * slot_zh, p_zv + prev * slot_zv,
            p_beta + new * slot_beta, p_zh + new * slot_zh, p_zv + new * slot_zv, p_xs,
            b, c_first, c_last, i, j, C, H, W, kappa, step_z, step_beta, inv_nu, momentum,
            JOINT, MOMENTUM, NOISE, BLOCK_H, BLOCK_W,
        )  # fmt: skip
        tl.atomic_add(p_count + new * B + b, active, sem="relaxed")  # read by the next launch: needs no ordering
        if NOISE:
            tl.atomic_add(p_resid + new * B + b, squares, sem="relaxed")


@triton.jit
def _lbi_persistent_kernel(
    p_beta, p_zh, p_zv,  # (3, B, C, H, W), (3, B, C, H, W-1), (3, B, C, H-1, W): state k in slot k%3
    p_xs,  # scale * x (B, C, H, W)
    p_need,  # (B,) int32: active jumps at which the image stops
    p_limit,  # (B,) float64: residual sum of squares at which it stops (NOISE only)
    p_budget,  # (B,) int32: iterations it may run
    p_iters,  # (B,) int32 out: iterations run
    p_count,  # (B,) int32: active jumps of the start state
    p_resid,  # (B,) float64: residual sum of squares of the start state (NOISE only)
    C, H, W, tiles_h, tiles_w, slot_beta, slot_zh, slot_zv,
    kappa, step_z, step_beta, inv_nu, momentum,
    JOINT: tl.constexpr, MOMENTUM: tl.constexpr, NOISE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """One program per image runs all its iterations and stops itself: no launch and no host check per iteration.

    The state rotates through the three slots as in ``_lbi_step_kernel``; the tiles of the image read their
    neighbours' values of the previous iteration, so a barrier separates iterations."""
    b = tl.program_id(0)
    count = tl.load(p_count + b)
    resid = tl.load(p_resid + b) if NOISE else 1.0
    limit = tl.load(p_limit + b) if NOISE else 0.0
    k = tl.zeros([], dtype=tl.int32)
    # need and budget are reloaded (cached) rather than held: held in registers, ptxas spilled in one configuration
    while (count < tl.load(p_need + b)) & (k < tl.load(p_budget + b)) & (resid > limit):
        cur, prev, new = k % 3, (k + 2) % 3, (k + 1) % 3
        count = tl.zeros([], dtype=tl.int32)
        squares = tl.zeros([], dtype=tl.float64)
        for t in range(0, tiles_h * tiles_w):
            i, j = _tile(t, tiles_w, BLOCK_H, BLOCK_W)
            tile_count, tile_squares = _step_tile(
                p_beta + cur * slot_beta, p_zh + cur * slot_zh, p_zv + cur * slot_zv,
                p_beta + prev * slot_beta, p_zh + prev * slot_zh, p_zv + prev * slot_zv,
                p_beta + new * slot_beta, p_zh + new * slot_zh, p_zv + new * slot_zv, p_xs,
                b, 0, C, i, j, C, H, W, kappa, step_z, step_beta, inv_nu, momentum,
                JOINT, MOMENTUM, NOISE, BLOCK_H, BLOCK_W,
            )  # fmt: skip
            count += tile_count
            squares += tile_squares
        if NOISE:
            resid = squares
        tl.debug_barrier()
        k += 1
    tl.store(p_iters + b, k)


@triton.jit
def _tile(t, tiles_w, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Row and column indices, (BLOCK_H, 1) and (1, BLOCK_W), of tile ``t`` in a grid ``tiles_w`` tiles wide."""
    i = (t // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    j = (t % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    return i, j


@triton.jit
def _write_back_kernel(
    p_beta, p_zh, p_zv,  # the slots, as in _lbi_step_kernel
    p_iters,  # (B,) int32: iterations each image ran (its state is in slot iters%3, the one before in (iters-1)%3)
    p_beta_d, p_zh_d, p_zv_d, p_pbeta_d, p_pzh_d, p_pzv_d,  # the caller's state and previous state (N, C, H, W) ...
    p_rows,  # (B,) int64: the row of each image there
    C, H, W, tiles_w, slot_beta, slot_zh, slot_zv, write_prev,
    JOINT: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """Copy each image's last state (and, if ``write_prev``, the one before) from its slot to the caller's tensors:
    one read and one write, where a gather from the slots and a scatter to the rows would take two of each."""
    pid_tile, pid_plane = tl.program_id(0), tl.program_id(1)
    if JOINT:
        b, c_first, c_last = pid_plane, 0, C
    else:
        b, c_first, c_last = pid_plane // C, pid_plane % C, pid_plane % C + 1
    i, j = _tile(pid_tile, tiles_w, BLOCK_H, BLOCK_W)
    row, last = tl.load(p_rows + b), tl.load(p_iters + b) % 3
    _copy_tile(p_beta + last * slot_beta, p_zh + last * slot_zh, p_zv + last * slot_zv, p_beta_d, p_zh_d, p_zv_d,
               b, row, c_first, c_last, i, j, C, H, W)  # fmt: skip
    if write_prev != 0:
        before = (last + 2) % 3
        _copy_tile(p_beta + before * slot_beta, p_zh + before * slot_zh, p_zv + before * slot_zv,
                   p_pbeta_d, p_pzh_d, p_pzv_d, b, row, c_first, c_last, i, j, C, H, W)  # fmt: skip


@triton.jit
def _copy_tile(p_beta, p_zh, p_zv, p_beta_d, p_zh_d, p_zv_d, b, row, c_first, c_last, i, j, C, H, W):
    """Copy the pixels (i, j) of image b, channels [c_first, c_last), to image ``row`` of the (beta, zh, zv) _d."""
    m_p, m_h, m_v = (i < H) & (j < W), (i < H) & (j < W - 1), (i < H - 1) & (j < W)
    for c in range(c_first, c_last):
        s, d = b * C + c, row * C + c
        tl.store(p_beta_d + (d * H + i) * W + j, tl.load(p_beta + (s * H + i) * W + j, mask=m_p), mask=m_p)
        tl.store(p_zh_d + (d * H + i) * (W - 1) + j, tl.load(p_zh + (s * H + i) * (W - 1) + j, mask=m_h), mask=m_h)
        tl.store(p_zv_d + (d * (H - 1) + i) * W + j, tl.load(p_zv + (s * (H - 1) + i) * W + j, mask=m_v), mask=m_v)


@triton.jit
def _step_tile(
    p_beta, p_zh, p_zv, p_pbeta, p_pzh, p_pzv, p_beta_o, p_zh_o, p_zv_o, p_xs,
    b, c_first, c_last, i, j, C, H, W, kappa, step_z, step_beta, inv_nu, mu,
    JOINT: tl.constexpr, MOMENTUM: tl.constexpr, NOISE: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """One Split LBI update of the pixels (i, j) of image b, channels [c_first, c_last), from the current state
    (p_beta, p_zh, p_zv) and the previous one (p_p*: momentum) into p_*_o; returns the new state's active jumps
    (active edges whose two pixels differ in s x, in any channel when JOINT) and, with NOISE, its residual sum of
    squares sum((beta - s x)^2) in float64 (0 without)."""
    m_pix = (i < H) & (j < W)
    m_h = (i < H) & (j < W - 1)  # edge (i, j)-(i, j+1) exists
    m_hl = (i < H) & (j >= 1) & (j < W)  # edge (i, j-1)-(i, j)
    m_v = (i < H - 1) & (j < W)  # edge (i, j)-(i+1, j)
    m_vu = (i >= 1) & (i < H) & (j < W)  # edge (i-1, j)-(i, j)

    # joint shrinkage: gamma_e = kappa z_e max(1 - 1/||z_e||, 0); one factor per edge from the norm over channels
    f_h = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)
    f_hl = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)
    f_v = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)
    f_vu = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)
    if JOINT:
        for c in range(c_first, c_last):
            o_h = ((b * C + c) * H + i) * (W - 1) + j
            o_v = ((b * C + c) * (H - 1) + i) * W + j
            y_h = _extrapolate(p_zh, p_pzh, o_h, m_h, mu, MOMENTUM)
            y_hl = _extrapolate(p_zh, p_pzh, o_h - 1, m_hl, mu, MOMENTUM)
            y_v = _extrapolate(p_zv, p_pzv, o_v, m_v, mu, MOMENTUM)
            y_vu = _extrapolate(p_zv, p_pzv, o_v - W, m_vu, mu, MOMENTUM)
            f_h += y_h * y_h
            f_hl += y_hl * y_hl
            f_v += y_v * y_v
            f_vu += y_vu * y_vu
        f_h = tl.maximum(1.0 - 1.0 / tl.sqrt(f_h), 0.0)  # sqrt(0) = 0 -> -inf -> 0
        f_hl = tl.maximum(1.0 - 1.0 / tl.sqrt(f_hl), 0.0)
        f_v = tl.maximum(1.0 - 1.0 / tl.sqrt(f_v), 0.0)
        f_vu = tl.maximum(1.0 - 1.0 / tl.sqrt(f_vu), 0.0)

    n_h = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)  # squared new z over channels (joint count)
    n_v = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)
    jump_h = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.int1)  # the edge's pixels differ in some channel (joint count)
    jump_v = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.int1)
    active = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.int32)
    squares = tl.zeros([], dtype=tl.float64)
    for c in range(c_first, c_last):
        o_p = ((b * C + c) * H + i) * W + j
        o_h = ((b * C + c) * H + i) * (W - 1) + j
        o_v = ((b * C + c) * (H - 1) + i) * W + j
        yb = _extrapolate(p_beta, p_pbeta, o_p, m_pix, mu, MOMENTUM)
        yb_r = _extrapolate(p_beta, p_pbeta, o_p + 1, m_h, mu, MOMENTUM)
        yb_l = _extrapolate(p_beta, p_pbeta, o_p - 1, m_hl, mu, MOMENTUM)
        yb_d = _extrapolate(p_beta, p_pbeta, o_p + W, m_v, mu, MOMENTUM)
        yb_u = _extrapolate(p_beta, p_pbeta, o_p - W, m_vu, mu, MOMENTUM)
        y_h = _extrapolate(p_zh, p_pzh, o_h, m_h, mu, MOMENTUM)
        y_hl = _extrapolate(p_zh, p_pzh, o_h - 1, m_hl, mu, MOMENTUM)
        y_v = _extrapolate(p_zv, p_pzv, o_v, m_v, mu, MOMENTUM)
        y_vu = _extrapolate(p_zv, p_pzv, o_v - W, m_vu, mu, MOMENTUM)
        if JOINT:
            g_h, g_hl, g_v, g_vu = y_h * f_h, y_hl * f_hl, y_v * f_v, y_vu * f_vu
        else:
            g_h = y_h - tl.minimum(tl.maximum(y_h, -1.0), 1.0)
            g_hl = y_hl - tl.minimum(tl.maximum(y_hl, -1.0), 1.0)
            g_v = y_v - tl.minimum(tl.maximum(y_v, -1.0), 1.0)
            g_vu = y_vu - tl.minimum(tl.maximum(y_vu, -1.0), 1.0)
        # r = D beta - gamma on the tile's edges (0 where an edge does not exist)
        r_h = tl.where(m_h, (yb_r - yb) - g_h * kappa, 0.0)
        r_hl = tl.where(m_hl, (yb - yb_l) - g_hl * kappa, 0.0)
        r_v = tl.where(m_v, (yb_d - yb) - g_v * kappa, 0.0)
        r_vu = tl.where(m_vu, (yb - yb_u) - g_vu * kappa, 0.0)
        grad_t = ((r_hl - r_h) + r_vu) - r_v  # D^T r, in the order of the torch path
        z_h = y_h + r_h * step_z
        z_v = y_v + r_v * step_z
        b_xs = tl.load(p_xs + o_p, mask=m_pix, other=0.0)
        beta = yb + ((yb - b_xs) + grad_t * inv_nu) * step_beta
        tl.store(p_beta_o + o_p, beta, mask=m_pix)
        tl.store(p_zh_o + o_h, z_h, mask=m_h)
        tl.store(p_zv_o + o_v, z_v, mask=m_v)
        if NOISE:
            d = tl.where(m_pix, beta - b_xs, 0.0).to(tl.float64)
            squares += tl.sum(tl.sum(d * d, axis=1), axis=0)
        # the pixels' right and lower neighbours in s x (cache hits: the tile's own row and the next one)
        j_h = m_h & (tl.load(p_xs + o_p + 1, mask=m_h, other=0.0) != b_xs)
        j_v = m_v & (tl.load(p_xs + o_p + W, mask=m_v, other=0.0) != b_xs)
        if JOINT:
            n_h += z_h * z_h
            n_v += z_v * z_v
            jump_h = jump_h | j_h
            jump_v = jump_v | j_v
        else:
            active += (j_h & (tl.abs(z_h) > 1.0)).to(tl.int32) + (j_v & (tl.abs(z_v) > 1.0)).to(tl.int32)
    if JOINT:
        active = (jump_h & (n_h > 1.0)).to(tl.int32) + (jump_v & (n_v > 1.0)).to(tl.int32)
    return tl.sum(tl.sum(active, axis=1), axis=0), squares


@triton.jit
def _extrapolate(p, p_prev, offset, mask, mu, MOMENTUM: tl.constexpr):
    """y = v + mu (v - v_prev) at ``offset`` (0 outside ``mask``); v itself without momentum."""
    v = tl.load(p + offset, mask=mask, other=0.0)
    if MOMENTUM:
        v = v + (v - tl.load(p_prev + offset, mask=mask, other=0.0)) * mu
    return v
