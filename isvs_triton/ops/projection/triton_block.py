"""Sparse projection in Triton: block connected components, atomic region sums, gather of the means.

1. ``_tile_label_kernel``: one program per BLOCK_H x BLOCK_W tile of one (image, segmentation) plane labels the tile
   on its own: every pixel starts with its global index, then takes the smallest label among itself and its
   neighbours across inactive edges inside the tile, and jumps to its label's label, until nothing changes
   (a barrier between rounds; the labels live in global memory, hot in L1).
2. ``_merge_kernel``: across tile borders, every inactive edge joins its two ends' sets by union-find (find each
   end's root, hook the larger root under the smaller with ``atomic_min``; a root that another edge hooked meanwhile
   returns its new parent, and the union goes on from there), then ``_flatten_kernel`` points every pixel at its
   root. Roots only move under smaller indices of their own component, so every pixel ends labelled by the smallest
   index of its region: in a fixed sequence of launches, with nothing read back by the host (no rounds to check,
   so the call can be captured in a CUDA graph).
3. ``_region_sum_kernel``: sums and counts per (region, channel), one atomic per run of equal regions in a block
   (a segmented scan adds up the run first); ``_region_mean_kernel``: the gather.

Bytes per pixel: the supports (2 B), labels (4 B written, ~12 B read over the merge and the flatten), values and
output (8 B), the sums.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_H, BLOCK_W = 16, 32
BLOCK = 1024  # pixels per program of the element-wise kernels
# Every atomic here is read only after its kernel has ended (by the next launch or the host), so it needs no
# ordering: Triton's default, acquire-release, makes each one wait for its own round trip to memory.
RELAXED: tl.constexpr = tl.constexpr("relaxed")


@triton.jit
def _tile_label_kernel(
    p_label,  # (P, H, W) int32: out, global pixel index of the smallest pixel reachable inside the tile
    p_ah, p_av,  # (P, H, W-1), (P, H-1, W) int8: 1 = active edge (a cut)
    H, W, tiles_w,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    pid_tile, plane = tl.program_id(0), tl.program_id(1)
    i0, j0 = (pid_tile // tiles_w) * BLOCK_H, (pid_tile % tiles_w) * BLOCK_W
    i = i0 + tl.arange(0, BLOCK_H)[:, None]
    j = j0 + tl.arange(0, BLOCK_W)[None, :]
    m_pix = (i < H) & (j < W)
    o_pix = (plane * H + i) * W + j
    # inactive edges that stay inside the tile (to the right, left, below, above)
    o_h = (plane * H + i) * (W - 1) + j
    o_v = (plane * (H - 1) + i) * W + j
    m_r = m_pix & (j < W - 1) & (j + 1 < j0 + BLOCK_W)
    m_l = m_pix & (j >= 1) & (j - 1 >= j0)
    m_d = m_pix & (i < H - 1) & (i + 1 < i0 + BLOCK_H)
    m_u = m_pix & (i >= 1) & (i - 1 >= i0)
    m_r = m_r & (tl.load(p_ah + o_h, mask=m_r, other=1) == 0)
    m_l = m_l & (tl.load(p_ah + o_h - 1, mask=m_l, other=1) == 0)
    m_d = m_d & (tl.load(p_av + o_v, mask=m_d, other=1) == 0)
    m_u = m_u & (tl.load(p_av + o_v - W, mask=m_u, other=1) == 0)
    label = o_pix.to(tl.int32)
    tl.store(p_label + o_pix, label, mask=m_pix)
    tl.debug_barrier()
    changed = tl.zeros([], dtype=tl.int32) + 1
    while changed > 0:
        best = label
        best = tl.minimum(best, tl.load(p_label + o_pix + 1, mask=m_r, other=2147483647))
        best = tl.minimum(best, tl.load(p_label + o_pix - 1, mask=m_l, other=2147483647))
        best = tl.minimum(best, tl.load(p_label + o_pix + W, mask=m_d, other=2147483647))
        best = tl.minimum(best, tl.load(p_label + o_pix - W, mask=m_u, other=2147483647))
        tl.debug_barrier()
        tl.store(p_label + o_pix, best, mask=m_pix)
        tl.debug_barrier()
        # pointer jump: the pixel named by my label carries a label at least as small, in the same region
        best = tl.load(p_label + best, mask=m_pix, other=0)
        tl.debug_barrier()
        tl.store(p_label + o_pix, best, mask=m_pix)
        tl.debug_barrier()
        changed = tl.sum(tl.sum((m_pix & (best != label)).to(tl.int32), axis=1), axis=0)
        label = best


@triton.jit
def _root(p_label, x, todo):
    """Each lane's root (the pixel whose label is itself) from pixel ``x``, for the lanes ``todo``; labels strictly
    decrease along the way, so the walk ends even on labels another program is lowering meanwhile."""
    parent = tl.load(p_label + x, mask=todo, other=0)
    todo = todo & (parent != x)
    while tl.sum(todo.to(tl.int32), axis=0) > 0:
        x = tl.where(todo, parent, x)
        parent = tl.load(p_label + x, mask=todo, other=0)
        todo = todo & (parent != x)
    return x


@triton.jit
def _union(p_label, a, b, todo):
    """Joins the sets of pixels ``a`` and ``b`` on the lanes ``todo``: the larger root hangs under the smaller. The
    atomic returns what the larger root held: itself (it was a root: done), or the parent another union gave it
    meanwhile (which the minimum may just have cut off): then the union goes on between that parent and the smaller
    root."""
    a = _root(p_label, a, todo)
    b = _root(p_label, b, todo)
    todo = todo & (a != b)
    while tl.sum(todo.to(tl.int32), axis=0) > 0:
        lo, hi = tl.minimum(a, b), tl.maximum(a, b)
        old = tl.atomic_min(p_label + hi, lo, mask=todo, sem=RELAXED)
        todo = todo & (old != hi)
        a = _root(p_label, tl.where(todo, old, a), todo)
        b = _root(p_label, lo, todo)
        todo = todo & (a != b)


@triton.jit
def _merge_kernel(p_label, p_ah, p_av, H, W, n, BLOCK: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Every inactive edge across a tile border (to the right of a tile's last column, below its last row) joins the
    sets of its two pixels."""
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    plane, rem = o // (H * W), o % (H * W)
    i, j = rem // W, rem % W
    m_r = m & (j < W - 1) & (j % BLOCK_W == BLOCK_W - 1)
    m_d = m & (i < H - 1) & (i % BLOCK_H == BLOCK_H - 1)
    m_r = m_r & (tl.load(p_ah + (plane * H + i) * (W - 1) + j, mask=m_r, other=1) == 0)
    m_d = m_d & (tl.load(p_av + (plane * (H - 1) + i) * W + j, mask=m_d, other=1) == 0)
    pixel = o.to(tl.int32)
    _union(p_label, pixel, pixel + 1, m_r)
    _union(p_label, pixel, pixel + W, m_d)


@triton.jit
def _flatten_kernel(p_label, n, BLOCK: tl.constexpr):
    """Every pixel labelled by its root (after the merge: the smallest index of its region)."""
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    tl.store(p_label + o, _root(p_label, o.to(tl.int32), m), mask=m)


@triton.jit
def _segmented_add(run1, total1, count1, run2, total2, count2):
    # (run start flag, sum, count) pairs: a start on the right discards what came before it (associative)
    return run1 | run2, tl.where(run2 != 0, total2, total1 + total2), tl.where(run2 != 0, count2, count1 + count2)


@triton.jit
def _region_key(p_label, o, m, C, G, HW):
    """The (region, channel) sum slot of flat pixel ``o`` of (B, C, H, W), -1 where ``m`` is off; and whether ``o``
    is the root pixel of its region (counted once per region: at channel 0 when the channels share a segmentation)."""
    b, c, p = o // (C * HW), (o // HW) % C, o % HW
    shared = G != C
    plane = b * G + tl.where(shared, 0, c)
    label = tl.load(p_label + plane * HW + p, mask=m, other=-1)
    key = tl.where(m, tl.where(shared, label * C + c, label), -1)
    return key, m & (label == plane * HW + p) & (tl.where(shared, c, 0) == 0)


@triton.jit
def _region_sum_kernel(p_values, p_label, p_sums, p_counts, p_regions, C, G, HW, n, BLOCK: tl.constexpr):
    """Per pixel value (B, C, H, W): add it to its (region, channel) sum; count regions at their root pixels.

    Neighbouring pixels of a row mostly share a region: a segmented scan first adds up each run of equal keys inside
    the block, so that one atomic per run (not per pixel) reaches the sums. Per pixel, the atomics of one large
    region all queue on one address (measured on an H100: a quarter of the GPU time of a 224 px batch)."""
    start = tl.program_id(0) * BLOCK
    o = start + tl.arange(0, BLOCK)  # over B * C * H * W
    m = o < n
    key, is_root = _region_key(p_label, o, m, C, G, HW)
    before, _ = _region_key(p_label, o - 1, m & (o > start), C, G, HW)  # -1 at the block's first pixel
    after, _ = _region_key(p_label, o + 1, (o + 1 < n) & (o + 1 < start + BLOCK), C, G, HW)
    run_start = (key != before).to(tl.int32)
    _, total, count = tl.associative_scan(
        (run_start, tl.load(p_values + o, mask=m, other=0.0), m.to(tl.int32)), 0, _segmented_add
    )
    run_end = m & (key != after)
    tl.atomic_add(p_sums + key, total, mask=run_end, sem=RELAXED)
    tl.atomic_add(p_counts + key, count, mask=run_end, sem=RELAXED)
    tl.atomic_add(p_regions + o // (C * HW), tl.full([BLOCK], 1, tl.int32), mask=is_root, sem=RELAXED)


@triton.jit
def _region_mean_kernel(p_out, p_label, p_sums, p_counts, C, G, HW, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = o < n
    key, _ = _region_key(p_label, o, m, C, G, HW)
    total = tl.load(p_sums + key, mask=m, other=0.0)
    count = tl.load(p_counts + key, mask=m, other=1)
    tl.store(p_out + o, total / count.to(tl.float32), mask=m)


def _edges(active: torch.Tensor) -> torch.Tensor:
    # int8 supports; an empty one (no edges in that direction) still needs a valid pointer
    return active.to(torch.int8).contiguous() if active.numel() else torch.ones(1, dtype=torch.int8,
                                                                                device=active.device)  # fmt: skip


def segment(active_h: torch.Tensor, active_v: torch.Tensor) -> torch.Tensor:
    """Labels (B, G, H, W) int32: the global index of the smallest pixel of each pixel's region."""
    batch, groups, height, width = active_h.shape[0], active_h.shape[1], active_v.shape[2] + 1, active_h.shape[3] + 1
    planes, n = batch * groups, batch * groups * height * width
    if n >= 2**31:
        raise ValueError(f"the Triton projection labels pixels in int32: {n} pixels is too many for one call")
    label = torch.empty(n, dtype=torch.int32, device=active_h.device)
    ah, av = _edges(active_h), _edges(active_v)
    tiles_w = triton.cdiv(width, BLOCK_W)
    _tile_label_kernel[(triton.cdiv(height, BLOCK_H) * tiles_w, planes)](
        label, ah, av, height, width, tiles_w, BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W
    )
    grid = (triton.cdiv(n, BLOCK),)
    _merge_kernel[grid](label, ah, av, height, width, n, BLOCK=BLOCK, BLOCK_H=BLOCK_H, BLOCK_W=BLOCK_W)
    _flatten_kernel[grid](label, n, BLOCK=BLOCK)
    return label.view(batch, groups, height, width)


def project(values: torch.Tensor, active_h: torch.Tensor, active_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``projection.torch_path.project``: region means of ``values`` (B, C, H, W) float32 and the
    number of regions per image."""
    batch, channels, height, width = values.shape
    groups = active_h.shape[1]
    label = segment(active_h, active_v)
    n = values.numel()
    if n >= 2**31:
        raise ValueError(f"the Triton projection indexes values in int32: {n} values is too many for one call")
    keys = label.numel() * (channels // groups)
    sums = torch.zeros(keys, dtype=torch.float32, device=values.device)
    counts = torch.zeros(keys, dtype=torch.int32, device=values.device)
    regions = torch.zeros(batch, dtype=torch.int32, device=values.device)
    flat = values.contiguous().float()
    grid = (triton.cdiv(n, BLOCK),)
    _region_sum_kernel[grid](flat, label, sums, counts, regions, channels, groups, height * width, n, BLOCK=BLOCK)
    out = torch.empty_like(flat)
    _region_mean_kernel[grid](out, label, sums, counts, channels, groups, height * width, n, BLOCK=BLOCK)
    return out.to(values.dtype), regions.to(torch.int64)
