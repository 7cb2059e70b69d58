"""Sparse projection, batched torch path: connected components by hooking and pointer jumping, scatter means.

Every pixel of every (image, segmentation) gets a global index, so the whole batch is one graph; horizontal runs
are labelled first by a running maximum, so the graph left has one node per run. Each round hooks
the larger of two different roots joined by an inactive edge under the smaller (``scatter_reduce`` amin), then
jumps pointers until every label is a root. Labels only ever decrease and stay inside their component, so the loop
ends with one label per component; on image grids it takes a handful of rounds. O(n + m) work per round.
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


def segment(active_h: torch.Tensor, active_v: torch.Tensor) -> torch.Tensor:
    """Region labels (B, G, H, W), global over the batch, from the active edges (B, G, H, W-1), (B, G, H-1, W).

    Horizontal runs come first and for free: a running maximum of "index where a run starts" labels every pixel
    with the start of its run. Only the vertical inactive edges, between run starts, go to the hooking loop.
    """
    batch, groups, height, width = active_h.shape[0], active_h.shape[1], active_v.shape[2] + 1, active_h.shape[3] + 1
    index = torch.arange(batch * groups * height * width, device=active_h.device).view(batch, groups, height, width)
    starts_run = torch.cat([torch.ones_like(index[..., :1], dtype=torch.bool), active_h], dim=-1)
    run_start = torch.where(starts_run, index, 0).cummax(dim=-1).values
    inactive_v = ~active_v
    u = run_start[..., :-1, :][inactive_v]
    v = run_start[..., 1:, :][inactive_v]
    return connected_components(index.numel(), u, v)[run_start]


def project(
    values: torch.Tensor, active_h: torch.Tensor, active_v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` (B, C, H, W) over each region; support (B, G, ...) with G = C or G = 1 (shared).

    Returns the projected batch and the number of regions per image (B,), summed over the G segmentations.
    """
    batch, channels = values.shape[:2]
    labels = segment(active_h, active_v)
    groups = labels.shape[1]
    roots = labels == torch.arange(labels.numel(), device=labels.device).view(labels.shape)
    regions = roots.reshape(batch, -1).sum(1)
    # one key per (region, channel): a shared segmentation still averages every channel on its own
    key = labels if groups == channels else labels * channels + torch.arange(channels, device=labels.device).view(
        1, channels, 1, 1
    )
    key = key.reshape(-1)
    num_keys = labels.numel() * (channels // groups)
    sums = values.new_zeros(num_keys).index_add_(0, key, values.reshape(-1))
    counts = torch.bincount(key, minlength=num_keys).to(values.dtype)
    return (sums[key] / counts[key]).view_as(values), regions
