"""What ``sparsify(..., return_info=True)`` reports about each image's stop."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class SparsifyInfo:
    """Per-image tensors, shape (B,) for a batch and () for a single image.

    iterations: Split LBI iterations run until the image stopped (int64).
    sparsity:   achieved fraction of active edges at the stop (float64); an image without edges (1x1) has 1.0.
    regions:    connected components of the inactive-edge graph, summed over channels ("joint": the regions of
                the one segmentation the channels share) (int64).
    reached:    whether the target sparsity was reached (False: the image stopped at ``max_iter``) (bool).
    """

    iterations: torch.Tensor
    sparsity: torch.Tensor
    regions: torch.Tensor
    reached: torch.Tensor

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.keys():
            raise KeyError(f"SparsifyInfo has no field {key!r}; fields are {self.keys()}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def map(self, fn) -> SparsifyInfo:
        return SparsifyInfo(*(fn(getattr(self, k)) for k in self.keys()))

    @staticmethod
    def cat(infos: list[SparsifyInfo]) -> SparsifyInfo:
        return SparsifyInfo(*(torch.cat([getattr(i, k) for i in infos]) for k in SparsifyInfo.__dataclass_fields__))
