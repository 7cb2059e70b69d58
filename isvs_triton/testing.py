"""Helpers shared by ``tests/`` and ``kernels_tests/``: test configurations and a comparison that explains itself."""

from __future__ import annotations

import torch

from .config import SolverConfig

# Fast but genuine paths for tests: the reference constants with a larger intensity scale (iterations ~ 1/scale),
# and the same with Nesterov momentum. Every backend runs the same equations whatever the constants.
FAST = SolverConfig(scale=60.0, max_iter=20_000)
FAST_MOMENTUM = SolverConfig(scale=60.0, nu=2.0, momentum=0.8, max_iter=20_000)


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Compare with a message naming the tensor, its max abs diff and relative error."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual.double() - expected.double()).abs()
    worst = float(diff.max()) if diff.numel() else 0.0
    scale = float(expected.double().abs().max()) if expected.numel() else 0.0
    assert worst <= atol, f"{name}: max abs diff {worst:.3e} (relative {worst / max(scale, 1e-30):.3e}) > {atol:.1e}"
