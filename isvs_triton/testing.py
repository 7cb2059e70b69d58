"""Helpers shared by ``tests/``, ``kernels_tests/`` and the benchmarks: test configurations, a comparison that
explains itself, models with trained-like batch norm."""

from __future__ import annotations

import torch

from .config import FAST, SolverConfig

# Short but genuine paths for tests: the reference constants with a larger intensity scale (iterations ~ 1/scale),
# and the same with Nesterov momentum. Every backend runs the same equations whatever the constants.
SHORT = SolverConfig(scale=60.0, max_iter=20_000)
SHORT_MOMENTUM = SolverConfig(scale=60.0, nu=2.0, momentum=0.8, max_iter=20_000)


def with_trained_like_batch_norm(model: torch.nn.Module, seed: int = 3) -> torch.nn.Module:
    """``model`` in eval mode with every BatchNorm2d given non-trivial running statistics and affine parameters, as
    after training (fresh ones are the identity, which a fold that dropped them would also reproduce)."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for tensor, low, high in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.3, 3.0), (m.weight, 0.5, 1.5)):
                tensor.data.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=generator) * 0.2)
    return model.eval()


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
    from .backends import REGISTRY, resolve
    from .ops.lbi.path import PathState

    x = torch.rand(4, 3, 9, 11)
    wide = PathState.zeros(torch.rand(8, 3, 9, 11), momentum=True)
    view = PathState(
        *(t[::2] for t in (wide.beta, wide.zh, wide.zv)), tuple(t[::2] for t in wide.prev), wide.iterations[::2]
    )
    assert not view.beta.is_contiguous()
    ((out, info),) = resolve(backend, x.device, x.dtype)(x, [0.5], FAST, "independent", "input", state=view)
    expected_state = PathState.zeros(x, momentum=True)
    ((expected, expected_info),) = REGISTRY["torch"].solve(x, [0.5], FAST, "independent", "input", state=expected_state)
    assert torch.equal(info.iterations, expected_info.iterations)
    assert torch.equal(wide.iterations[::2], expected_info.iterations) and (wide.iterations[1::2] == 0).all()
    for name, got, want in zip(
        ("beta", "zh", "zv", "previous beta", "previous zh", "previous zv"),
        (t[::2] for t in wide.tensors()),
        expected_state.tensors(),
    ):
        assert_close(name, got, want, 1e-4)
    assert all(not t[1::2].any() for t in wide.tensors())
    assert_close("output", out, expected, 1e-5)


# ------------------------------------------------------------------------------------------ the conformance suite
# One list of cases that every batched backend must take exactly as the torch backend does (iterations, sparsity,
# regions, reached, stop per image; outputs within float32 rounding). tests/test_numba_cpu.py and
# kernels_tests/test_lbi_fused.py run it for their backend, each in its own environment (the kernel tests on the GPU
# with ISVS_TEST_GPU=1); a new backend runs it the same way.
CONFORMANCE_SHAPES = [(1, 1), (1, 7), (6, 1), (7, 3), (16, 32), (17, 33), (15, 31), (35, 5)]  # cut 16x32 tiles
# momentum and none, few iterations each (the kernels' interpreter)
CONFORMANCE_CONFIGS = {"fast": FAST, "plain": SolverConfig(scale=1000.0, max_iter=200)}


def conformance_cases() -> list[tuple[str, object]]:
    """(id, case) pairs; ``case(backend)`` runs one comparison against the torch backend and its own checks."""
    cases = []
    for height, width in CONFORMANCE_SHAPES:
        for channels in (1, 3):
            for mode in ("independent", "joint"):
                for config in CONFORMANCE_CONFIGS:
                    cases.append(
                        (
                            f"sweep-{height}x{width}-c{channels}-{mode}-{config}",
                            _sweep(height, width, channels, mode, config),
                        )
                    )
    for height, width in ((1, 7), (7, 3), (17, 33)):
        for mode in ("independent", "joint"):
            cases.append((f"ties-{height}x{width}-{mode}", _ties(height, width, mode)))
    for height, width in ((12, 16), (17, 33)):
        for mode in ("independent", "joint"):
            for config in CONFORMANCE_CONFIGS:
                cases.append((f"noise-{height}x{width}-{mode}-{config}", _noise_stop(height, width, mode, config)))
    for projection in ("input", "beta", "none"):
        cases.append((f"projection-{projection}", _projection(projection)))
    for mode in ("independent", "joint"):
        cases.append((f"far-apart-{mode}", _far_apart(mode)))
    cases.append(("path-continues", _path_continues))
    cases.append(("state-view", assert_state_view_advances_in_place))
    return cases


def projection_conformance_cases() -> list[tuple[str, object]]:
    """The same for a backend's projection alone, on random supports: the regions equal, means within 1e-5."""
    cases = []
    for height, width in ((1, 1), (1, 9), (7, 1), (5, 3), (16, 32), (17, 33), (35, 63)):  # cut 16x32 tiles
        for channels, groups in ((1, 1), (3, 3), (3, 1)):
            for density in (0.0, 0.35, 0.7, 1.0):
                name = f"{height}x{width}-c{channels}g{groups}-{density}"
                cases.append((name, _projection_only(height, width, channels, groups, density)))
    return cases


def _projection_only(height, width, channels, groups, density):
    def case(backend):
        """The backend's projection alone, on random supports (groups 1 with 3 channels: a joint support)."""
        from .backends import REGISTRY

        active_h = torch.rand(2, groups, height, width - 1) < density
        active_v = torch.rand(2, groups, height - 1, width) < density
        values = torch.rand(2, channels, height, width)
        expected, expected_regions = REGISTRY["torch"].project(values, active_h, active_v)
        out, regions = REGISTRY[backend].project(values, active_h, active_v)
        assert torch.equal(regions, expected_regions), "regions"
        assert_close("region means", out, expected, 1e-5)

    return case


def _sweep(height, width, channels, mode, config):
    def case(backend):
        x = torch.rand(2, channels, height, width)
        assert_backend_agrees(backend, x, 0.5, channels=mode, **CONFORMANCE_CONFIGS[config].kwargs())

    return case


def _ties(height, width, mode):
    def case(backend):
        """Sparsity counts jumps: on images of four grey levels most neighbours tie, and the backend must skip them."""
        x = (torch.rand(3, 3, height, width) * 3).round() / 3
        assert_backend_agrees(backend, x, 0.7, channels=mode, **FAST.kwargs())

    return case


def _noise_stop(height, width, mode, config):
    def case(backend):
        """Noisy images stop by noise, the one with sigma 0 by sparsity."""
        ramp = torch.linspace(0.2, 0.8, width).expand(3, 3, height, width)
        noise = torch.randn(3, 3, height, width, generator=torch.Generator().manual_seed(0)).to(ramp.device)
        x = (ramp + 0.1 * noise).clamp(0, 1)
        solver = {**CONFORMANCE_CONFIGS[config].kwargs(), "max_iter": 40}
        info = assert_backend_agrees(
            backend, x, 0.999, channels=mode, noise=torch.tensor([0.1, 0.1, 0.0]), discrepancy=1.5, **solver
        )
        assert info.stopped_by[:2] == ["noise", "noise"] and info.stopped_by[2] != "noise"

    return case


def _projection(projection):
    def case(backend):
        assert_backend_agrees(backend, torch.rand(2, 3, 9, 10), 0.4, projection=projection, **FAST.kwargs())

    return case


def _far_apart(mode):
    def case(backend):
        """A noisy image stops within a few iterations, a smooth ramp much later, a nearly flat one at max_iter."""
        info = assert_backend_agrees(
            backend, images_stopping_far_apart(), 0.6, channels=mode, **{**FAST.kwargs(), "max_iter": 30}
        )
        assert info.reached.tolist() == [True, True, False]
        assert int(info.iterations[1]) > 3 * int(info.iterations[0]) and int(info.iterations[2]) == 30

    return case


def _path_continues(backend):
    from .api import path, sparsify

    x = torch.rand(2, 3, 8, 9)
    outs = path(x, [0.2, 0.5], backend=backend, **FAST.kwargs())
    for s, out in zip([0.2, 0.5], outs):
        assert_close(f"path at {s}", out, sparsify(x, s, backend="torch", **FAST.kwargs()), 1e-5)
