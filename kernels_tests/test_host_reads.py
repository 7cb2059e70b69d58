"""The Triton backend's call with images up to 64 px a side (one program per image for the whole path: the events
kernel, or the explicit persistent kernel; the block projection) reads nothing back on the host between the input
and the result, so a CUDA graph can capture a call: checked on the host side with ``testing.no_host_reads`` (each
read it catches is a synchronisation on a GPU)."""

import pytest
import torch

import isvs_triton as isvs
from isvs_triton import api, backends
from isvs_triton.config import EVENTS, FAST
from isvs_triton.ops.projection import torch_path as projection_torch
from isvs_triton.testing import no_host_reads


def test_the_guard_catches_a_host_read():
    """The negative control: the torch projection decides its merge rounds on the host, and the guard says where."""
    active_h, active_v = torch.rand(1, 1, 6, 5) < 0.3, torch.rand(1, 1, 5, 6) < 0.3
    with pytest.raises(AssertionError, match="torch_path.py"), no_host_reads():
        projection_torch.project(torch.rand(1, 1, 6, 6), active_h, active_v)


@pytest.mark.parametrize("solver, channels", [(EVENTS, "independent"), (EVENTS, "joint"), (FAST, "independent")])
def test_a_call_reads_nothing_back(solver, channels):
    """The backend's whole call — the jumps, the kernel (the events one, or the explicit persistent one of `FAST`),
    the supports, the stop codes, the projection, the info — with targets below 1 and of 1 (as numbers and one per
    image) and with a noise stop. A first call makes the per-device constants (the solve's coefficients), as the
    warm-up before a capture does."""
    torch.manual_seed(2)  # random images, made where the test's tensors live (the GPU with ISVS_TEST_GPU=1)
    x = torch.rand(2, 3, 12, 12)
    solve = backends.REGISTRY["triton"]
    calls = [
        dict(targets=[0.4, 1.0]),
        dict(targets=[torch.tensor([0.3, 1.0])]),
        dict(targets=[0.5], noise=torch.tensor([0.02, 0.1]), discrepancy=1.0),
    ]
    solve(x[:1], [0.5], solver, channels, "auto")
    for call in calls:
        targets = call.pop("targets")
        with no_host_reads():
            solve(x, targets, solver, channels, "auto", **call)


def test_while_capturing_sparsify_and_the_layer_read_nothing_back(monkeypatch):
    """While a CUDA graph captures, ``sparsify`` leaves out the checks of values (NaN, ranges), which would read the
    device, and keeps the others; the output is the same as outside the capture."""
    torch.manual_seed(1)
    x = torch.rand(2, 3, 12, 12)
    layer = isvs.SparsifyLayer(0.6, backend="triton")
    calls = {
        "one target": lambda: isvs.sparsify(x, 0.6, backend="triton"),
        "per image": lambda: isvs.sparsify(x, torch.tensor([0.5, 1.0]), backend="triton"),
        "noise stop": lambda: isvs.sparsify(x, 0.6, noise=torch.tensor([0.05, 0.1]), backend="triton"),
        "layer": lambda: layer(x),
    }
    eager = {name: call() for name, call in calls.items()}
    monkeypatch.setattr(api, "capturing", lambda t: True)
    for name, call in calls.items():
        with no_host_reads():
            captured = call()
        assert torch.equal(captured, eager[name]), name
    with pytest.raises(ValueError, match="sparsity"):  # a setting's check stays
        isvs.sparsify(x, 1.5, backend="triton")


def test_the_training_smoother_times_a_batch_without_waiting(monkeypatch):
    """The training loop's smoother times each batch's smoothing without waiting for the device (events recorded
    around it on a GPU, read when its seconds are asked for): no synchronisation after a batch's smoothing, and the
    time is there afterwards. (``sparsify``'s check of the batch's values still reads its min and max, before the
    kernels are launched.)"""
    from isvs_triton.train.config import parse_args
    from isvs_triton.train.smoother import Smoother

    torch.manual_seed(3)
    x = torch.rand(2, 3, 12, 12)
    smoother = Smoother(parse_args(["--procedure", "fixed", "--backend", "triton", "--sparsity", "0.6"]), 2, 12)
    before = smoother.seconds

    def synchronize(*args, **kwargs):
        raise AssertionError("torch.cuda.synchronize inside a batch")

    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    out = smoother.train_batch(x, 0, torch.arange(2))
    monkeypatch.undo()
    assert smoother.seconds > before
    assert torch.equal(out, smoother.config.smoothing(0.6)(x))  # what the timing wraps, unchanged


@pytest.mark.parametrize("channels", ["independent", "joint"])
def test_while_capturing_the_launch_per_iteration_reads_nothing_back(monkeypatch, channels):
    """The explicit integrator's launch per iteration (images over 64 px a side) decides on the host every few
    launches whether all images have stopped; while a CUDA graph captures it runs the solver's whole budget instead,
    each image stopping itself: nothing read back, and the same result as the checked launches."""
    from isvs_triton.ops.lbi import triton_fused

    torch.manual_seed(4)
    x = torch.rand(2, 3, 9, 11)
    solver = FAST.replace(max_iter=24)  # a budget the interpreter runs in seconds; the images stop before it
    monkeypatch.setattr(triton_fused, "PERSISTENT_MAX_SIDE", 0)  # every image on the launch per iteration
    solve = backends.REGISTRY["triton"]
    checked = solve(x, [0.4], solver, channels, "auto")
    monkeypatch.setattr(triton_fused, "capturing", lambda t: True)
    with no_host_reads():
        captured = solve(x, [0.4], solver, channels, "auto")
    (out, info), (expected, expected_info) = captured[0], checked[0]
    assert torch.equal(out, expected) and torch.equal(info.iterations, expected_info.iterations)
    assert int(info.iterations.max()) < solver.max_iter  # the images stopped by their target, not the budget
