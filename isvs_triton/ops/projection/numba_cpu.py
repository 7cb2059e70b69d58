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
    _, channels, height, width = values.shape
    groups = active_h.shape[1]
    n = height * width
    parent = np.empty(n, np.int64)
    sums, counts = np.empty(n, values.dtype), np.empty(n, values.dtype)
    for b in images:
        found = 0
        for g in range(groups):
            for p in range(n):
                parent[p] = p
            for i in range(height):
                for j in range(width - 1):
                    if not active_h[b, g, i, j]:
                        _join(parent, i * width + j, i * width + j + 1)
            for i in range(height - 1):
                for j in range(width):
                    if not active_v[b, g, i, j]:
                        _join(parent, i * width + j, (i + 1) * width + j)
            for p in range(n):
                parent[p] = _root(parent, p)
                found += parent[p] == p
            first, stop = (0, channels) if groups == 1 else (g, g + 1)  # the channels this segmentation serves
            for c in range(first, stop):
                sums[:] = 0
                counts[:] = 0
                for p in range(n):
                    sums[parent[p]] += values[b, c, p // width, p % width]
                    counts[parent[p]] += 1
                for p in range(n):
                    out[b, c, p // width, p % width] = sums[parent[p]] / counts[parent[p]]
        regions[b] = found


def project(values: torch.Tensor, active_h: torch.Tensor, active_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` (B, C, H, W) over each region of the support (B, G, ...), G = C or 1; regions per image."""
    values = values.contiguous()
    out = torch.empty_like(values)
    regions = torch.empty(values.shape[0], dtype=torch.int64)
    arrays = (
        values.numpy(),
        active_h.contiguous().numpy(),
        active_v.contiguous().numpy(),
        out.numpy(),
        regions.numpy(),
    )
    in_parallel(lambda images: _project(*arrays, images), values.shape[0])
    return out, regions
