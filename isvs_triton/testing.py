"""Helpers shared by ``tests/``, ``kernels_tests/`` and the benchmarks: test configurations, a comparison that
explains itself, models with trained-like batch norm."""

from __future__ import annotations

import contextlib
import sys

import torch

from .config import EVENTS, FAST, INTEGRATORS, SolverConfig

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


# What reads a tensor's values on the host: on a GPU each waits for the device (a synchronisation), which a CUDA graph
# cannot capture; and what copies host data to a device (``torch.tensor(..., device=...)``), which it cannot either.
HOST_READS = ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy", "nonzero")
HOST_COPIES = ("tensor", "as_tensor")


@contextlib.contextmanager
def no_host_reads(package: str = "isvs_triton"):
    """Fails at the first host read of a tensor's values (``HOST_READS``), or host data copied to a device
    (``HOST_COPIES`` with a ``device``), made by ``package``'s own code inside the block, naming the call and the
    line. Code outside the package (Triton's interpreter, which runs the kernels on the CPU tensors) is not watched,
    so this checks on the CPU what a CUDA graph needs of the host side on a GPU."""

    def guarded(owner, name):
        original = getattr(owner, name)

        def check(*args, **kwargs):
            caller = sys._getframe(1)
            to_device = name not in HOST_COPIES or kwargs.get("device") is not None
            if to_device and caller.f_globals.get("__name__", "").split(".")[0] == package:
                where = f"{caller.f_code.co_filename}:{caller.f_lineno}"
                raise AssertionError(f"{name} on the host at {where}: a synchronisation inside the path")
            return original(*args, **kwargs)

        return original, check

    patched = [(torch.Tensor, name, *guarded(torch.Tensor, name)) for name in HOST_READS]
    patched += [(torch, name, *guarded(torch, name)) for name in HOST_COPIES]
    for owner, name, _, check in patched:
        setattr(owner, name, check)
    try:
        yield
    finally:
        for owner, name, original, _ in patched:
            setattr(owner, name, original)


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


def waiting_times(rng, trials: int, longest: int):
    """(values, n, k) cases for a step's order statistic: float32 waiting times spread over decades, with ties (every
    third trial), zeros, small negative values of their own spread (a joint edge rounding inside the unit ball; 30 %
    of every third trial) and infinities (edges not waiting); k a rank among the finite ones. ``rng``: a numpy
    Generator."""
    import numpy as np

    for trial in range(trials):
        n = int(rng.integers(1, longest))
        values = rng.lognormal(0.0, 3.0, n).astype(np.float32)
        values[rng.random(n) < 0.2] = np.inf
        values[rng.random(n) < 0.05] = 0.0
        negative = rng.random(n) < (0.3 if trial % 3 == 1 else 0.02)  # some trials' ranks fall among them
        values[negative] = -rng.lognormal(-16.0, 2.0, int(negative.sum())).astype(np.float32)
        if trial % 3 == 0:
            values = np.round(values, 1)
        finite = int(np.isfinite(values).sum())
        if finite:
            yield values, n, int(rng.integers(0, finite))


def images_stopping_far_apart() -> torch.Tensor:
    """(3, 3, 10, 12): noise (stops within a few iterations), a smooth ramp (much later), and a nearly flat image
    whose jumps are all tiny (the last to stop: a small budget stops it first)."""
    ramp = torch.linspace(0, 1, 12).view(1, 1, 12).expand(3, 10, 12) + 0.01 * torch.rand(3, 10, 12)
    return torch.stack([torch.rand(3, 10, 12), ramp.clamp(0, 1), 0.4 + 1e-4 * torch.rand(3, 10, 12)])


def assert_state_view_advances_in_place(backend: str, config: SolverConfig = FAST) -> None:
    """``backend`` continues a path state that views every other image of larger buffers (as a slice of a training
    cache may), twice: the state is written back into those buffers, equal to torch's, and the other images stay
    untouched."""
    from .api import sparsify
    from .ops.lbi.path import PathState

    momentum = config.momentum > 0
    x = torch.rand(4, 3, 9, 11)
    wide = PathState.zeros(torch.rand(8, 3, 9, 11), momentum=momentum)
    prev = tuple(t[::2] for t in wide.prev) if momentum else None
    view = PathState(*(t[::2] for t in (wide.beta, wide.zh, wide.zv)), prev, wide.iterations[::2])
    assert not view.beta.is_contiguous()
    expected_state = PathState.zeros(x, momentum=momentum)
    for sparsity in (0.3, 0.5):  # the second continues the first
        out = sparsify(x, sparsity, backend=backend, state=view, **config.kwargs())
        expected = sparsify(x, sparsity, backend="torch", state=expected_state, **config.kwargs())
        assert_close(f"output at {sparsity}", out, expected, 1e-5)
    assert torch.equal(wide.iterations[::2], expected_state.iterations) and (wide.iterations[1::2] == 0).all()
    for name, got, want in zip(
        ("beta", "zh", "zv", "previous beta", "previous zh", "previous zv"),
        (t[::2] for t in wide.tensors()),
        expected_state.tensors(),
    ):
        assert_close(name, got, want, 1e-4)
    assert all(not t[1::2].any() for t in wide.tensors())


# ------------------------------------------------------------------------------------------ the conformance suite
# One list of cases that every batched backend must take exactly as the torch backend does (iterations, sparsity,
# regions, reached, stop per image; outputs within float32 rounding), for both integrators. tests/test_numba_cpu.py
# runs it for numba, kernels_tests/test_lbi_fused.py (explicit) and kernels_tests/test_events_kernel.py (events) for
# the Triton kernels, each in its own environment (the kernel tests on the GPU with ISVS_TEST_GPU=1); a new backend
# runs it the same way.
CONFORMANCE_SHAPES = [(1, 1), (1, 7), (6, 1), (7, 3), (16, 32), (17, 33), (15, 31), (35, 5)]  # cut 16x32 tiles
# explicit with momentum and without, few iterations each (the kernels' interpreter), and the events integrator
CONFORMANCE_CONFIGS = {"fast": FAST, "plain": SolverConfig(scale=1000.0, max_iter=200), "events": EVENTS}


def conformance_cases(integrators: tuple[str, ...] = INTEGRATORS) -> list[tuple[str, object]]:
    """(id, case) pairs of the ``integrators`` given; ``case(backend)`` runs one comparison against the torch backend
    and its own checks."""
    configs = [name for name, config in CONFORMANCE_CONFIGS.items() if config.integrator in integrators]
    cases = []
    for height, width in CONFORMANCE_SHAPES:
        for channels in (1, 3):
            for mode in ("independent", "joint"):
                for config in configs:
                    name = f"sweep-{height}x{width}-c{channels}-{mode}-{config}"
                    cases.append((name, _sweep(height, width, channels, mode, config)))
    for height, width in ((12, 16), (17, 33)):
        for mode in ("independent", "joint"):
            for config in configs:
                cases.append((f"noise-{height}x{width}-{mode}-{config}", _noise_stop(height, width, mode, config)))
    for config in configs:
        cases.append((f"path-continues-{config}", _path_continues(config)))
        cases.append((f"state-view-{config}", _state_view(config)))
    if "explicit" in integrators:
        for height, width in ((1, 7), (7, 3), (17, 33)):
            for mode in ("independent", "joint"):
                cases.append((f"ties-{height}x{width}-{mode}", _ties(height, width, mode)))
        for projection in ("input", "beta", "none"):
            cases.append((f"projection-{projection}", _projection(projection)))
        for mode in ("independent", "joint"):
            cases.append((f"far-apart-{mode}", _far_apart(mode)))
    if "events" in integrators:
        for mode in ("independent", "joint"):
            cases.append((f"photographs-noise-auto-{mode}-events", _photographs_noise_auto(mode)))
        cases.append(("budget-events", _events_budget))
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


def _path_continues(config):
    def case(backend):
        """One run through two targets equals two runs; a state continued from the first to the second too."""
        from .api import path, sparsify
        from .ops.lbi.path import PathState

        solver = CONFORMANCE_CONFIGS[config].kwargs()
        x = torch.rand(2, 3, 8, 9)
        outs = path(x, [0.2, 0.5], backend=backend, **solver)
        state = PathState.zeros(x, momentum=CONFORMANCE_CONFIGS[config].momentum > 0)
        for s, out in zip([0.2, 0.5], outs):
            alone = sparsify(x, s, backend="torch", **solver)
            assert_close(f"path at {s}", out, alone, 1e-5)
            assert_close(f"state at {s}", sparsify(x, s, backend=backend, state=state, **solver), alone, 1e-5)

    return case


def _state_view(config):
    def case(backend):
        assert_state_view_advances_in_place(backend, CONFORMANCE_CONFIGS[config])

    return case


def _photographs_noise_auto(mode):
    def case(backend):
        """Noisy photograph crops with the estimated noise stop: every image stops by its noise level."""
        from .samples import crops

        x = crops(16, 3, seed=3)
        x = (x + 0.08 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.device)).clamp(0, 1)
        info = assert_backend_agrees(backend, x, 0.6, channels=mode, noise="auto", **EVENTS.kwargs())
        assert set(info.stopped_by) == {"noise"}

    return case


def _events_budget(backend):
    """The budget stops two images, an image without jumps stops at once, in the events integrator's steps."""
    x = images_stopping_far_apart()
    x[2] = 0.4
    info = assert_backend_agrees(backend, x, 0.9, **EVENTS.replace(max_iter=4).kwargs())
    assert "budget" in info.stopped_by and "sparsity" in info.stopped_by, info.stopped_by
