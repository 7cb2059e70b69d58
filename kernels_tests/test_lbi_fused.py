"""The Split LBI kernels against the torch backend, in Triton's CPU interpreter (TRITON_INTERPRET=1, set by the
root conftest.py): identical iterations, support and outputs, over shapes that cut tiles in every way.

Every test runs both kernels: the persistent one (one program per image, all iterations: the default up to
PERSISTENT_MAX_SIDE) and the fused one-launch-per-iteration kernel (the registry's "triton" entry then advances with
``persistent=False``)."""

import functools

import pytest
import torch

import isvs_triton as isvs
from isvs_triton import backends
from isvs_triton.config import DEFAULT, SolverConfig
from isvs_triton.ops.lbi import triton_fused
from isvs_triton.ops.lbi.triton_fused import BLOCK
from isvs_triton.testing import (
    assert_backend_agrees,
    assert_close,
    assert_state_view_advances_in_place,
    images_stopping_far_apart,
)

# the joint shrinkage divides by the norm of z, 0 at the start: 1/0 = inf -> factor 0, as intended (numpy warns)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
BH, BW = BLOCK
# few iterations each, since the interpreter runs every program in Python: momentum (the defaults) and none
CONFIGS = {"default": DEFAULT, "plain": SolverConfig(scale=1000.0, max_iter=200)}
SHAPES = [(1, 1), (1, 7), (6, 1), (7, 3), (BH, BW), (BH + 1, BW + 1), (BH - 1, BW - 1), (2 * BH + 3, 5)]


def advance_with(monkeypatch, **options) -> None:
    """Make the registry's "triton" backend advance with these options of ``triton_fused.advance``."""
    triton = backends.REGISTRY["triton"]
    advance = functools.partial(triton_fused.advance, **options)
    monkeypatch.setitem(backends.REGISTRY, "triton", backends.batched(
        "triton", advance, triton.project, devices=triton.devices, dtypes=triton.dtypes, integrators=triton.integrators,
    ))  # fmt: skip


@pytest.fixture(params=["persistent", "fused"], autouse=True)
def kernel(request, monkeypatch):
    if request.param == "fused":
        advance_with(monkeypatch, persistent=False)
    return request.param


def compare(x, sparsity, **options):
    return assert_backend_agrees("triton", x, sparsity, **options)


@pytest.mark.parametrize("height,width", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("channels", [1, 3], ids=["c1", "c3"])
@pytest.mark.parametrize("mode", ["independent", "joint"])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_fused_kernel_equals_torch(height, width, channels, mode, config):
    x = torch.rand(2, channels, height, width)
    compare(x, 0.5, channels=mode, **CONFIGS[config].kwargs())


@pytest.mark.parametrize("height,width", [(1, 7), (7, 3), (BH + 1, BW + 1)], ids=lambda s: str(s))
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_tied_neighbours_are_not_counted(height, width, mode):
    """Sparsity counts jumps: on images of four grey levels most neighbours tie, and the kernels must skip them."""
    x = (torch.rand(3, 3, height, width) * 3).round() / 3
    compare(x, 0.7, channels=mode, **DEFAULT.kwargs())


@pytest.mark.parametrize("height,width", [(12, 16), (BH + 1, BW + 1)], ids=lambda s: str(s))
@pytest.mark.parametrize("mode", ["independent", "joint"])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_noise_stop_equals_torch(height, width, mode, config):
    """The residual is summed in the kernels: noisy images stop by noise, the one with sigma 0 by sparsity."""
    ramp = torch.linspace(0.2, 0.8, width).expand(3, 3, height, width)
    noise = torch.randn(3, 3, height, width, generator=torch.Generator().manual_seed(0)).to(ramp.device)
    x = (ramp + 0.1 * noise).clamp(0, 1)
    info = compare(
        x,
        0.999,
        channels=mode,
        noise=torch.tensor([0.1, 0.1, 0.0]),
        discrepancy=1.5,
        **{**CONFIGS[config].kwargs(), "max_iter": 40},
    )
    assert info.stopped_by[:2] == ["noise", "noise"] and info.stopped_by[2] != "noise"


@pytest.mark.parametrize("projection", ["input", "beta", "none"])
def test_fused_kernel_all_projections(projection):
    compare(torch.rand(2, 3, 9, 10), 0.4, projection=projection, **DEFAULT.kwargs())


@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_images_that_stop_far_apart(mode):
    """A noisy image stops within a few iterations, a smooth ramp much later, a nearly flat one at max_iter."""
    x = images_stopping_far_apart()
    info = compare(x, 0.6, channels=mode, **{**DEFAULT.kwargs(), "max_iter": 30})
    assert info.reached.tolist() == [True, True, False]
    assert int(info.iterations[1]) > 3 * int(info.iterations[0]) and int(info.iterations[2]) == 30


def test_batches_past_the_index_limit_run_in_chunks(monkeypatch, kernel):
    x = torch.rand(5, 3, 9, 10)
    advance_with(monkeypatch, persistent=kernel == "persistent", index_limit=3 * 2 * x[0].numel())  # 2 per chunk
    compare(x, 0.5, **DEFAULT.kwargs())


def test_state_that_is_not_contiguous_is_advanced_in_place():
    assert_state_view_advances_in_place("triton")


def test_path_continues_exactly():
    x = torch.rand(2, 3, 8, 9)
    outs = isvs.path(x, [0.2, 0.5], backend="triton", **DEFAULT.kwargs())
    for s, out in zip([0.2, 0.5], outs):
        assert_close(f"path at {s}", out, isvs.sparsify(x, s, backend="torch", **DEFAULT.kwargs()), 1e-5)


def test_triton_backend_refuses_what_it_cannot_run(monkeypatch):
    with pytest.raises(ValueError, match="float32"):
        isvs.sparsify(torch.rand(1, 3, 4, 4, dtype=torch.float64), backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA tensors"):
        isvs.sparsify(torch.rand(1, 3, 4, 4, device="cpu"), backend="triton")
    # "auto" on the CPU never picks the kernels
    assert backends.resolve("auto", torch.device("cpu"), torch.float32) is not backends.BACKENDS["triton"]
