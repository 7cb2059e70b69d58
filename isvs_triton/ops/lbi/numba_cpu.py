"""Split LBI on the CPU with numba: one image per thread, every iteration of an image while its state stays in cache.

The ``torch`` backend runs the whole batch through ~36 eager passes per iteration: on a CPU its state leaves the
cache between passes, so it is bound by memory traffic. Here compiled loops run an image's iterations to its own
stop (count after each iteration, no host checks, no working-set compaction), images spread over threads (the loops
release the GIL). Same equations and float32 operations in the same order as ``torch_path._step`` (README.md beside
this file); multiply-adds may be fused, as in torch's compiled CPU kernels. ``advance`` is this backend's part of the
shared driver (``path.Advance``).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ...config import SolverConfig
from ..parallel import in_parallel
from .path import PathState, StopRule

JIT = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})


@numba.njit(**JIT)
def _extrapolate(cur, prev, tmp, mu):
    """y = cur + mu (cur - prev) written into cur; prev <- cur (the state one iteration back)."""
    flat_cur, flat_prev, flat_tmp = cur.ravel(), prev.ravel(), tmp.ravel()
    for i in range(flat_cur.size):
        flat_tmp[i] = flat_cur[i] - flat_prev[i]
        flat_prev[i] = flat_cur[i]
        flat_cur[i] = flat_cur[i] + flat_tmp[i] * mu


@numba.njit(**JIT)
def _residual(beta, zh, zv, rh, rv, kappa, joint):
    """r = D beta - kappa shrink(z), for both edge directions."""
    channels, height, width = beta.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    if not joint:
        for c in range(channels):
            for i in range(height):
                for j in range(width - 1):
                    z = zh[c, i, j]
                    gamma = (z - min(max(z, -one), one)) * kappa
                    rh[c, i, j] = (beta[c, i, j + 1] - beta[c, i, j]) - gamma
            for i in range(height - 1):
                for j in range(width):
                    z = zv[c, i, j]
                    gamma = (z - min(max(z, -one), one)) * kappa
                    rv[c, i, j] = (beta[c, i + 1, j] - beta[c, i, j]) - gamma
        return
    for i in range(height):
        for j in range(width - 1):
            squares = zero
            for c in range(channels):
                squares += zh[c, i, j] * zh[c, i, j]
            factor = max(one - one / np.sqrt(squares), zero)  # 1/sqrt(0) = inf -> factor 0
            for c in range(channels):
                rh[c, i, j] = (beta[c, i, j + 1] - beta[c, i, j]) - zh[c, i, j] * factor * kappa
    for i in range(height - 1):
        for j in range(width):
            squares = zero
            for c in range(channels):
                squares += zv[c, i, j] * zv[c, i, j]
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
        tmp = np.empty_like(beta[b])
        while True:
            if momentum:  # tmp, rh and rv double as scratch for the three extrapolations, tmp then holds D^T r
                _extrapolate(beta[b], pbeta[b], tmp, mu)
                _extrapolate(zh[b], pzh[b], rh, mu)
                _extrapolate(zv[b], pzv[b], rv, mu)
            _residual(beta[b], zh[b], zv[b], rh, rv, kappa, joint)
            count = _update(beta[b], zh[b], zv[b], rh, rv, xs[b], tmp, jh[b], jv[b], step_z, nu, step_beta, joint)
            if joint:
                count = _count(zh[b], zv[b], jh[b], jv[b], joint)
            iterations[b] += 1
            if count >= need[b] or iterations[b] >= max_iter:
                break
            if noise and _residual_squares(beta[b], xs[b]) <= limit[b]:
                break


def advance(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool) -> None:
    """``path.Advance`` in compiled loops: float32 CPU tensors, updated in place, images spread over threads."""
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
    for dst, src in zip((*state.tensors(), state.iterations), tensors):
        if dst.data_ptr() != src.data_ptr():
            dst.copy_(src)
