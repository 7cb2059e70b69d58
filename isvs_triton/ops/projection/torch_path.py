"""Sparse projection, batched torch path: connected components by hooking and pointer jumping, scatter means.

The whole batch is one graph. Horizontal runs of pixels joined by inactive edges come first and for free: a cumulative
sum of "a run starts here" numbers the runs in raster order, so the graph left has one node per run and one edge per
inactive vertical edge. Each round then hooks the larger of two different roots joined by an edge under the smaller
(``scatter_reduce`` amin) and jumps pointers until every label is a root. Labels only ever decrease and stay inside
their component, so the loop ends with one label per component (its first run); on image grids it takes a handful
of rounds. O(n + m) work per round.
"""

from __future__ import annotations

import torch


def connected_components(num_nodes: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Root label (smallest node index) of every node of the undirected graph with edges (u[i], v[i])."""
    labels = torch.arange(num_nodes, device=u.device)
    while u.numel():
        lu, lv = labels[u], labels[v]
        differ = lu != lv
        if not bool(differ.any()):
            break
        # edges whose ends already share a root keep sharing it: drop them from later rounds
        u, v, lu, lv = u[differ], v[differ], lu[differ], lv[differ]
        labels.scatter_reduce_(0, torch.maximum(lu, lv), torch.minimum(lu, lv), reduce="amin")
        while True:
            jumped = labels[labels]
            if torch.equal(jumped, labels):
                break
            labels = jumped
    return labels


def segment(active_h: torch.Tensor, active_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Regions of the active edges (B, G, H, W-1), (B, G, H-1, W).

    Returns (region (B, G, H, W): the id of the first run of each pixel's region, numbered over the whole batch;
    is_root (B, G, H, W): True on the first pixel of each region; number of runs).
    """
    starts = torch.cat([active_h.new_ones(*active_h.shape[:-1], 1), active_h], dim=-1)  # runs start at active edges
    run = starts.flatten().cumsum(0).view(starts.shape) - 1
    runs = int(run.reshape(-1)[-1]) + 1 if run.numel() else 0
    # every vertical edge is given; an active one is made a self-loop, which the first round drops
    upper = run[..., :-1, :]
    lower = torch.where(active_v, upper, run[..., 1:, :])
    component = connected_components(runs, upper.reshape(-1), lower.reshape(-1))
    region = component[run]
    return region, starts & (region == run), runs


def project(values: torch.Tensor, active_h: torch.Tensor, active_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` (B, C, H, W) over each region; support (B, G, ...) with G = C or G = 1 (shared).

    Returns the projected batch and the number of regions per image (B,), summed over the G segmentations.
    """
    batch, channels = values.shape[:2]
    region, is_root, runs = segment(active_h, active_v)
    groups = region.shape[1]
    regions = is_root.reshape(batch, -1).sum(1)
    # one key per (region, channel): a shared segmentation still averages every channel on its own
    if groups != channels:
        region = region * channels + torch.arange(channels, device=region.device).view(1, channels, 1, 1)
    key = region.reshape(-1)
    num_keys = runs * (channels // groups)
    sums = values.new_zeros(num_keys).index_add_(0, key, values.reshape(-1))
    counts = torch.bincount(key, minlength=num_keys).to(values.dtype)
    return (sums[key] / counts[key]).view_as(values), regions
