"""Sparse projection, plain reference: union-find over the inactive edges, then the mean of each region.

The regions are the connected components of the pixel graph whose edges are the *inactive* edges (gamma == 0).
Replacing every pixel by its region's mean is the orthogonal projection onto images constant on every region,
``(I - D_S^+ D_S) v`` with D_S the rows of the inactive edges (checked against that formula in the tests).
"""

from __future__ import annotations

import torch


def components(inactive_h: torch.Tensor, inactive_v: torch.Tensor) -> list[int]:
    """Root label of every pixel of one (H, W) grid, row-major; ``inactive_*`` are bool (H, W-1), (H-1, W)."""
    height, width = inactive_h.shape[0], inactive_h.shape[1] + 1
    parent = list(range(height * width))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for i, j in inactive_h.nonzero().tolist():
        union(i * width + j, i * width + j + 1)
    for i, j in inactive_v.nonzero().tolist():
        union(i * width + j, (i + 1) * width + j)
    return [find(a) for a in range(height * width)]


def region_means(values: torch.Tensor, labels: list[int]) -> torch.Tensor:
    """Replace each pixel of ``values`` (..., H, W) by the mean over the pixels that share its label."""
    flat = values.reshape(*values.shape[:-2], -1)
    label = torch.tensor(labels, device=values.device)
    sums = torch.zeros(*flat.shape[:-1], len(labels), dtype=values.dtype, device=values.device)
    sums.index_add_(-1, label, flat)
    counts = torch.bincount(label, minlength=len(labels)).to(values.dtype)
    return (sums[..., label] / counts[label]).reshape(values.shape)


def project(values: torch.Tensor, active_h: torch.Tensor, active_v: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Project one image (C, H, W) on its support; ``active_*`` are (C or 1, H, W-1), (C or 1, H-1, W).

    A leading size of 1 in the support means the channels share one segmentation ("joint"). Returns the projected
    image and the number of regions (summed over the independent segmentations).
    """
    out = torch.empty_like(values)
    regions = 0
    for g in range(active_h.shape[0]):
        labels = components(~active_h[g], ~active_v[g])
        channels = slice(None) if active_h.shape[0] == 1 else slice(g, g + 1)
        out[channels] = region_means(values[channels], labels)
        regions += len(set(labels))
    return out, regions
