"""Split LBI on the CPU with numba: one image per thread, every iteration of an image while its state stays in cache.

The ``torch`` backend runs the whole batch through ~36 eager passes per iteration: on a CPU its state leaves the
cache between passes, so it is bound by memory traffic. Here compiled loops run an image's iterations to its own
stop (count after each iteration, no host checks, no working-set compaction), images spread over threads (the loops
release the GIL). Same equations and float32 operations in the same order as ``torch_path._step`` (README.md beside
this file); multiply-adds may be fused, as in torch's compiled CPU kernels. ``advance`` is this backend's part of the
shared driver (``path.Advance``).
"""

from __future__ import annotations

import os
import sys

import numba
import numpy as np
import torch

from ...config import SolverConfig, required_active
from ..parallel import in_parallel
from .path import Masks, PathState, StopRule, Support
from .reference import ACTIVE_FLOOR, chebyshev_steps

JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})


@numba.njit(**JIT)
def _extrapolate(cur, prev, mu):
    """y = cur + mu (cur - prev) written into cur; prev <- cur (the state one iteration back)."""
    flat_cur, flat_prev = cur.ravel(), prev.ravel()
    for i in range(flat_cur.size):
        step = flat_cur[i] - flat_prev[i]
        flat_prev[i] = flat_cur[i]
        flat_cur[i] = flat_cur[i] + step * mu


@numba.njit(**JIT)
def _extrapolated(z, previous, c, i, j, mu, momentum):
    """``_extrapolate`` for one edge, in the pass that reads it (z is then read once per iteration, not three times):
    the same operations, so the same values."""
    value = z[c, i, j]
    if momentum:
        step = value - previous[c, i, j]
        previous[c, i, j] = value
        value = value + step * mu
        z[c, i, j] = value
    return value


@numba.njit(**JIT)
def _residual(beta, zh, zv, pzh, pzv, rh, rv, kappa, mu, momentum, joint):
    """r = D beta - kappa shrink(z), for both edge directions; with ``momentum`` z is extrapolated first (beta
    already is: it is read at two pixels per edge)."""
    channels, height, width = beta.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    if not joint:
        for c in range(channels):
            for i in range(height):
                for j in range(width - 1):
                    z = _extrapolated(zh, pzh, c, i, j, mu, momentum)
                    gamma = (z - min(max(z, -one), one)) * kappa
                    rh[c, i, j] = (beta[c, i, j + 1] - beta[c, i, j]) - gamma
            for i in range(height - 1):
                for j in range(width):
                    z = _extrapolated(zv, pzv, c, i, j, mu, momentum)
                    gamma = (z - min(max(z, -one), one)) * kappa
                    rv[c, i, j] = (beta[c, i + 1, j] - beta[c, i, j]) - gamma
        return
    for i in range(height):
        for j in range(width - 1):
            squares = zero
            for c in range(channels):
                z = _extrapolated(zh, pzh, c, i, j, mu, momentum)
                squares += z * z
            factor = max(one - one / np.sqrt(squares), zero)  # 1/sqrt(0) = inf -> factor 0
            for c in range(channels):
                rh[c, i, j] = (beta[c, i, j + 1] - beta[c, i, j]) - zh[c, i, j] * factor * kappa
    for i in range(height - 1):
        for j in range(width):
            squares = zero
            for c in range(channels):
                z = _extrapolated(zv, pzv, c, i, j, mu, momentum)
                squares += z * z
            factor = max(one - one / np.sqrt(squares), zero)
            for c in range(channels):
                rv[c, i, j] = (beta[c, i + 1, j] - beta[c, i, j]) - zv[c, i, j] * factor * kappa


@numba.njit(**JIT)
def _update(beta, zh, zv, rh, rv, xs, g, jh, jv, step_z, nu, step_beta, joint):
    """z += (alpha/nu) r; beta += -(kappa alpha) ((beta - s x) + D^T r / nu); returns the new z's active jumps
    per channel (|z| > 1 on an edge ``jh``/``jv`` marks), counted as z is written rather than in a pass of its own
    (not in ``joint`` mode, where an edge is active by its channel norm and ``jh``/``jv`` have one channel).

    D^T r is summed into ``g`` in the four passes of torch_path (same order, so the same rounding); each pass is a
    plain loop that the compiler vectorises, where one pass with a branch per neighbour would not be."""
    channels, height, width = beta.shape
    one = np.float32(1.0)
    count = 0
    g[:] = 0
    for c in range(channels):
        for i in range(height):
            for j in range(width - 1):
                g[c, i, j + 1] += rh[c, i, j]
            for j in range(width - 1):
                g[c, i, j] -= rh[c, i, j]
        for i in range(height - 1):
            for j in range(width):
                g[c, i + 1, j] += rv[c, i, j]
        for i in range(height - 1):
            for j in range(width):
                g[c, i, j] -= rv[c, i, j]
        for i in range(height):
            for j in range(width):
                beta[c, i, j] = beta[c, i, j] + ((beta[c, i, j] - xs[c, i, j]) + g[c, i, j] / nu) * step_beta
        for i in range(height):
            for j in range(width - 1):
                z = zh[c, i, j] + rh[c, i, j] * step_z
                zh[c, i, j] = z
                if not joint:
                    count += (abs(z) > one) & jh[c, i, j]
        for i in range(height - 1):
            for j in range(width):
                z = zv[c, i, j] + rv[c, i, j] * step_z
                zv[c, i, j] = z
                if not joint:
                    count += (abs(z) > one) & jv[c, i, j]
    return count


@numba.njit(**JIT)
def _count(zh, zv, jh, jv, joint):
    """Active jumps: |z| > 1 per channel, or the channel vector's squared norm > 1 (joint), on the edges that
    ``jh``/``jv`` mark as jumps."""
    channels = zh.shape[0]
    one = np.float32(1.0)
    count = 0
    if not joint:
        for z, jump in ((zh, jh), (zv, jv)):
            flat, flat_jump = z.ravel(), jump.ravel()
            for i in range(flat.size):
                count += (abs(flat[i]) > one) & flat_jump[i]
        return count
    for z, jump in ((zh, jh), (zv, jv)):
        for i in range(z.shape[1]):
            for j in range(z.shape[2]):
                squares = np.float32(0.0)
                for c in range(channels):
                    squares += z[c, i, j] * z[c, i, j]
                count += (squares > one) & jump[0, i, j]
    return count


@numba.njit(**JIT)
def _residual_squares(beta, xs):
    """sum((beta - s x)^2) in float64, as ``path.residual``."""
    flat_beta, flat_xs = beta.ravel(), xs.ravel()
    total = 0.0
    for i in range(flat_beta.size):
        d = np.float64(flat_beta[i] - flat_xs[i])
        total += d * d
    return total


@numba.njit(**JIT)
def _advance(beta, zh, zv, pbeta, pzh, pzv, xs, jh, jv, need, limit, iterations, max_iter, kappa, step_z, nu,
             step_beta, mu, joint, momentum, noise, images):  # fmt: skip
    """Each of ``images`` runs until its active jumps reach ``need``, its residual falls to ``limit`` (with
    ``noise``) or its iterations reach ``max_iter``, one image after another; images already there do not move."""
    for b in images:
        if _count(zh[b], zv[b], jh[b], jv[b], joint) >= need[b] or iterations[b] >= max_iter:
            continue
        if noise and _residual_squares(beta[b], xs[b]) <= limit[b]:
            continue
        rh, rv = np.empty_like(zh[b]), np.empty_like(zv[b])
        g = np.empty_like(beta[b])  # D^T r
        while True:
            if momentum:
                _extrapolate(beta[b], pbeta[b], mu)
            _residual(beta[b], zh[b], zv[b], pzh[b], pzv[b], rh, rv, kappa, mu, momentum, joint)
            count = _update(beta[b], zh[b], zv[b], rh, rv, xs[b], g, jh[b], jv[b], step_z, nu, step_beta, joint)
            if joint:
                count = _count(zh[b], zv[b], jh[b], jv[b], joint)
            iterations[b] += 1
            if count >= need[b] or iterations[b] >= max_iter:
                break
            if noise and _residual_squares(beta[b], xs[b]) <= limit[b]:
                break


def advance(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool) -> None:
    """``path.Advance`` in compiled loops: float32 CPU tensors, updated in place, images spread over threads."""
    if cfg.integrator == "events":
        return _advance_events(state, xs, rule, cfg, joint)
    momentum = state.prev is not None
    tensors = [t.contiguous() for t in (*state.tensors(), state.iterations)]  # views of the state where possible
    arrays = [t.numpy() for t in tensors]
    beta, zh, zv = arrays[:3]
    pbeta, pzh, pzv = arrays[3:6] if momentum else (beta, zh, zv)
    f32 = np.float32
    noise = rule.has_noise
    constants = (cfg.max_iter, f32(cfg.kappa), f32(cfg.alpha / cfg.nu), f32(cfg.nu), f32(-(cfg.kappa * cfg.alpha)),
                 f32(cfg.momentum), joint, momentum, noise)  # fmt: skip
    rule_arrays = (rule.jumps_h.contiguous().numpy(), rule.jumps_v.contiguous().numpy(), rule.need.numpy(),
                   rule.limit.numpy())  # fmt: skip
    args = (beta, zh, zv, pbeta, pzh, pzv, xs.contiguous().numpy(), *rule_arrays, arrays[-1], *constants)
    in_parallel(lambda images: _advance(*args, images), len(beta))
    _copy_back((*state.tensors(), state.iterations), tensors)


def _copy_back(state_tensors, worked_on) -> None:
    """The loops ran on contiguous versions of the state: copy those that are not the state's own memory back."""
    for dst, src in zip(state_tensors, worked_on):
        if dst.data_ptr() != src.data_ptr():
            dst.copy_(src)


# ------------------------------------------------------------------------------------- the masks the driver reads
# ``path.Masks`` in compiled loops, one image per thread: the same masks and counts as ``path.TORCH_MASKS`` (an
# edge is active by the same float32 comparison that ``_count`` stops on), without torch's passes over the batch.
@numba.njit(**JIT)
def _jumps(xs, jh, jv, counts, joint, images):
    """Edges whose two pixels differ, per channel, or in any channel (joint: ``jh``/``jv`` have one channel)."""
    channels, height, width = xs.shape[1:]
    for b in images:
        count = 0
        for c in range(channels):
            g = 0 if joint else c
            for i in range(height):  # plain loops the compiler vectorises; joint ORs each channel into group 0
                for j in range(width - 1):
                    jh[b, g, i, j] = (xs[b, c, i, j + 1] != xs[b, c, i, j]) | (joint and c > 0 and jh[b, g, i, j])
            for i in range(height - 1):
                for j in range(width):
                    jv[b, g, i, j] = (xs[b, c, i + 1, j] != xs[b, c, i, j]) | (joint and c > 0 and jv[b, g, i, j])
        for flat in (jh[b].ravel(), jv[b].ravel()):
            for i in range(flat.size):
                count += flat[i]
        counts[b] = count


_announced = False


def announce_compilation(stream=None) -> bool:
    """Say once per process, before the first compiled call, when numba has no cached build of these kernels on this
    machine: that call compiles them (seconds instead of milliseconds); numba caches the build for later processes.
    Returns whether it said so."""
    global _announced
    if _announced:
        return False
    _announced = True
    from ..projection import numba_cpu as projection

    modules = (sys.modules[__name__], projection)
    kernels = [v for m in modules for v in vars(m).values() if isinstance(v, numba.core.registry.CPUDispatcher)]
    try:
        cold = any(not os.path.exists(kernel._cache._cache_file._index_path) for kernel in kernels)
    except AttributeError:  # a numba that keeps its cache elsewhere: no word rather than a wrong one
        return False
    if cold:
        print("isvs_triton: compiling the CPU kernels with numba (first use here: this call takes seconds; later "
              "processes load them from numba's cache)", file=stream or sys.stderr, flush=True)  # fmt: skip
    return cold


def jumps(xs: torch.Tensor, joint: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``path.jumps_counted`` for a float32 CPU batch (the first of the backend's calls in every ``sparsify``)."""
    announce_compilation()
    b, c, h, w = xs.shape
    groups = 1 if joint else c
    jh, jv = (torch.empty(shape, dtype=torch.bool) for shape in ((b, groups, h, w - 1), (b, groups, h - 1, w)))
    counts = torch.empty(b, dtype=torch.int64)
    arrays = xs.contiguous().numpy(), jh.numpy(), jv.numpy(), counts.numpy()
    in_parallel(lambda images: _jumps(*arrays, joint, images), b)
    return jh, jv, counts


@numba.njit(**JIT)
def _support(zh, zv, jh, jv, ah, av, active_jumps, active_edges, joint, images):
    """Active edges (|z| > 1, or the channel vector's squared norm > 1: joint) and their counts, over the jumps
    ``jh``/``jv`` and over all edges."""
    one = np.float32(1.0)
    for b in images:
        on_jumps = edges = 0
        for z, jump, active in ((zh, jh, ah), (zv, jv, av)):
            if joint:
                for i in range(z.shape[2]):
                    for j in range(z.shape[3]):
                        squares = np.float32(0.0)
                        for c in range(z.shape[1]):
                            squares += z[b, c, i, j] * z[b, c, i, j]
                        on = squares > one
                        active[b, 0, i, j] = on
                        edges += on
                        on_jumps += on & jump[b, 0, i, j]
            else:
                flat, flat_jump, flat_active = z[b].ravel(), jump[b].ravel(), active[b].ravel()
                for i in range(flat.size):
                    on = abs(flat[i]) > one
                    flat_active[i] = on
                    edges += on
                    on_jumps += on & flat_jump[i]
        active_jumps[b], active_edges[b] = on_jumps, edges


def support(zh: torch.Tensor, zv: torch.Tensor, rule: StopRule, joint: bool) -> Support:
    """``path.support_counted`` for a float32 CPU state."""
    b = zh.shape[0]
    ah, av = rule.jumps_h.new_empty(rule.jumps_h.shape), rule.jumps_v.new_empty(rule.jumps_v.shape)
    active_jumps, active_edges = torch.empty(b, dtype=torch.int64), torch.empty(b, dtype=torch.int64)
    arrays = [t.contiguous().numpy() for t in (zh, zv, rule.jumps_h, rule.jumps_v)]
    arrays += [t.numpy() for t in (ah, av, active_jumps, active_edges)]
    in_parallel(lambda images: _support(*arrays, joint, images), b)
    return Support(ah, av, active_jumps, active_edges)


MASKS = Masks(jumps, support)


# ------------------------------------------------------------------------------------------ the events integrator
# The same steps as ``reference.events_path_image``; the solves' dot products may be summed in any order (they are
# reductions the compiler vectorises), so states agree with the torch backend to rounding, not bit for bit.
SUMS = dict(JIT, fastmath={"contract", "reassoc"})


@numba.njit(**JIT)
def _pixel_start(a, c):
    """Where channel c's first pixel lies in a flat array of ``_apply``'s layout (a zero row above and below)."""
    return c * a[0].size + a.shape[2]


@numba.njit(**JIT)
def _chebyshev_pass(current, previous, xs, wh, wv, a, b):
    """One iteration of ``torch_path.chebyshev_steps``: previous <- current + a (current - previous) + b (s x - A
    current), A = I + D^T W D / nu at each pixel's weighted differences to its neighbours. ``current``, ``previous``,
    ``wh`` and ``wv`` (each pixel's right and lower edge weight, already divided by nu) have a zero row above and
    below each channel, (C, H + 2, W); ``xs`` is (C, H, W). The weights are zero past the last column and row, and on
    the zero rows, so every pixel's four neighbours exist and the whole channel is one flat loop over shifted views: a
    neighbour is the same index in another view, which the compiler vectorises (index arithmetic inside the loop, or
    the first and last rows apart, cost 5.8 and 1.5 us against 1.0 at 32x32x3 here)."""
    channels, rows, width = current.shape
    size = (rows - 2) * width
    fv, fp, fx, fh, fg = current.ravel(), previous.ravel(), xs.ravel(), wh.ravel(), wv.ravel()
    for c in range(channels):
        lo = _pixel_start(current, c)
        hi = lo + size
        x0, p0, s0 = fv[lo:hi], fp[lo:hi], fx[c * size : (c + 1) * size]
        right, left = fv[lo + 1 : hi + 1], fv[lo - 1 : hi - 1]
        down, up = fv[lo + width : hi + width], fv[lo - width : hi - width]
        w_right, w_left, w_down, w_up = fh[lo:hi], fh[lo - 1 : hi - 1], fg[lo:hi], fg[lo - width : hi - width]
        for k in range(size):
            x = x0[k]
            o = x + w_right[k] * (x - right[k]) + w_left[k] * (x - left[k]) + w_down[k] * (x - down[k])
            o += w_up[k] * (x - up[k])
            p0[k] = x + a * (x - p0[k]) + b * (s0[k] - o)


@numba.njit(**JIT)
def _solve_beta(beta, xs, wh, wv, p, q, steps):
    """``reference.solve_beta`` on one image, in place, by the iterations ``steps`` ((K, 2): ``chebyshev_steps``);
    p and q are scratch in ``_chebyshev_pass``'s layout whose zero rows are left as they are."""
    channels, size = beta.shape[0], beta[0].size
    fb, fp = beta.ravel(), p.ravel()
    for c in range(channels):  # the current iterate is beta; the previous one is read times a_0 = 0 only
        fp[_pixel_start(p, c) : _pixel_start(p, c) + size] = fb[c * size : (c + 1) * size]
    for k in range(steps.shape[0]):
        _chebyshev_pass(p, q, xs, wh, wv, steps[k, 0], steps[k, 1])
        p, q = q, p
    fp = p.ravel()
    for c in range(channels):
        fb[c * size : (c + 1) * size] = fp[_pixel_start(p, c) : _pixel_start(p, c) + size]


# The events integrator's per-edge passes read one image's arrays flat, channel by channel: edge k of a direction joins
# pixel k to pixel k + offset (1: horizontal, width: vertical), so its two ends are the same index in two shifted views
# of beta, a loop the compiler vectorises. z and the activation times of the horizontal edges are padded to the
# pixels' shape inside the integrator (``_events``): the padding column holds active edges (|z| = 2) that are never
# jumps, so they weigh 0 in every solve, never enter (their time is inf), are never counted, and are never written out.


@numba.njit(**JIT)
def _weights(z, w, offset, inv_nu, joint):
    """w = 1/nu on the inactive edges of one direction, 0 on the active ones (w in ``_apply``'s layout; the entries
    past the direction's last edge are left as they are, zero)."""
    channels, size, stride = w.shape[0], (w.shape[1] - 2) * w.shape[2], z[0].size
    edges = size - offset
    fz, fw = z.ravel(), w.ravel()
    one, zero = np.float32(1.0), np.float32(0.0)
    for k in range(edges):
        if joint:
            squares = zero
            for c in range(channels):
                squares += fz[c * stride + k] * fz[c * stride + k]
            for c in range(channels):
                fw[_pixel_start(w, c) + k] = inv_nu if squares <= one else zero
        else:
            for c in range(channels):
                fw[_pixel_start(w, c) + k] = inv_nu if abs(fz[c * stride + k]) <= one else zero


_BUCKET_BITS = 11  # _select's histogram bins a float by its sign, exponent and two leading mantissa bits
_BUCKETS = 1 << _BUCKET_BITS


@numba.njit(**JIT)
def _hoare(values, lo, hi, k):
    """The k-th smallest (0-based) of values[lo:hi + 1], by Hoare's selection in place."""
    while lo < hi:
        a, b, c = values[lo], values[(lo + hi) // 2], values[hi]
        pivot = max(min(a, b), min(max(a, b), c))  # the median of the three
        i, j = lo, hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return values[k]
    return values[k]


@numba.njit(**JIT)
def _select(values, n, k, buckets):
    """The k-th smallest (0-based) of values[:n], k < n (``values`` and ``buckets``, _BUCKETS long, are scratch): one
    histogram pass over the leading bits of the floats' order-preserving integer keys (log-spaced bins, four per
    octave) finds the bin that holds it, whose few values alone are then selected among. Two passes over n instead of
    a selection over all of them, whose unpredictable comparisons cost three times as much here."""
    keys = values[:n].view(np.uint32)
    shift = 32 - _BUCKET_BITS
    buckets[:] = 0
    for i in range(n):  # a float's key: its bits with the sign flipped, all bits flipped for negatives
        key = keys[i]
        key ^= np.uint32(0xFFFFFFFF) if key >> 31 else np.uint32(0x80000000)
        buckets[key >> shift] += 1
    below, bucket = 0, _BUCKETS // 2  # the non-negative floats' first bucket: the times are rarely negative
    for b in range(_BUCKETS // 2):
        below += buckets[b]
    if below > k:
        below, bucket = 0, 0
    while below + buckets[bucket] <= k:
        below += buckets[bucket]
        bucket += 1
    m = 0
    for i in range(n):  # the bucket's values to the front, in place (m <= i); a branch seldom taken
        key = keys[i]
        flipped = key ^ (np.uint32(0xFFFFFFFF) if key >> 31 else np.uint32(0x80000000))
        if (flipped >> shift) == bucket:
            keys[m] = key
            m += 1
    return _hoare(values, 0, m - 1, k - below)


@numba.njit(**SUMS)
def _counts(z, jump, waiting):
    """(active jumps, finite waiting times) of one channel's edges of one direction: counted apart from the loops that
    write them, whose vectorisation a count inside stops (1.6x slower here)."""
    one, inf = np.float32(1.0), np.float32(np.inf)
    active, finite = np.int32(0), np.int32(0)
    for k in range(z.size):
        active += np.int32(jump[k]) * np.int32(abs(z[k]) > one)
        finite += np.int32(waiting[k] < inf)
    return active, finite


@numba.njit(**JIT)
def _time_to_activate(d, zz, active, inv_nu):
    """An independent edge's time until |z| reaches 1 at the rate d / nu (inf when active; 1 / 0 = inf when d = 0)."""
    sign_d = np.float32(d > 0) - np.float32(d < 0)
    return np.float32(np.inf) if active else (np.float32(1.0) - sign_d * zz) / (abs(d) * inv_nu)


@numba.njit(**JIT)
def _times(beta, z, jump, t, waiting, n, offset, inv_nu, joint):
    """For one edge direction: each inactive edge's time to activate at the rates D beta / nu into t (inf: never;
    active edges inf too), appended to ``waiting`` from n with inf for the edges that are not jumps. Returns (active
    jumps, n, the finite times appended)."""
    channels, size, stride = beta.shape[0], beta[0].size, z[0].size
    edges = size - offset
    fb, fz, ft, fj = beta.ravel(), z.ravel(), t.ravel(), jump.ravel()
    one, zero, inf = np.float32(1.0), np.float32(0.0), np.float32(np.inf)
    count, finite = 0, 0
    if not joint:  # written without branches, so that the loop vectorises
        for c in range(channels):
            near, far = fb[c * size : c * size + edges], fb[c * size + offset : c * size + offset + edges]
            lo, hi = c * stride, c * stride + edges
            zc, tc, jc = fz[lo:hi], ft[lo:hi], fj[lo:hi]
            wait = waiting[n : n + edges]
            for k in range(edges):
                zz = zc[k]
                time = _time_to_activate(far[k] - near[k], zz, abs(zz) > one, inv_nu)
                tc[k] = time
                wait[k] = time if jc[k] else inf
            active, waiting_now = _counts(zc, jc, wait)
            count, finite, n = count + active, finite + waiting_now, n + edges
        return count, n, finite
    for k in range(edges):
        squares, zr, rr = zero, zero, zero
        for c in range(channels):
            rate = (fb[c * size + k + offset] - fb[c * size + k]) * inv_nu
            zz = fz[c * stride + k]
            squares += zz * zz
            zr += zz * rate
            rr += rate * rate
        time = inf
        if np.sqrt(squares) > one:
            count += fj[k]
        elif rr > zero:  # the positive root of rr t^2 + 2 zr t + squares - 1 = 0, without cancellation
            gap = one - squares
            root = np.sqrt(zr * zr + rr * gap)
            time = gap / (zr + root) if zr >= zero else (root - zr) / rr
            finite += fj[k]
        ft[k] = time
        waiting[n + k] = time if fj[k] else inf
    return count, n + edges, finite


@numba.njit(**JIT)
def _correct(beta, start, z, w, dt, lag, jump, t, waiting, n, offset, inv_nu, inv_kappa, floor, joint):
    """For one edge direction, after the solve that ends a step, all of the step's z in one pass: inactive edges move
    by dt at the step's starting rates D start / nu, those whose time is <= dt entering the support where |z|
    reached 1; the others are corrected for the change of their rates over the ``lag`` since the step's mean entry
    time (+ lag (D beta - D start) / nu); then every active edge (entered by the correction too) at its
    quasi-steady size, weight 0; then the next step's times, as ``_times`` (whose result it returns), in the same
    pass where the edges are independent."""
    channels, size, stride = beta.shape[0], beta[0].size, z[0].size
    edges = size - offset
    fb, fs, fz, fw, ft, fj = beta.ravel(), start.ravel(), z.ravel(), w.ravel(), t.ravel(), jump.ravel()
    one, zero, inf = np.float32(1.0), np.float32(0.0), np.float32(np.inf)
    if not joint:
        count, finite = 0, 0
        for c in range(channels):
            lo, hi = c * size, c * size + edges
            near, far, near0, far0 = fb[lo:hi], fb[lo + offset : hi + offset], fs[lo:hi], fs[lo + offset : hi + offset]
            zc, wc = fz[c * stride : c * stride + edges], fw[_pixel_start(w, c) : _pixel_start(w, c) + edges]
            tc, jc, wait = (
                ft[c * stride : c * stride + edges],
                fj[c * stride : c * stride + edges],
                waiting[n : n + edges],
            )
            for k in range(edges):  # without branches, so that the loop vectorises (active edges have t = inf)
                d, d0 = far[k] - near[k], far0[k] - near0[k]
                zz = zc[k]
                rate = d0 * inv_nu
                time = tc[k]
                arrived = zz + time * rate
                sign = np.float32(arrived > zero) - np.float32(arrived < zero)
                moved = sign * (one + max(abs(d0) * inv_kappa, floor)) if time <= dt else zz + dt * rate
                zz = zz if abs(zz) > one else moved
                zz = zz + lag * (d - d0) * inv_nu if abs(zz) <= one else zz
                active = abs(zz) > one
                sign = np.float32(zz > zero) - np.float32(zz < zero)
                zz = sign * (one + max(abs(d) * inv_kappa, floor)) if active else zz
                zc[k] = zz
                wc[k] = zero if active else wc[k]
                time = _time_to_activate(d, zz, active, inv_nu)
                tc[k] = time
                wait[k] = time if jc[k] else inf
            active_now, waiting_now = _counts(zc, jc, wait)
            count, finite, n = count + active_now, finite + waiting_now, n + edges
        return count, n, finite
    for k in range(edges):
        squares = zero
        for c in range(channels):
            squares += fz[c * stride + k] * fz[c * stride + k]
        entering = False
        if np.sqrt(squares) <= one:  # inactive: moves by dt, or to where it reached the unit sphere
            time = ft[k]
            entering = time <= dt
            squares = zero
            for c in range(channels):
                near, zi = c * size + k, c * stride + k
                fz[zi] += (time if entering else dt) * ((fs[near + offset] - fs[near]) * inv_nu)
                squares += fz[zi] * fz[zi]
            if not entering and np.sqrt(squares) <= one:  # still inactive: corrected for the rates' change
                for c in range(channels):
                    near = c * size + k
                    fz[c * stride + k] += (
                        lag * ((fb[near + offset] - fb[near]) - (fs[near + offset] - fs[near])) * inv_nu
                    )
        squares, dd = zero, zero
        for c in range(channels):
            near = c * size + k
            d = fb[near + offset] - fb[near]
            squares += fz[c * stride + k] * fz[c * stride + k]
            dd += d * d
        if entering or np.sqrt(squares) > one:  # active: at its quasi-steady size, weight 0
            factor = (one + max(np.sqrt(dd) * inv_kappa, floor)) / max(np.sqrt(squares), np.float32(1e-30))
            for c in range(channels):
                fz[c * stride + k] *= factor
                fw[_pixel_start(w, c) + k] = zero
    return _times(beta, z, jump, t, waiting, n, offset, inv_nu, joint)


@numba.njit(**SUMS)
def _entry_times(t, dt):
    """The sum of the times t <= dt (in any order) and their number: apart from ``_enter``'s loop, which a float sum
    in order or a count would keep from vectorising."""
    total, count = np.float32(0.0), np.int32(0)
    for k in range(t.size):
        total += t[k] if t[k] <= dt else np.float32(0.0)
        count += np.int32(t[k] <= dt)
    return total, count


@numba.njit(**JIT)
def _enter(t, w, dt, edges, joint):
    """For one edge direction, before the step's solve: the edges whose time is <= dt enter the support, weight 0
    (z moves after the solve, in ``_correct``, which needs the new rates too). Returns (the sum of the entering
    edges' times, their number)."""
    channels, stride = w.shape[0], t[0].size
    ft, fw = t.ravel(), w.ravel()
    zero = np.float32(0.0)
    total, entries = 0.0, 0
    for c in range(1 if joint else channels):
        tc = ft[c * stride : c * stride + edges]
        for j in range(channels if joint else 1):  # joint: one time per edge, a weight per channel
            wc = fw[_pixel_start(w, j if joint else c) : _pixel_start(w, j if joint else c) + edges]
            for k in range(edges):
                wc[k] = zero if tc[k] <= dt else wc[k]
        times, count = _entry_times(tc, dt)
        total, entries = total + times, entries + count
    return total, entries


@numba.njit(**JIT)
def _step(beta, zh, zv, xs, wh, wv, jh, jv, th, tv, waiting, n, finite, count, scratch, inv_nu, inv_kappa, floor,
          steps, joint):  # fmt: skip
    """``reference.event_step`` on one image, in place, from the times ``_times`` left in th, tv and waiting[:n]
    (``finite`` of them finite; zh, th padded, as in ``_events``); leaves the next step's times there and returns
    what ``_times`` would (active jumps, n, finite times)."""
    p, q, start, buckets = scratch
    width = beta.shape[2]
    dt = _select(waiting, n, min(count, finite) - 1, buckets)
    total, entries = _enter(th, wh, dt, beta[0].size - 1, joint)
    total_v, entries_v = _enter(tv, wv, dt, beta[0].size - width, joint)
    lag = np.float32(dt - (total + total_v) / max(entries + entries_v, 1))
    start[:] = beta
    _solve_beta(beta, xs, wh, wv, p, q, steps)
    count, n, finite = _correct(beta, start, zh, wh, dt, lag, jh, th, waiting, 0, 1, inv_nu, inv_kappa, floor, joint)
    count_v, n, finite_v = _correct(
        beta, start, zv, wv, dt, lag, jv, tv, waiting, n, width, inv_nu, inv_kappa, floor, joint
    )
    return count + count_v, n, finite + finite_v


@numba.njit(**JIT)
def _events(beta, zh, zv, out_beta, out_zh, out_zv, out_iterations, xs, jh, jv, need, per_step, limit, iterations,
            max_iter, inv_nu, inv_kappa, floor, steps, joint, noise, images):  # fmt: skip
    """Each of ``images`` takes grid steps until its rule stops it, or until its target lies within one step: that
    shorter last step is written to the out arrays only (``reference.events_path_image``); the out arrays of the
    other images receive their grid state. Images already stopped do not move."""
    channels, height, width = beta.shape[1:]
    for b in images:
        beta_b, zv_b, xs_b = beta[b], zv[b], xs[b]
        zh_b = np.full_like(beta_b, 2.0)  # the horizontal edges padded to the pixels' shape: the note above _weights
        zh_b[:, :, : width - 1] = zh[b]
        jh_b = np.zeros((jh.shape[1], height, width), np.bool_)
        jh_b[:, :, : width - 1] = jh[b]
        halo = (channels, height + 2, width)  # _chebyshev_pass's layout
        wh, wv = np.zeros(halo, beta_b.dtype), np.zeros(halo, beta_b.dtype)
        scratch = (np.zeros(halo, beta_b.dtype), np.zeros(halo, beta_b.dtype), np.empty_like(beta_b),
                   np.empty(_BUCKETS, np.int64))  # fmt: skip
        th, tv = np.empty_like(zh_b), np.empty_like(zv_b)
        waiting = np.empty(zh_b.size + zv_b.size, np.float32)
        _weights(zh_b, wh, 1, inv_nu, joint)
        _weights(zv_b, wv, width, inv_nu, joint)
        if iterations[b] == 0 and not beta_b.any():  # a path not started: beta solved for the empty support
            beta_b[:] = xs_b
            _solve_beta(beta_b, xs_b, wh, wv, scratch[0], scratch[1], steps)
        count, n, finite = _times(beta_b, zh_b, jh_b, th, waiting, 0, 1, inv_nu, joint)
        count_v, n, finite_v = _times(beta_b, zv_b, jv[b], tv, waiting, n, width, inv_nu, joint)
        count, finite = count + count_v, finite + finite_v
        last, remaining = False, 0
        while iterations[b] < max_iter:
            if noise and _residual_squares(beta_b, xs_b) <= limit[b]:
                break
            remaining = need[b] - count
            if remaining <= 0:
                break
            if finite == 0:  # no jump can activate any more: the budget is spent
                iterations[b] = max_iter
                break
            if remaining <= per_step[b]:  # the target lies within this step: a shorter last step, below
                last = True
                break
            count, n, finite = _step(beta_b, zh_b, zv_b, xs_b, wh, wv, jh_b, jv[b], th, tv, waiting, n, finite,
                                     per_step[b], scratch, inv_nu, inv_kappa, floor, steps,
                                     joint)  # fmt: skip
            iterations[b] += 1
        zh[b] = zh_b[:, :, : width - 1]
        out_beta[b], out_zv[b], out_iterations[b] = beta_b, zv_b, iterations[b]
        if last:  # taken from the grid state to the output only: the grid does not move
            _step(out_beta[b], zh_b, out_zv[b], xs_b, wh, wv, jh_b, jv[b], th, tv, waiting, n, finite, remaining,
                  scratch, inv_nu, inv_kappa, floor, steps, joint)  # fmt: skip
            out_iterations[b] += 1
        out_zh[b] = zh_b[:, :, : width - 1]


def _advance_events(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool) -> PathState:
    """``torch_path.advance_events`` in compiled loops; returns the state the outputs are read from."""
    tensors = [t.contiguous() for t in (state.beta, state.zh, state.zv, state.iterations)]
    out = PathState(*(torch.empty_like(t) for t in tensors[:3]), None, torch.empty_like(tensors[3]))
    beta, zh, zv, iterations = (t.numpy() for t in tensors)
    per_step = required_active(cfg.events, rule.jump_count).clamp(min=1).numpy()  # jumps activated per grid step
    f32 = np.float32
    args = (beta, zh, zv, out.beta.numpy(), out.zh.numpy(), out.zv.numpy(), out.iterations.numpy(),
            xs.contiguous().numpy(), rule.jumps_h.contiguous().numpy(), rule.jumps_v.contiguous().numpy(),
            rule.need.numpy(), per_step, rule.limit.numpy(), iterations, cfg.max_iter, f32(1 / cfg.nu),
            f32(1 / cfg.kappa), f32(ACTIVE_FLOOR), np.array(chebyshev_steps(cfg), np.float32), joint,
            rule.has_noise)  # fmt: skip
    in_parallel(lambda images: _events(*args, images), len(beta))
    _copy_back((state.beta, state.zh, state.zv, state.iterations), tensors)
    return out
