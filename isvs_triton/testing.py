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
    diff = (actual.detach().double() - expected.detach().double()).abs()
    worst = float(diff.max()) if diff.numel() else 0.0
    scale = float(expected.detach().double().abs().max()) if expected.numel() else 0.0
    assert worst <= atol, f"{name}: max abs diff {worst:.3e} (relative {worst / max(scale, 1e-30):.3e}) > {atol:.1e}"


def assert_backend_agrees(backend: str, x: torch.Tensor, sparsity: float, against: str = "torch", **options):
    """``backend`` takes the same stops as ``against`` on x: iterations, sparsity, regions and reached equal per image,
    outputs within 1e-5 (float32 rounding). Returns ``backend``'s SparsifyInfo."""
    from .api import sparsify

    expected, expected_info = sparsify(x, sparsity, backend=against, return_info=True, **options)
    out, info = sparsify(x, sparsity, backend=backend, return_info=True, **options)
    for key in info.keys():
        # every field is a count or a decision, equal per image, except the noise level, estimated on the device
        same = torch.equal if key != "noise" else lambda a, b: torch.allclose(a, b, rtol=1e-6, equal_nan=True)
        assert same(info[key], expected_info[key]), f"{key}: {backend} {info[key]} != {against} {expected_info[key]}"
    assert_close("output", out, expected, 1e-5)
    return info


def images_stopping_far_apart() -> torch.Tensor:
    """(3, 3, 10, 12): noise (stops within a few iterations), a smooth ramp (much later), and a nearly flat image
    whose jumps are all tiny (the last to stop: a small budget stops it first)."""
    ramp = torch.linspace(0, 1, 12).view(1, 1, 12).expand(3, 10, 12) + 0.01 * torch.rand(3, 10, 12)
    return torch.stack([torch.rand(3, 10, 12), ramp.clamp(0, 1), 0.4 + 1e-4 * torch.rand(3, 10, 12)])


def assert_state_view_advances_in_place(backend: str) -> None:
    """``backend`` continues a path state that views every other image of larger buffers (as a slice of a training
    cache may): the state is written back into those buffers, equal to torch's, and the other images stay untouched.
    """
    from .backends import resolve
    from .config import DEFAULT
    from .ops.lbi import path as lbi_path
    from .ops.lbi import torch_path
    from .ops.lbi.path import PathState
    from .ops.projection import torch_path as projection_torch

    x = torch.rand(4, 3, 9, 11)
    wide = PathState.zeros(torch.rand(8, 3, 9, 11), momentum=True)
    view = PathState(*(t[::2] for t in (wide.beta, wide.zh, wide.zv)), tuple(t[::2] for t in wide.prev),
                     wide.iterations[::2])  # fmt: skip
    assert not view.beta.is_contiguous()
    ((out, info),) = resolve(backend, x.device, x.dtype)(x, [0.5], DEFAULT, "independent", "input", state=view)
    expected_state = PathState.zeros(x, momentum=True)
    ((expected, expected_info),) = lbi_path.solve(x, [0.5], DEFAULT, "independent", "input", torch_path.advance,
                                                  projection_torch.project, state=expected_state)  # fmt: skip
    assert torch.equal(info.iterations, expected_info.iterations)
    assert torch.equal(wide.iterations[::2], expected_info.iterations) and (wide.iterations[1::2] == 0).all()
    for name, got, want in zip(("beta", "zh", "zv", "previous beta", "previous zh", "previous zv"),
                               (t[::2] for t in wide.tensors()), expected_state.tensors()):  # fmt: skip
        assert_close(name, got, want, 1e-4)
    assert all(not t[1::2].any() for t in wide.tensors())
    assert_close("output", out, expected, 1e-5)
