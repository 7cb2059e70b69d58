"""Sparse projection on the CPU with numba: union-find per image, region sums in raster order, images over threads.

Same contract as ``torch_path.project``. The sums run over the pixels in raster order, as ``index_add_`` does on the
CPU, so the means come out the same.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ..lbi.numba_cpu import JIT
from ..parallel import in_parallel


@numba.njit(**JIT)
def _root(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]  # path halving
        p = parent[p]
    return p


@numba.njit(**JIT)
def _join(parent, a, b):
    ra, rb = _root(parent, a), _root(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@numba.njit(**JIT)
def _project(values, active_h, active_v, out, regions, images):
    """values, out: (B, C, H*W); active_h, active_v: (B, G, H, W-1), (B, G, H-1, W).

    Union-find in which a pixel's parent never has a larger index (runs point to their start, a join hooks the
    larger root under the smaller), so one pass in raster order finds every root in two lookups."""
    channels, n = values.shape[1], values.shape[2]
    groups, height = active_h.shape[1], active_v.shape[2] + 1
    width = n // height
    parent = np.empty(n, np.int64)
    sums, counts = np.empty(n, values.dtype), np.empty(n, values.dtype)
    for b in images:
        found = 0
        for g in range(groups):
            for i in range(height):
                row = start = i * width
                parent[row] = row
                for j in range(width - 1):  # along the row every pixel is still alone: a run joins its start
                    if active_h[b, g, i, j]:
                        start = row + j + 1
                    parent[row + j + 1] = start
                if i:
                    linked = False  # the edge to the left of this one joined, and both rows continue across
                    for j in range(width):
                        if active_v[b, g, i - 1, j]:
                            linked = False
                            continue
                        if not (linked and not active_h[b, g, i, j - 1] and not active_h[b, g, i - 1, j - 1]):
                            _join(parent, row - width + j, row + j)
                        linked = True
            first, stop = (0, channels) if groups == 1 else (g, g + 1)  # the channels this segmentation serves
            counts[:] = 0
            sums[:] = 0
            for p in range(n):  # the roots, their sizes and the first channel's sums in one pass
                root = parent[parent[p]]  # parent[p] <= p already points at its root
                parent[p] = root
                counts[root] += 1
                found += root == p
                sums[root] += values[b, first, p]  # raster order, as torch's index_add_: the same sums
            for c in range(first, stop):
                if c > first:
                    sums[:] = 0
                    for p in range(n):
                        sums[parent[p]] += values[b, c, p]
                for p in range(n):
                    if parent[p] == p:
                        sums[p] /= counts[p]
                for p in range(n):
                    out[b, c, p] = sums[parent[p]]
        regions[b] = found


def project(values: torch.Tensor, active_h: torch.Tensor, active_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` (B, C, H, W) over each region of the support (B, G, ...), G = C or 1; regions per image."""
    values = values.contiguous()
    out = torch.empty_like(values)
    regions = torch.empty(values.shape[0], dtype=torch.int64)
    arrays = (
        values.flatten(2).numpy(),
        active_h.contiguous().numpy(),
        active_v.contiguous().numpy(),
        out.flatten(2).numpy(),
        regions.numpy(),
    )
    in_parallel(lambda images: _project(*arrays, images), values.shape[0])
    return out, regions
