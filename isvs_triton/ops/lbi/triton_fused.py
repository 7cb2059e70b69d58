"""Split LBI in Triton: the GPU path of DESIGN.md §2. Two kernels share one tile update, ``_step_tile``:

- ``_lbi_step_kernel``: one launch per iteration, any image size. One program owns a BLOCK_H x BLOCK_W tile of one
  image (every channel in "joint" mode, where the shrinkage needs each edge's channel norm; one channel in
  "independent" mode) and counts the tile's active edges into its image's counter with one atomic add. The new
  state goes to a second set of buffers (ping-pong), since neighbouring tiles read this tile's old beta as their
  halo. Images whose run weight is 0 are copied unchanged, so the host needs no synchronisation to freeze them.
- ``_lbi_persistent_kernel``: one program per image (up to PERSISTENT_MAX_SIDE per channel) walks its tiles and runs
  every iteration until its own stop: no launch and no host check per iteration. Three rotating state buffers and a
  barrier between iterations replace the ping-pong.

The tile update computes the extrapolated point (Nesterov), gamma, the edge residual r = D beta - gamma at the
tile's own edges and at the edges entering from the left and from above, D^T r, and the new z and beta.
Per pixel-iteration, fp32, without momentum: read beta (4 B; its halo comes from L1/L2), z horizontal and vertical
(8 B) and x (4 B), write beta and z (12 B): 28 B. With momentum the previous beta and z are read and written too:
52 B. About 40 flops: bandwidth-bound on any GPU (the roofline is in docs/performance.md).
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import torch
import triton
import triton.language as tl

from ...config import SolverConfig
from . import torch_path
from .torch_path import PathState, count_active


@triton.jit
def _lbi_step_kernel(
    p_beta, p_zh, p_zv, p_pbeta, p_pzh, p_pzv,  # state k: (B, C, H, W), (B, C, H, W-1), (B, C, H-1, W); prev: same
    p_beta_o, p_zh_o, p_zv_o, p_pbeta_o, p_pzh_o, p_pzv_o,  # state k+1, same shapes
    p_xs,  # scale * x (B, C, H, W)
    p_run,  # (B,) fp32: 1 = advance this image, 0 = copy it unchanged
    p_count,  # (B,) int32: active edges of the new state, accumulated by atomics (zeroed by the launcher)
    C, H, W, tiles_w,
    kappa, step_z, step_beta, inv_nu, momentum,
    JOINT: tl.constexpr, MOMENTUM: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    pid_tile, pid_plane = tl.program_id(0), tl.program_id(1)
    if JOINT:
        b, c_first, c_last = pid_plane, 0, C
    else:
        b, c_first, c_last = pid_plane // C, pid_plane % C, pid_plane % C + 1
    i, j = _tile(pid_tile, tiles_w, BLOCK_H, BLOCK_W)
    active = _step_tile(
        p_beta, p_zh, p_zv, p_pbeta, p_pzh, p_pzv, p_beta_o, p_zh_o, p_zv_o, p_pbeta_o, p_pzh_o, p_pzv_o, p_xs,
        b, c_first, c_last, i, j, C, H, W, tl.load(p_run + b), kappa, step_z, step_beta, inv_nu, momentum,
        JOINT, MOMENTUM, BLOCK_H, BLOCK_W, MOMENTUM,
    )  # fmt: skip
    tl.atomic_add(p_count + b, active)


@triton.jit
def _lbi_persistent_kernel(
    p_beta, p_zh, p_zv,  # (3, B, C, H, W), (3, B, C, H, W-1), (3, B, C, H-1, W): slot 0 current, slot 2 previous
    p_xs,  # scale * x (B, C, H, W)
    p_need,  # (B,) int32: active edges at which the image stops
    p_budget,  # (B,) int32: iterations it may still run
    p_iters,  # (B,) int32 out: iterations run
    p_count,  # (B,) int32 out: active edges at the stop
    C, H, W, tiles_h, tiles_w, slot_beta, slot_zh, slot_zv,
    kappa, step_z, step_beta, inv_nu, momentum,
    JOINT: tl.constexpr, MOMENTUM: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    """One program per image runs all its iterations and stops itself: no launch and no host check per iteration.

    The state rotates through three slots (iteration k reads slot k%3 and (k-1)%3, writes (k+1)%3): the tiles of
    the image read their neighbours' values of the previous iteration, so a barrier separates iterations. At the end
    the current state is moved back to slot 0 and the previous one to slot 2.
    """
    b = tl.program_id(0)
    need = tl.load(p_need + b)
    budget = tl.load(p_budget + b)
    count = tl.zeros([], dtype=tl.int32)
    for t in range(0, tiles_h * tiles_w):
        i, j = _tile(t, tiles_w, BLOCK_H, BLOCK_W)
        count += _count_tile(p_zh, p_zv, b, C, H, W, i, j, JOINT)
    k = tl.zeros([], dtype=tl.int32)
    while (count < need) & (k < budget):
        cur, prev, new = k % 3, (k + 2) % 3, (k + 1) % 3
        count = tl.zeros([], dtype=tl.int32)
        for t in range(0, tiles_h * tiles_w):
            i, j = _tile(t, tiles_w, BLOCK_H, BLOCK_W)
            count += _step_tile(
                p_beta + cur * slot_beta, p_zh + cur * slot_zh, p_zv + cur * slot_zv,
                p_beta + prev * slot_beta, p_zh + prev * slot_zh, p_zv + prev * slot_zv,
                p_beta + new * slot_beta, p_zh + new * slot_zh, p_zv + new * slot_zv,
                p_beta, p_zh, p_zv, p_xs,
                b, 0, C, i, j, C, H, W, 1.0, kappa, step_z, step_beta, inv_nu, momentum,
                JOINT, MOMENTUM, BLOCK_H, BLOCK_W, False,
            )  # fmt: skip
        tl.debug_barrier()
        k += 1
    cur, prev = k % 3, (k + 2) % 3
    for t in range(0, tiles_h * tiles_w):
        i, j = _tile(t, tiles_w, BLOCK_H, BLOCK_W)
        for c in range(0, C):
            o_p = ((b * C + c) * H + i) * W + j
            o_h = ((b * C + c) * H + i) * (W - 1) + j
            o_v = ((b * C + c) * (H - 1) + i) * W + j
            m_p, m_h, m_v = (i < H) & (j < W), (i < H) & (j < W - 1), (i < H - 1) & (j < W)
            beta = tl.load(p_beta + cur * slot_beta + o_p, mask=m_p)
            zh = tl.load(p_zh + cur * slot_zh + o_h, mask=m_h)
            zv = tl.load(p_zv + cur * slot_zv + o_v, mask=m_v)
            pbeta = tl.load(p_beta + prev * slot_beta + o_p, mask=m_p)
            pzh = tl.load(p_zh + prev * slot_zh + o_h, mask=m_h)
            pzv = tl.load(p_zv + prev * slot_zv + o_v, mask=m_v)
            tl.debug_barrier()  # every thread has read its values before any slot is overwritten
            tl.store(p_beta + o_p, beta, mask=m_p)
            tl.store(p_zh + o_h, zh, mask=m_h)
            tl.store(p_zv + o_v, zv, mask=m_v)
            tl.store(p_beta + 2 * slot_beta + o_p, pbeta, mask=m_p)
            tl.store(p_zh + 2 * slot_zh + o_h, pzh, mask=m_h)
            tl.store(p_zv + 2 * slot_zv + o_v, pzv, mask=m_v)
            tl.debug_barrier()
    tl.store(p_iters + b, k)
    tl.store(p_count + b, count)


@triton.jit
def _tile(t, tiles_w, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Row and column indices, (BLOCK_H, 1) and (1, BLOCK_W), of tile ``t`` in a grid ``tiles_w`` tiles wide."""
    i = (t // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    j = (t % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    return i, j


@triton.jit
def _count_tile(p_zh, p_zv, b, C, H, W, i, j, JOINT: tl.constexpr):
    """Active edges of the state in slot 0 at the pixels (i, j) of image b."""
    m_h, m_v = (i < H) & (j < W - 1), (i < H - 1) & (j < W)
    n_h = tl.zeros(i.shape, dtype=tl.float32) + tl.zeros(j.shape, dtype=tl.float32)
    n_v = n_h
    active = tl.zeros(n_h.shape, dtype=tl.int32)
    for c in range(0, C):
        z_h = tl.load(p_zh + ((b * C + c) * H + i) * (W - 1) + j, mask=m_h, other=0.0)
        z_v = tl.load(p_zv + ((b * C + c) * (H - 1) + i) * W + j, mask=m_v, other=0.0)
        if JOINT:
            n_h += z_h * z_h
            n_v += z_v * z_v
        else:
            active += (tl.abs(z_h) > 1.0).to(tl.int32) + (tl.abs(z_v) > 1.0).to(tl.int32)
    if JOINT:
        active = (n_h > 1.0).to(tl.int32) + (n_v > 1.0).to(tl.int32)
    return tl.sum(tl.sum(active, axis=1), axis=0)


@triton.jit
def _step_tile(
    p_beta, p_zh, p_zv, p_pbeta, p_pzh, p_pzv, p_beta_o, p_zh_o, p_zv_o, p_pbeta_o, p_pzh_o, p_pzv_o, p_xs,
    b, c_first, c_last, i, j, C, H, W, run, kappa, step_z, step_beta, inv_nu, momentum,
    JOINT: tl.constexpr, MOMENTUM: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, STORE_PREV: tl.constexpr,
):  # fmt: skip
    """One Split LBI update of the pixels (i, j) of image b, channels [c_first, c_last); returns its active edges.

    STORE_PREV: also write the new "previous" state (momentum with ping-pong buffers; the persistent kernel rotates
    three buffers instead, where the current state simply becomes the previous one)."""
    m_pix = (i < H) & (j < W)
    m_h = (i < H) & (j < W - 1)  # edge (i, j)-(i, j+1) exists
    m_hl = (i < H) & (j >= 1) & (j < W)  # edge (i, j-1)-(i, j)
    m_v = (i < H - 1) & (j < W)  # edge (i, j)-(i+1, j)
    m_vu = (i >= 1) & (i < H) & (j < W)  # edge (i-1, j)-(i, j)
    mu = run * momentum

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
    active = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.int32)
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
        z_h = y_h + r_h * (step_z * run)
        z_v = y_v + r_v * (step_z * run)
        beta = yb + ((yb - tl.load(p_xs + o_p, mask=m_pix, other=0.0)) + grad_t * inv_nu) * (step_beta * run)
        tl.store(p_beta_o + o_p, beta, mask=m_pix)
        tl.store(p_zh_o + o_h, z_h, mask=m_h)
        tl.store(p_zv_o + o_v, z_v, mask=m_v)
        if STORE_PREV:
            # previous <- current for advancing images; a frozen image keeps its previous state
            keep = run == 0.0
            tl.store(p_pbeta_o + o_p, tl.where(keep, tl.load(p_pbeta + o_p, mask=m_pix), _cur(p_beta, o_p, m_pix)),
                     mask=m_pix)  # fmt: skip
            tl.store(p_pzh_o + o_h, tl.where(keep, tl.load(p_pzh + o_h, mask=m_h), _cur(p_zh, o_h, m_h)), mask=m_h)
            tl.store(p_pzv_o + o_v, tl.where(keep, tl.load(p_pzv + o_v, mask=m_v), _cur(p_zv, o_v, m_v)), mask=m_v)
        if JOINT:
            n_h += z_h * z_h
            n_v += z_v * z_v
        else:
            active += (m_h & (tl.abs(z_h) > 1.0)).to(tl.int32) + (m_v & (tl.abs(z_v) > 1.0)).to(tl.int32)
    if JOINT:
        active = (m_h & (n_h > 1.0)).to(tl.int32) + (m_v & (n_v > 1.0)).to(tl.int32)
    return tl.sum(tl.sum(active, axis=1), axis=0)


@triton.jit
def _cur(p, offset, mask):
    return tl.load(p + offset, mask=mask, other=0.0)


@triton.jit
def _extrapolate(p, p_prev, offset, mask, mu, MOMENTUM: tl.constexpr):
    """y = v + mu (v - v_prev) at ``offset`` (0 outside ``mask``); v itself without momentum."""
    v = tl.load(p + offset, mask=mask, other=0.0)
    if MOMENTUM:
        v = v + (v - tl.load(p_prev + offset, mask=mask, other=0.0)) * mu
    return v


# Launch configuration when no tuned one is known: 16 x 32 = 512 pixels per program, 4 warps.
DEFAULT_LAUNCH = {"BLOCK_H": 16, "BLOCK_W": 32, "num_warps": 4}
BLOCK = (DEFAULT_LAUNCH["BLOCK_H"], DEFAULT_LAUNCH["BLOCK_W"])
# tools/autotune.py writes <gpu name>.json here; ISVS_CONFIG_DIR points elsewhere (docs/envs in README)
CONFIG_DIR = Path(os.environ.get("ISVS_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs"))


def config_key(height: int, width: int, joint: bool, momentum: bool) -> str:
    """Key of a tuned launch configuration: image size and the kernel's compile-time flags, never the batch."""
    return f"{height}x{width}:{'joint' if joint else 'independent'}:{'momentum' if momentum else 'plain'}"


def config_file(device_name: str) -> Path:
    return CONFIG_DIR / (re.sub(r"[^A-Za-z0-9]+", "_", device_name).strip("_") + ".json")


@functools.lru_cache(maxsize=None)
def tuned_configs(device_name: str) -> dict:
    """The tuned launch configurations of one GPU model ({} when it has not been tuned)."""
    path = config_file(device_name)
    return json.loads(path.read_text()).get("lbi_step", {}) if path.exists() else {}


def launch_config(height: int, width: int, joint: bool, momentum: bool, device: torch.device) -> dict:
    if device.type != "cuda":
        return DEFAULT_LAUNCH
    tuned = tuned_configs(torch.cuda.get_device_name(device))
    return tuned.get(config_key(height, width, joint, momentum), DEFAULT_LAUNCH)


def _arg(t: torch.Tensor) -> torch.Tensor:
    # a tensor with no elements (W = 1 has no horizontal edges) is never read or written, but needs a valid pointer
    return t if t.numel() else t.new_empty(1)


class TritonStepper:
    """Advances a working set with the fused kernel; keeps the second (ping-pong) state and the edge counters."""

    def __init__(self, work: PathState, cfg: SolverConfig, joint: bool):
        self.spare = PathState(
            torch.empty_like(work.beta), torch.empty_like(work.zh), torch.empty_like(work.zv),
            tuple(torch.empty_like(t) for t in work.prev) if work.prev is not None else None, work.iterations,
        )  # fmt: skip
        self.count = torch.zeros(work.beta.shape[0], dtype=torch.int32, device=work.beta.device)
        self.cfg, self.joint = cfg, joint

    def __call__(self, work: PathState, xs: torch.Tensor, run: torch.Tensor) -> torch.Tensor:
        """One iteration of every image whose ``run`` (A,) float is 1; returns the new active-edge counts (A,)."""
        lbi_step(work, self.spare, xs, run, self.count, self.cfg, self.joint)
        # the new state is in ``spare``: swap the buffers so that ``work`` holds it
        for name in ("beta", "zh", "zv", "prev"):
            new, old = getattr(self.spare, name), getattr(work, name)
            setattr(work, name, new)
            setattr(self.spare, name, old)
        return self.count


def lbi_step(state: PathState, out: PathState, xs: torch.Tensor, run: torch.Tensor, count: torch.Tensor,
             cfg: SolverConfig, joint: bool, launch: dict | None = None) -> None:  # fmt: skip
    """Launch one fused iteration: ``state`` -> ``out``; ``count`` (B,) int32 receives the new active edges.

    ``launch`` ({"BLOCK_H", "BLOCK_W", "num_warps"}) defaults to the tuned configuration of this GPU and size.
    """
    batch, channels, height, width = state.beta.shape
    launch = launch or launch_config(height, width, joint, state.prev is not None, state.beta.device)
    block_h, block_w = launch["BLOCK_H"], launch["BLOCK_W"]
    tiles_w = triton.cdiv(width, block_w)
    grid = (triton.cdiv(height, block_h) * tiles_w, batch if joint else batch * channels)
    prev = state.prev or (state.beta, state.zh, state.zv)
    prev_out = out.prev or (out.beta, out.zh, out.zv)
    count.zero_()
    _lbi_step_kernel[grid](
        *(_arg(t) for t in (state.beta, state.zh, state.zv, *prev)),
        *(_arg(t) for t in (out.beta, out.zh, out.zv, *prev_out)),
        xs, run, count,
        channels, height, width, tiles_w,
        cfg.kappa, cfg.alpha / cfg.nu, -(cfg.kappa * cfg.alpha), 1.0 / cfg.nu, cfg.momentum,
        JOINT=joint, MOMENTUM=state.prev is not None, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=launch["num_warps"],
    )  # fmt: skip


PERSISTENT_MAX_SIDE = 64  # images up to this size per channel run in the persistent kernel, larger ones per iteration


def advance(state: PathState, xs: torch.Tensor, need: torch.Tensor, cfg: SolverConfig, joint: bool) -> None:
    """``torch_path.advance`` on the kernels: one persistent launch for small images, a fused launch per iteration
    (driven by the torch path's loop) for the others."""
    height, width = state.beta.shape[-2:]
    if use_persistent(height, width, joint, state.prev is not None, state.beta.device):
        advance_persistent(state, xs, need, cfg, joint)
    else:
        torch_path.advance(state, xs, need, cfg, joint, stepper=TritonStepper)


def use_persistent(height: int, width: int, joint: bool, momentum: bool, device: torch.device) -> bool:
    """All iterations in one launch (persistent) or one launch per iteration: tuned per GPU where known."""
    if max(height, width) > PERSISTENT_MAX_SIDE:
        return False
    return launch_config(height, width, joint, momentum, device).get("persistent", True)


def advance_persistent(state: PathState, xs: torch.Tensor, need: torch.Tensor, cfg: SolverConfig, joint: bool,
                       launch: dict | None = None) -> None:  # fmt: skip
    """Run every image to its stop in one launch of ``_lbi_persistent_kernel`` (one program per image)."""
    running = (count_active(state.zh, state.zv, joint) < need) & (state.iterations < cfg.max_iter)
    index = running.nonzero().squeeze(1)
    if not index.numel():
        return
    momentum = state.prev is not None
    slots = []
    for cur, prev in zip((state.beta, state.zh, state.zv), state.prev or (None, None, None)):
        slot = cur.new_empty(3, index.numel(), *cur.shape[1:])
        slot[0] = cur[index]
        slot[2] = prev[index] if momentum else slot[0]
        slots.append(slot)
    height, width = state.beta.shape[-2:]
    launch = launch or launch_config(height, width, joint, momentum, state.beta.device)
    block_h, block_w = launch["BLOCK_H"], launch["BLOCK_W"]
    iters = torch.zeros(index.numel(), dtype=torch.int32, device=xs.device)
    count = torch.zeros_like(iters)
    _lbi_persistent_kernel[(index.numel(),)](
        *(_arg(t) for t in slots), xs.index_select(0, index),
        need.index_select(0, index).to(torch.int32), (cfg.max_iter - state.iterations[index]).to(torch.int32),
        iters, count,
        state.beta.shape[1], height, width, triton.cdiv(height, block_h), triton.cdiv(width, block_w),
        *(t[0].numel() for t in slots),
        cfg.kappa, cfg.alpha / cfg.nu, -(cfg.kappa * cfg.alpha), 1.0 / cfg.nu, cfg.momentum,
        JOINT=joint, MOMENTUM=momentum, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=launch["num_warps"],
    )  # fmt: skip
    for dst, slot in zip((state.beta, state.zh, state.zv), slots):
        dst[index] = slot[0]
    if momentum:
        for dst, slot in zip(state.prev, slots):
            dst[index] = slot[2]
    state.iterations[index] += iters.to(state.iterations.dtype)
