"""The explicit integrator's Split LBI kernels against the torch backend, in Triton's CPU interpreter
(TRITON_INTERPRET=1, set by the root conftest.py): the conformance suite's explicit cases (identical iterations,
support and outputs, over shapes that cut tiles in every way), then what only this backend does.

Every test runs both kernels: the persistent one (one program per image, all iterations: the default up to
PERSISTENT_MAX_SIDE) and the fused one-launch-per-iteration kernel (the registry's "triton" entry then advances with
``persistent=False``)."""

import functools

import pytest
import torch

import isvs_triton as isvs
from isvs_triton import backends
from isvs_triton.config import FAST
from isvs_triton.ops.lbi import triton_fused
from isvs_triton.testing import assert_backend_agrees, conformance_cases

# the joint shrinkage divides by the norm of z, 0 at the start: 1/0 = inf -> factor 0, as intended (numpy warns)
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
CASES = conformance_cases(("explicit",))  # the events kernel takes the rest: test_events_kernel.py


def advance_with(monkeypatch, **options) -> None:
    """Make the registry's "triton" backend advance with these options of ``triton_fused.advance``."""
    triton = backends.REGISTRY["triton"]
    advance = functools.partial(triton_fused.advance, **options)
    monkeypatch.setitem(
        backends.REGISTRY,
        "triton",
        backends.batched(
            "triton",
            advance,
            triton.project,
            devices=triton.devices,
            dtypes=triton.dtypes,
            integrators=triton.integrators,
        ),
    )


@pytest.fixture(params=["persistent", "fused"], autouse=True)
def kernel(request, monkeypatch):
    if request.param == "fused":
        advance_with(monkeypatch, persistent=False)
    return request.param


@pytest.mark.parametrize("case", [case for _, case in CASES], ids=[name for name, _ in CASES])
def test_conformance(case):
    """The conformance suite every batched backend takes (isvs_triton/testing.py), with both kernels."""
    case("triton")


def test_batches_past_the_index_limit_run_in_chunks(monkeypatch, kernel):
    x = torch.rand(5, 3, 9, 10)
    advance_with(monkeypatch, persistent=kernel == "persistent", index_limit=3 * 2 * x[0].numel())  # 2 per chunk
    assert_backend_agrees("triton", x, 0.5, **FAST.kwargs())


def test_triton_backend_refuses_what_it_cannot_run(monkeypatch):
    with pytest.raises(ValueError, match="float32"):
        isvs.sparsify(torch.rand(1, 3, 4, 4, dtype=torch.float64), backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA tensors"):
        isvs.sparsify(torch.rand(1, 3, 4, 4, device="cpu"), backend="triton")
    # "auto" on the CPU never picks the kernels
    assert backends.resolve("auto", torch.device("cpu"), torch.float32) is not backends.REGISTRY["triton"]
