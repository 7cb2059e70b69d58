"""The events integrator's kernel (ops/lbi/triton_events.py) in Triton's CPU interpreter (TRITON_INTERPRET=1, set by
the root conftest.py): its pieces against the math (the order statistic against numpy's, the solve against a dense
solve), then whole paths against the torch backend (iterations, stops, regions; outputs to float32 rounding) over
the shapes of tests/test_events.py, both channel modes, a noise stop, a budget, and a path continued."""

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import isvs_triton as isvs
from isvs_triton.config import EVENTS
from isvs_triton.ops.graph import grad, grad_adjoint
from isvs_triton.ops.lbi import triton_events
from isvs_triton.samples import crops
from isvs_triton.testing import assert_backend_agrees, assert_close, images_stopping_far_apart

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf and 0/0 in lanes the kernel masks out
SHAPES = [(1, 1), (1, 7), (6, 1), (7, 3), (16, 32), (33, 17)]  # tests/test_events.py's, which cut chunks of 256


@triton.jit
def _kth_kernel(p_values, p_out, n, k, BLOCK: tl.constexpr):
    tl.store(p_out, triton_events._kth_smallest(p_values, n, k, BLOCK))


def test_order_statistic_is_numpys():
    """The step's time (the k-th smallest waiting time, by a radix selection over integer keys) equals numpy's order
    statistic exactly, on times spread over decades, with ties, zeros, negative values, infinities (edges not
    waiting), and lengths that cut the chunks."""
    rng = np.random.default_rng(1)
    for trial in range(40):
        n = int(rng.integers(1, 1500))
        values = rng.lognormal(0.0, 3.0, n).astype(np.float32)
        values[rng.random(n) < 0.2] = np.inf
        values[rng.random(n) < 0.05] = 0.0
        values[rng.random(n) < 0.02] = -1e-7
        if trial % 3 == 0:
            values = np.round(values, 1)  # ties
        finite = int(np.isfinite(values).sum())
        if finite == 0:
            continue
        k = int(rng.integers(0, finite))
        out = torch.empty(1)
        _kth_kernel[(1,)](torch.from_numpy(values), out, n, k, BLOCK=256)
        assert float(out) == np.partition(values, k)[k], (trial, n, k)


@triton.jit
def _solve_kernel(p_beta, p_xs, p_wh, p_wv, p_p, p_r, p_ap, C, H, W, tolerance, BLOCK: tl.constexpr):
    triton_events._solve(p_beta, p_xs, p_wh, p_wv, p_p, p_r, p_ap, C, H, W, tolerance, 1000, BLOCK)


@pytest.mark.parametrize("height,width", [(1, 7), (6, 1), (9, 13), (20, 30)], ids=lambda s: str(s))
def test_solve_is_the_dense_solve(height, width):
    """The kernel's solve (conjugate gradients on the zero-row layout) against (I + D^T W D / nu) beta = s x solved
    densely in float64, with random weights on random edges and two channels that must stay apart."""
    torch.manual_seed(height * 7 + width)
    channels = 2
    wh = torch.rand(channels, height, width) * (torch.rand(channels, height, width) < 0.6)
    wv = torch.rand(channels, height, width) * (torch.rand(channels, height, width) < 0.6)
    wh[..., -1], wv[:, -1] = 0, 0  # no edge past the last column and row
    xs = torch.rand(channels, height, width) * 5
    beta = torch.rand(channels, height, width)  # a warm start, as along the path

    def zero_rows(a):
        return torch.nn.functional.pad(a, (0, 0, 1, 1)).contiguous()

    p, r, ap = zero_rows(torch.zeros_like(xs)), torch.empty_like(xs), torch.empty_like(xs)
    _solve_kernel[(1,)](beta, xs, zero_rows(wh), zero_rows(wv), p, r, ap, channels, height, width, 1e-6, BLOCK=64)
    for c in range(channels):
        eye = torch.eye(height * width, dtype=torch.float64).view(-1, height, width)
        dh, dv = grad(eye)
        operator = eye + grad_adjoint(wh[c, :, :-1].double() * dh, wv[c, :-1].double() * dv)
        expected = torch.linalg.solve(operator.flatten(1).T, xs[c].double().flatten())
        assert_close(f"channel {c}", beta[c].flatten(), expected, 1e-4)


@pytest.mark.parametrize("height,width", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("channels", [1, 3], ids=["c1", "c3"])
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_kernel_equals_torch(height, width, channels, mode):
    torch.manual_seed(height * 100 + width)
    assert_backend_agrees("triton", torch.rand(2, channels, height, width), 0.5, channels=mode, **EVENTS.kwargs())


@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_kernel_equals_torch_on_photographs_with_a_noise_stop(mode):
    x = crops(16, 3, seed=3)
    x = (x + 0.08 * torch.randn_like(x)).clamp(0, 1)
    info = assert_backend_agrees("triton", x, 0.6, channels=mode, noise="auto", **EVENTS.kwargs())
    assert set(info.stopped_by) == {"noise"}


def test_kernel_equals_torch_where_the_budget_stops_some_images():
    x = images_stopping_far_apart()
    x[2] = 0.4  # no jumps: stops at once; the others run out of steps at 0.9
    info = assert_backend_agrees("triton", x, 0.9, **EVENTS.replace(max_iter=4).kwargs())
    assert "budget" in info.stopped_by and "sparsity" in info.stopped_by, info.stopped_by


def test_kernel_path_and_state_continue_exactly():
    x = crops(12, 2, seed=5)
    outs = isvs.path(x, [0.2, 0.6], backend="triton", **EVENTS.kwargs())
    state = isvs.PathState.zeros(x, momentum=False)
    first = isvs.sparsify(x, 0.2, backend="triton", state=state, **EVENTS.kwargs())
    second = isvs.sparsify(x, 0.6, backend="triton", state=state, **EVENTS.kwargs())
    for name, got, sparsity, continued in (("0.2", outs[0], 0.2, first), ("0.6", outs[1], 0.6, second)):
        alone = isvs.sparsify(x, sparsity, backend="triton", **EVENTS.kwargs())
        assert_close(f"path at {name}", got, alone, 1e-6)
        assert_close(f"continued state at {name}", continued, alone, 1e-6)
    assert_close("against torch", outs[1], isvs.sparsify(x, 0.6, backend="torch", **EVENTS.kwargs()), 1e-5)


def test_kernel_advances_a_state_that_views_larger_buffers():
    """A saved path state that views every other image of larger buffers (a slice of a training cache): the kernel
    writes the grid state back into those buffers, as the torch backend moves its own state, and leaves the other
    images untouched."""
    x = torch.rand(3, 3, 9, 11)
    wide = isvs.PathState.zeros(torch.rand(6, 3, 9, 11), momentum=False)
    view = isvs.PathState(*(t[::2] for t in (wide.beta, wide.zh, wide.zv)), None, wide.iterations[::2])
    assert not view.beta.is_contiguous()
    expected_state = isvs.PathState.zeros(x, momentum=False)
    for sparsity in (0.3, 0.6):  # the second continues the first
        got = isvs.sparsify(x, sparsity, backend="triton", state=view, **EVENTS.kwargs())
        expected = isvs.sparsify(x, sparsity, backend="torch", state=expected_state, **EVENTS.kwargs())
        assert_close(f"output at {sparsity}", got, expected, 1e-5)
    assert torch.equal(wide.iterations[::2], expected_state.iterations) and (wide.iterations[1::2] == 0).all()
    for name, got, want in zip(("beta", "zh", "zv"), (wide.beta[::2], wide.zh[::2], wide.zv[::2]),
                               expected_state.tensors()):  # fmt: skip
        assert_close(name, got, want, 1e-4)
    assert not any(t[1::2].any() for t in (wide.beta, wide.zh, wide.zv))
