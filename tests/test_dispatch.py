"""Dispatch: which backend ``backend="auto"`` and ``ISVS_BACKEND`` pick, and what each backend refuses (the registry
of isvs_triton/backends.py). The Triton backend's own refusals run in kernels_tests/ (they need its kernels)."""

import os
import subprocess
import sys

import pytest
import torch

import isvs_triton as isvs
from isvs_triton import backends
from isvs_triton.testing import SHORT

FASTKW = SHORT.kwargs()


def test_backend_environment_variable(monkeypatch):
    x = torch.rand(3, 5, 5)
    monkeypatch.setenv("ISVS_BACKEND", "reference")
    assert torch.equal(isvs.sparsify(x, 0.5, **FASTKW), isvs.sparsify(x, 0.5, backend="torch", **FASTKW))
    monkeypatch.setenv("ISVS_BACKEND", "gpu")
    with pytest.raises(ValueError, match="ISVS_BACKEND"):
        isvs.sparsify(x, 0.5)
    # an explicit argument wins over the environment
    isvs.sparsify(x, 0.5, backend="torch", **FASTKW)
    monkeypatch.setenv("ISVS_BACKEND", "")  # empty is unset, not an unknown backend
    assert torch.equal(isvs.sparsify(x, 0.5), isvs.sparsify(x, 0.5, backend="auto"))


def test_auto_picks_numba_on_the_cpu_for_float32_only():
    cpu = torch.device("cpu")
    assert backends.resolve("auto", cpu, torch.float32) is backends.REGISTRY["numba"]
    assert backends.resolve("auto", cpu, torch.float64) is backends.REGISTRY["torch"]
    with pytest.raises(ValueError, match="float32 on CPU tensors"):
        isvs.sparsify(torch.rand(1, 3, 4, 4, dtype=torch.float64), backend="numba")
    with pytest.raises(ValueError, match="float32 on CPU tensors"):
        backends.resolve("numba", torch.device("cuda"), torch.float32)


def test_without_numba_the_cpu_falls_back_to_torch():
    """numba can fail to import (a numpy newer than it supports): 'auto' still works, 'numba' says why it cannot."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch, isvs_triton as isvs\n"
        "from isvs_triton import backends\n"
        "assert 'numba' not in backends.REGISTRY\n"
        "assert backends.resolve('auto', torch.device('cpu'), torch.float32) is backends.REGISTRY['torch']\n"
        "isvs.sparsify(torch.rand(1, 3, 8, 8), 0.5)\n"
        "try:\n    isvs.sparsify(torch.rand(1, 3, 8, 8), 0.5, backend='numba')\n"
        "except ValueError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "needs the numba package, which cannot be imported here" in result.stdout


def test_auto_picks_the_kernels_for_both_integrators_on_cuda(monkeypatch):
    cuda = torch.device("cuda")
    if "triton" not in backends.REGISTRY:
        pytest.skip(backends.UNAVAILABLE["triton"])
    assert backends.auto_name(cuda, torch.float32, "explicit") == "triton"
    assert backends.auto_name(cuda, torch.float32, "events") == "triton"
    assert backends.auto_name(cuda, torch.float64, "events") == "torch"
    # a backend that runs one integrator only is passed over by "auto" and refuses the other by name
    triton = backends.REGISTRY["triton"]
    explicit_only = backends.batched(
        "triton",
        triton.advance,
        triton.project,
        devices=triton.devices,
        dtypes=triton.dtypes,
        integrators=("explicit",),
    )
    monkeypatch.setitem(backends.REGISTRY, "triton", explicit_only)
    assert backends.auto_name(cuda, torch.float32, "events") == "torch"
    with pytest.raises(ValueError, match="runs the integrators \\['explicit'\\], not 'events'"):
        backends.resolve("triton", cuda, torch.float32, "events")
