"""What ``sparsify(..., return_info=True)`` reports about each image's stop."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .config import STOP_RULES


@dataclass
class SparsifyInfo:
    """Per-image tensors, shape (B,) for a batch and () for a single image.

    iterations:      Split LBI iterations run until the image stopped (int64).
    sparsity:        active jumps / jumps at the stop, a jump being an edge whose input difference is non-zero
                     (float64); an image without jumps (constant, or 1x1) has 1.0.
    regions:         connected components of the inactive-edge graph, summed over channels ("joint": the regions of
                     the one segmentation the channels share) (int64).
    reached:         whether the target sparsity was reached (bool).
    stop:            why the image stopped, an index into ``STOP_RULES`` (int8); ``stopped_by`` gives the names.
    active_fraction: active edges / all edges at the stop, jumps or not (float64).
    noise:           the noise standard deviation the noise stop used, in the input's units; NaN without one.
    """

    iterations: torch.Tensor
    sparsity: torch.Tensor
    regions: torch.Tensor
    reached: torch.Tensor
    stop: torch.Tensor
    active_fraction: torch.Tensor
    noise: torch.Tensor

    @property
    def stopped_by(self) -> str | list[str]:
        """ "sparsity" (the target was reached), "noise" (the residual fell to the noise level) or "budget"
        (``max_iter`` ran out): a list per image for a batch, one name for a single image."""
        codes = self.stop.tolist()
        return STOP_RULES[codes] if isinstance(codes, int) else [STOP_RULES[c] for c in codes]

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self.keys():
            raise KeyError(f"SparsifyInfo has no field {key!r}; fields are {self.keys()}")
        return getattr(self, key)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def map(self, fn) -> SparsifyInfo:
        return SparsifyInfo(*(fn(getattr(self, k)) for k in self.keys()))

    @staticmethod
    def empty(device: torch.device) -> SparsifyInfo:
        """The info of an empty batch."""
        e = torch.empty(0, device=device)
        return SparsifyInfo(e.long(), e.double(), e.long(), e.bool(), e.to(torch.int8), e.double(), e.double())

    @staticmethod
    def cat(infos: list[SparsifyInfo]) -> SparsifyInfo:
        return SparsifyInfo(*(torch.cat([getattr(i, k) for i in infos]) for k in SparsifyInfo.__dataclass_fields__))
