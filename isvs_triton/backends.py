"""One table from backend name to implementation; ``backend="auto"`` and ``ISVS_BACKEND`` pick from it.

Every backend has the signature ``solve(x, targets, config, channels, projection) -> [(out, SparsifyInfo)]`` with
x (B, C, H, W) float in [0, 1], ``targets`` ascending, one result per target.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from .ops.lbi import reference, torch_path

ENV_VAR = "ISVS_BACKEND"

BACKENDS: dict[str, Callable] = {
    "reference": reference.solve,  # plain and float64-capable: the oracle, slow
    "torch": torch_path.solve,  # batched, in place: any device
}


def names() -> list[str]:
    return ["auto", *BACKENDS]


def check_name(name: object, where: str) -> str:
    if name not in names():
        raise ValueError(f"unknown backend {name!r} ({where}); accepted: {names()}")
    return name  # type: ignore[return-value]


def resolve(name: str, device: torch.device) -> Callable:
    """The implementation for ``name``; "auto" honours ISVS_BACKEND, then picks by device."""
    if name == "auto":
        name = check_name(os.environ.get(ENV_VAR, "auto"), f"environment variable {ENV_VAR}")
    if name == "auto":
        name = "triton" if device.type == "cuda" and "triton" in BACKENDS else "torch"
    return BACKENDS[name]
