"""``Sparsify``: ``sparsify`` as a picklable transform for torchvision-style pipelines and ``datasets``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .api import _check_sparsity, path, sparsify


class Sparsify:
    """Callable ``sparsify(image, sparsity, **options)``, validated once at construction.

    Accepts what ``sparsify`` accepts, a list of images (same-shaped ones are smoothed as one batch), or a
    ``datasets`` example/batch dict, whose ``key`` column is replaced (``Dataset.with_transform(Sparsify(...))``).

    Example:
        >>> ds = ds.with_transform(Sparsify(0.6, key="img"))
    """

    def __init__(self, sparsity: float = 0.6, *, key: str = "image", **options: Any):
        self.sparsity = _check_sparsity(sparsity)
        self.key = key
        self.options = options
        # validate every option now, on a 1x1 image, rather than inside a data-loader worker later
        path(torch.zeros(1, 1, 1), [self.sparsity], **options)

    def __call__(self, x: Any) -> Any:
        if isinstance(x, Mapping):
            if self.key not in x:
                raise KeyError(f"Sparsify(key={self.key!r}): no such column; columns are {list(x)}")
            return {**x, self.key: self(x[self.key])}
        if isinstance(x, (list, tuple)):
            return type(x)(self._many(list(x)))
        return sparsify(x, self.sparsity, **self.options)

    def _many(self, images: list) -> list:
        if not images:
            return []
        first = images[0]
        same = all(type(i) is type(first) for i in images)
        if same and isinstance(first, torch.Tensor) and first.dim() == 3:
            if all(i.shape == first.shape and i.dtype == first.dtype and i.device == first.device for i in images):
                return list(sparsify(torch.stack(images), self.sparsity, **self.options).unbind(0))
        if same and isinstance(first, np.ndarray) and first.ndim in (2, 3):
            if all(i.shape == first.shape and i.dtype == first.dtype for i in images):
                return list(sparsify(np.stack(images), self.sparsity, **self.options))
        return [sparsify(i, self.sparsity, **self.options) for i in images]

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        key = f", key={self.key!r}" if self.key != "image" else ""
        return f"Sparsify(sparsity={self.sparsity}{extra}{key})"
