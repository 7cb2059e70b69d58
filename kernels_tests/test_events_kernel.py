"""The events integrator's kernels (ops/lbi/triton_events_onchip.py, one program per small image in registers;
triton_events.py, one program per image in global memory; triton_events_tiled.py, tile-parallel) in Triton's CPU
interpreter (TRITON_INTERPRET=1, set by the root conftest.py): their pieces against the math (the order statistics
against numpy's, the solves against a dense solve), the tiled step against the torch backend's, then the conformance
suite's events cases on each, whole paths against the torch backend (iterations, stops, regions; outputs to float32
rounding)."""

import types

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

from isvs_triton.config import EVENTS, SolverConfig
from isvs_triton.ops.graph import grad, grad_adjoint
from isvs_triton.ops.lbi import torch_path, triton_events, triton_events_onchip, triton_events_tiled, triton_fused
from isvs_triton.ops.lbi.reference import chebyshev_steps
from isvs_triton.testing import assert_close, conformance_cases, waiting_times

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf and 0/0 in lanes the kernel masks out
CASES = conformance_cases(("events",))


@triton.jit
def _kth_kernel(p_values, p_out, n, k, BLOCK: tl.constexpr):
    tl.store(p_out, triton_events._kth_smallest(p_values, n, k, BLOCK))


def test_order_statistic_is_numpys():
    """The step's time (the k-th smallest waiting time, by histogram passes over integer keys) equals numpy's order
    statistic exactly, on times spread over decades, with ties, zeros, negative values, infinities (edges not
    waiting), and lengths that cut the chunks."""
    for values, n, k in waiting_times(np.random.default_rng(1), trials=40, longest=1500):
        out = torch.empty(1)
        _kth_kernel[(1,)](torch.from_numpy(values), out, n, k, BLOCK=256)
        assert float(out) == np.partition(values, k)[k], (n, k)


@triton.jit
def _solve_kernel(p_beta, p_xs, p_wh, p_wv, p_p, p_q, p_steps, iterations, C, H, W, BLOCK: tl.constexpr):
    triton_events._solve(p_beta, p_xs, p_wh, p_wv, p_p, p_q, p_steps, iterations, C, H, W, BLOCK)


@pytest.mark.parametrize("height,width", [(1, 7), (6, 1), (9, 13), (20, 30)], ids=lambda s: str(s))
def test_solve_is_the_dense_solve(height, width):
    """The kernel's solve (Chebyshev iterations on the zero-row layout, enough for a 1e-6 error bound) against
    (I + D^T W D / nu) beta = s x solved densely in float64, with random weights on random edges and two channels
    that must stay apart."""
    torch.manual_seed(height * 7 + width)
    channels = 2
    wh = torch.rand(channels, height, width) * (torch.rand(channels, height, width) < 0.6)
    wv = torch.rand(channels, height, width) * (torch.rand(channels, height, width) < 0.6)
    wh[..., -1], wv[:, -1] = 0, 0  # no edge past the last column and row
    xs = torch.rand(channels, height, width) * 5
    beta = torch.rand(channels, height, width)  # a warm start, as along the path

    def zero_rows(a):
        return torch.nn.functional.pad(a, (0, 0, 1, 1)).contiguous()

    p, q = zero_rows(torch.zeros_like(xs)), zero_rows(torch.zeros_like(xs))
    steps = torch.tensor(chebyshev_steps(SolverConfig(nu=1.0, tolerance=1e-6)))  # the weights lie in [0, 1 / nu]
    _solve_kernel[(1,)](beta, xs, zero_rows(wh), zero_rows(wv), p, q, steps, len(steps), channels, height, width,
                        BLOCK=64)  # fmt: skip
    for c in range(channels):
        eye = torch.eye(height * width, dtype=torch.float64).view(-1, height, width)
        dh, dv = grad(eye)
        operator = eye + grad_adjoint(wh[c, :, :-1].double() * dh, wv[c, :-1].double() * dv)
        expected = torch.linalg.solve(operator.flatten(1).T, xs[c].double().flatten())
        assert_close(f"channel {c}", beta[c].flatten(), expected, 1e-4)


@pytest.mark.parametrize("case", [case for _, case in CASES], ids=[name for name, _ in CASES])
def test_conformance(case):
    """The conformance suite's events cases (isvs_triton/testing.py) as the Triton backend dispatches them (the
    images that fit on chip there, the others in global memory): whole paths against the torch backend over shapes
    that cut the chunks, both channel modes, noise stops, a budget, a path and a state continued, a state that views
    larger buffers."""
    case("triton")


# the cases whose images the dispatch sends on chip, run again in global memory (every other case runs there above)
GLOBAL_MEMORY_CASES = [
    (name, case)
    for name, case in CASES
    if not name.startswith("sweep") or any(s in name for s in ("1x7-c1", "1x7-c3", "6x1-c3", "16x32-c1", "15x31-c1"))
]


@pytest.mark.parametrize("case", [case for _, case in GLOBAL_MEMORY_CASES], ids=[n for n, _ in GLOBAL_MEMORY_CASES])
def test_conformance_in_global_memory(case, monkeypatch):
    """Conformance cases with every image in ``triton_events.py``'s kernel (the on-chip kernel switched off)."""
    monkeypatch.setattr(triton_fused, "EVENTS_ON_CHIP", False)
    case("triton")


# ------------------------------------------------------------------------------------------ the on-chip kernel
def test_on_chip_takes_the_images_that_fit():
    """The dispatch's rule: the image padded to powers of two within ON_CHIP_MAX_ELEMENTS (greyscale 32x32, colour
    16x16), 4 channels and 32 a side; the others elsewhere."""
    fits = triton_events_onchip.fits_on_chip
    assert fits(1, 28, 28) and fits(1, 32, 32) and fits(3, 16, 16) and fits(3, 8, 32) and fits(3, 1, 7)
    assert fits(1, 1, 1) and fits(2, 32, 16)
    assert not fits(3, 32, 32) and not fits(1, 33, 32) and not fits(2, 17, 32) and not fits(5, 8, 8)
    assert not fits(1, 64, 8) and not fits(1, 1, 1000)  # within the elements, past a side: elongated shapes spill


@triton.jit
def _onchip_kth_kernel(p_values, p_out, n, k, CP: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr):
    at = (
        tl.arange(0, CP)[:, None, None] * (HP * WP)
        + tl.arange(0, HP)[None, :, None] * WP
        + tl.arange(0, WP)[None, None, :]
    )
    wait_h = tl.load(p_values + at, mask=at < n, other=float("inf"))
    wait_v = tl.load(p_values + CP * HP * WP + at, mask=CP * HP * WP + at < n, other=float("inf"))
    tl.store(p_out, triton_events_onchip._kth_smallest(wait_h, wait_v, k))


def test_on_chip_order_statistic_is_numpys():
    """The on-chip kernel's step time (the k-th smallest of two register tensors by histograms of 32-bit keys) equals
    numpy's order statistic exactly, on times spread over decades, with ties, zeros, negative values and infinities."""
    for values, n, k in waiting_times(np.random.default_rng(2), trials=40, longest=2048):
        out = torch.empty(1)
        _onchip_kth_kernel[(1,)](torch.from_numpy(values), out, n, k, CP=4, HP=16, WP=16)
        assert float(out) == np.partition(values, k)[k], (n, k)


@triton.jit
def _onchip_solve_kernel(p_beta, p_xs, p_zh, p_zv, p_steps, iterations, C, H, W, JOINT: tl.constexpr,
                         CP: tl.constexpr, HP: tl.constexpr, WP: tl.constexpr):  # fmt: skip
    xs, beta, zh, zv = triton_events_onchip._load_state(p_xs, p_beta, p_zh, p_zv, 0, C, H, W, CP, HP, WP)
    beta = triton_events_onchip._solve(beta, xs, zh, zv, p_steps, iterations, 1.0, JOINT)
    triton_events_onchip._store_state(p_beta, p_zh, p_zv, beta, zh, zv, 0, C, H, W)


@pytest.mark.parametrize("joint", [False, True], ids=["independent", "joint"])
@pytest.mark.parametrize("height,width", [(1, 7), (6, 1), (9, 13), (20, 30)], ids=lambda s: str(s))
def test_on_chip_solve_is_the_dense_solve(height, width, joint):
    """The on-chip solve (Chebyshev iterations in the flux form, neighbours by gathers that wrap around the padded
    shape, weights from z) against (I + D^T W D / nu) beta = s x solved densely in float64, with random supports in
    two channels that must stay apart (joint: one support for both)."""
    torch.manual_seed(height * 7 + width + joint)
    channels = 2
    zh = torch.randn(channels, height, width - 1) * 1.5  # |z| > 1 (active: weight 0) on about half the edges
    zv = torch.randn(channels, height - 1, width) * 1.5
    xs, beta = torch.rand(channels, height, width) * 5, torch.rand(channels, height, width)
    steps = torch.tensor(chebyshev_steps(SolverConfig(nu=1.0, tolerance=1e-6)))
    padded = {name: triton.next_power_of_2(n) for name, n in (("CP", channels), ("HP", height), ("WP", width))}
    _onchip_solve_kernel[(1,)](beta, xs, zh.clone(), zv.clone(), steps, len(steps), channels, height, width,
                               JOINT=joint, **padded)  # fmt: skip
    if joint:
        wh, wv = (z.square().sum(0, keepdim=True) <= 1 for z in (zh, zv))
    else:
        wh, wv = zh.abs() <= 1, zv.abs() <= 1
    for c in range(channels):
        eye = torch.eye(height * width, dtype=torch.float64).view(-1, height, width)
        dh, dv = grad(eye)
        operator = eye + grad_adjoint(wh[c % len(wh)].double() * dh, wv[c % len(wv)].double() * dv)
        expected = torch.linalg.solve(operator.flatten(1).T, xs[c].double().flatten())
        assert_close(f"channel {c}", beta[c].flatten(), expected, 1e-4)


# ------------------------------------------------------------------------------------------ the tiled path
@pytest.mark.parametrize("joint", [False, True], ids=["independent", "joint"])
@pytest.mark.parametrize("height,width", [(1, 7), (6, 1), (9, 13), (20, 30)], ids=lambda s: str(s))
def test_tiled_solve_is_the_dense_solve(height, width, joint):
    """The tiled solve (a tile of an image-channel per program, blocked in time: up to 8 iterations per launch, here
    several launches) against
    (I + D^T W D / nu) beta = s x solved densely in float64, on random supports; joint: one support for both
    channels."""
    torch.manual_seed(height * 7 + width)
    channels, cj = 2, 1 if joint else 2
    wh = (torch.rand(1, cj, height, width - 1) < 0.6).float()
    wv = (torch.rand(1, cj, height - 1, width) < 0.6).float()
    xs = torch.rand(1, channels, height, width) * 5
    beta = torch.rand(1, channels, height, width)  # a warm start, as along the path
    cfg = SolverConfig(nu=1.0, tolerance=1e-6)
    triton_events_tiled.solve_beta(beta, xs, wh, wv, cfg)
    for c in range(channels):
        eye = torch.eye(height * width, dtype=torch.float64).view(-1, height, width)
        dh, dv = grad(eye)
        w = 0 if joint else c
        operator = eye + grad_adjoint(wh[0, w].double() * dh, wv[0, w].double() * dv)
        expected = torch.linalg.solve(operator.flatten(1).T, xs[0, c].double().flatten())
        assert_close(f"channel {c}", beta[0, c].flatten(), expected, 1e-4)


SLOW_224 = pytest.param((1, 3, 224, 224), marks=pytest.mark.slow)  # ~1.5 min a mode in the interpreter


@pytest.mark.parametrize("joint", [False, True], ids=["independent", "joint"])
@pytest.mark.parametrize("shape", [(5, 3, 67, 45), (2, 1, 1, 300), (2, 3, 300, 1), SLOW_224],
                         ids=lambda s: "x".join(map(str, s)))  # fmt: skip
def test_tiled_step_is_the_torch_step(shape, joint):
    """One step of the tiled kernels against ``torch_path._event_step`` from the same random mid-path state (active
    and inactive edges, jumps on ~60 % of the edges, counts from one jump to more than there are): the same images
    stuck, the state to float32 rounding, over shapes that span several blocks and one 224 x 224 image."""
    torch.manual_seed(sum(shape))
    batch, channels, height, width = shape
    cj = 1 if joint else channels
    beta, xs = torch.rand(shape) * 100, torch.rand(shape) * 400
    zh = torch.rand(batch, channels, height, width - 1) * 2.4 - 1.2
    zv = torch.rand(batch, channels, height - 1, width) * 2.4 - 1.2
    rule = types.SimpleNamespace(
        jumps_h=torch.rand(batch, cj, height, width - 1) < 0.6, jumps_v=torch.rand(batch, cj, height - 1, width) < 0.6
    )
    count = torch.tensor([1, 40, 10**6, 7, 300])[:batch]
    ours, stuck = triton_events_tiled.event_step(beta, zh, zv, xs, rule, count, EVENTS, joint)
    theirs, their_stuck = torch_path._event_step(beta, zh, zv, xs, rule, count, EVENTS, joint)
    assert torch.equal(stuck, their_stuck)
    for name, a, b in zip(("beta", "zh", "zv"), ours, theirs):
        size = float(b.abs().max()) if b.numel() else 0.0
        assert_close(name, a, b, 1e-5 + 2e-6 * size)  # float32 rounding at the values held


# the tiled path shares the torch backend's control flow, so its conformance run takes the cases that exercise its
# kernels' geometry and every stop (each shape that cuts blocks, single rows and columns, both channel modes, the
# noise stops, a budget, a continued path and state): 16 of the 41, for the suite's time
TILED_CASES = [
    (name, case)
    for name, case in CASES
    if not name.startswith("sweep") or any(s in name for s in ("1x7-c3", "6x1-c3", "17x33", "35x5-c1"))
]


@pytest.mark.parametrize("case", [case for _, case in TILED_CASES], ids=[name for name, _ in TILED_CASES])
def test_conformance_tiled(case, monkeypatch):
    """Conformance cases with every image on the tiled path (its side limit set to 0)."""
    monkeypatch.setattr(triton_fused, "EVENTS_PER_IMAGE_MAX_SIDE", 0)
    case("triton")


def test_tiled_order_statistic_is_torchs():
    """The tiled path's step time: each row's k-th smallest waiting time, exactly torch's order statistic, on rows
    with times spread over decades, ties, zeros, negative values and infinities, k anywhere below the finite count,
    rows longer than a block."""
    rng = np.random.default_rng(3)
    rows, ks = [], []
    for values, n, k in waiting_times(rng, trials=12, longest=1500):
        rows.append(np.pad(values[:n], (0, 1500 - n), constant_values=np.inf))
        ks.append(k)
    waiting, k = torch.from_numpy(np.stack(rows)).float(), torch.tensor(ks)
    expected = waiting.sort(1).values.gather(1, k.view(-1, 1)).view(-1)
    assert torch.equal(triton_events_tiled.kth_smallest(waiting.contiguous(), k), expected)
