"""Split LBI on the CPU with numba: one image per thread, every iteration of an image while its state stays in cache.

The ``torch`` backend runs the whole batch through ~36 eager passes per iteration: on a CPU its state leaves the
cache between passes, so it is bound by memory traffic. Here compiled loops run an image's iterations to its own
stop (count after each iteration, no host checks, no working-set compaction), images spread over threads (the loops
release the GIL). Same equations and float32 operations in the same order as ``torch_path._step`` (README.md beside
this file); multiply-adds may be fused, as in torch's compiled CPU kernels. ``advance`` has the contract of
``torch_path.advance``.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ...config import SolverConfig
from ..parallel import in_parallel
from .torch_path import PathState

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
def _update(beta, zh, zv, rh, rv, xs, g, step_z, nu, step_beta):
    """z += (alpha/nu) r; beta += -(kappa alpha) ((beta - s x) + D^T r / nu).

    D^T r is summed into ``g`` in the four passes of torch_path (same order, so the same rounding); each pass is a
    plain loop that the compiler vectorises, where one pass with a branch per neighbour would not be."""
    channels, height, width = beta.shape
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
                zh[c, i, j] = zh[c, i, j] + rh[c, i, j] * step_z
        for i in range(height - 1):
            for j in range(width):
                zv[c, i, j] = zv[c, i, j] + rv[c, i, j] * step_z


@numba.njit(**JIT)
def _count(zh, zv, joint):
    """Active edges: |z| > 1 per channel, or the channel vector's squared norm > 1 (joint)."""
    channels = zh.shape[0]
    one = np.float32(1.0)
    count = 0
    if not joint:
        for z in (zh, zv):
            flat = z.ravel()
            for i in range(flat.size):
                count += abs(flat[i]) > one
        return count
    for z in (zh, zv):
        for i in range(z.shape[1]):
            for j in range(z.shape[2]):
                squares = np.float32(0.0)
                for c in range(channels):
                    squares += z[c, i, j] * z[c, i, j]
                count += squares > one
    return count


@numba.njit(**JIT)
def _advance(beta, zh, zv, pbeta, pzh, pzv, xs, need, iterations, max_iter, kappa, step_z, nu, step_beta, mu,
             joint, momentum, images):  # fmt: skip
    """Each of ``images`` runs until its count reaches ``need`` or its iterations ``max_iter``, one after another."""
    for b in images:
        if _count(zh[b], zv[b], joint) >= need[b] or iterations[b] >= max_iter:
            continue
        rh, rv = np.empty_like(zh[b]), np.empty_like(zv[b])
        tmp = np.empty_like(beta[b])
        while True:
            if momentum:  # tmp, rh and rv double as scratch for the three extrapolations, tmp then holds D^T r
                _extrapolate(beta[b], pbeta[b], tmp, mu)
                _extrapolate(zh[b], pzh[b], rh, mu)
                _extrapolate(zv[b], pzv[b], rv, mu)
            _residual(beta[b], zh[b], zv[b], rh, rv, kappa, joint)
            _update(beta[b], zh[b], zv[b], rh, rv, xs[b], tmp, step_z, nu, step_beta)
            iterations[b] += 1
            if _count(zh[b], zv[b], joint) >= need[b] or iterations[b] >= max_iter:
                break


def advance(state: PathState, xs: torch.Tensor, need: torch.Tensor, cfg: SolverConfig, joint: bool) -> None:
    """``torch_path.advance`` in compiled loops: float32 CPU tensors, updated in place, images spread over threads."""
    momentum = state.prev is not None
    tensors = [t.contiguous() for t in (*state.tensors(), state.iterations)]  # views of the state where possible
    arrays = [t.numpy() for t in tensors]
    beta, zh, zv = arrays[:3]
    pbeta, pzh, pzv = arrays[3:6] if momentum else (beta, zh, zv)
    f32 = np.float32
    constants = (cfg.max_iter, f32(cfg.kappa), f32(cfg.alpha / cfg.nu), f32(cfg.nu), f32(-(cfg.kappa * cfg.alpha)),
                 f32(cfg.momentum), joint, momentum)  # fmt: skip
    args = (beta, zh, zv, pbeta, pzh, pzv, xs.contiguous().numpy(), need.numpy(), arrays[-1], *constants)
    in_parallel(lambda images: _advance(*args, images), len(beta))
    for dst, src in zip((*state.tensors(), state.iterations), tensors):
        if dst.data_ptr() != src.data_ptr():
            dst.copy_(src)
