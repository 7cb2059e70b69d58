"""The numba CPU backend (compiled per-image loops, union-find projection) against the torch backend: the conformance
suite (the same stops, support and regions, outputs within float32 rounding), then what only this backend does."""

import threading

import pytest
import torch

import isvs_triton as isvs
from isvs_triton.config import FAST
from isvs_triton.ops import parallel
from isvs_triton.ops.lbi import numba_cpu
from isvs_triton.ops.lbi import path as lbi_path
from isvs_triton.ops.projection import numba_cpu as projection_numba
from isvs_triton.ops.projection import torch_path as projection_torch
from isvs_triton.samples import crops
from isvs_triton.testing import (
    SHORT_MOMENTUM,
    assert_backend_agrees,
    assert_close,
    conformance_cases,
    projection_conformance_cases,
)

CASES = conformance_cases()
SHAPES = [(1, 1), (1, 7), (6, 1), (7, 3), (16, 32), (33, 17)]


@pytest.mark.parametrize("case", [case for _, case in CASES], ids=[name for name, _ in CASES])
def test_conformance(case):
    """The conformance suite every batched backend takes (isvs_triton/testing.py)."""
    case("numba")


@pytest.mark.parametrize("height,width", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("channels", [1, 3], ids=["c1", "c3"])
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_numba_equals_torch_with_momentum_over_long_paths(height, width, channels, mode):
    """Beyond the suite (whose paths stay short for the kernels' interpreter): hundreds of iterations."""
    assert_backend_agrees(
        "numba", torch.rand(3, channels, height, width), 0.5, channels=mode, **SHORT_MOMENTUM.kwargs()
    )


@pytest.mark.parametrize("projection", ["input", "beta", "none"])
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_numba_on_photographs_all_projections(projection, mode):
    """Real crops with the explicit integrator (FAST): the same stops as torch, image by image."""
    x = crops(32, 24, seed=3)
    info = assert_backend_agrees("numba", x, 0.6, channels=mode, projection=projection, **FAST.kwargs())
    assert info.iterations.min() < 20 and info.reached.any()


@pytest.mark.parametrize("projection", ["input", "none"])
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_numba_on_photographs_at_the_default_solver(projection, mode):
    """Real crops with the default events integrator. Its solves sum their dot products in another order than
    torch's, so on real crops an edge whose activation time ties another's to float32 rounding can enter in the
    other step: measured on these crops, 3 of 24 images (independent channels) end 2-3 edges apart of ~4,700 jumps,
    with the same step counts, an RMS output difference of 5e-5 and 0.01 % of the pixels apart by more than 1e-3."""
    x = crops(32, 24, seed=3)
    options = dict(channels=mode, projection=projection, return_info=True)
    expected, expected_info = isvs.sparsify(x, 0.6, backend="torch", **options)
    out, info = isvs.sparsify(x, 0.6, backend="numba", **options)
    assert torch.equal(info.iterations, expected_info.iterations) and bool(info.reached.all())
    apart = info.sparsity != expected_info.sparsity
    assert int(apart.sum()) <= 4 and float((info.sparsity - expected_info.sparsity).abs().max()) < 1e-3
    assert float((out - expected).square().mean().sqrt()) < 2e-4
    assert float(((out - expected).abs() > 1e-3).float().mean()) < 1e-3
    same = ~apart  # the images whose supports agree take the same outputs
    assert_close("outputs of the images that agree", out[same], expected[same], 1e-5)


@pytest.mark.parametrize("height,width", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("channels", [1, 3], ids=["c1", "c3"])
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_masks_equal_the_torch_masks(height, width, channels, mode):
    """The jumps and supports the driver reads, formed in the compiled loops, against ``path.TORCH_MASKS``: 8-bit
    values (many tied neighbours, one constant image) and z around the threshold 1 (exactly 1 is not active)."""
    joint, generator = mode == "joint", torch.Generator().manual_seed(height * 31 + width + channels)
    xs = torch.randint(0, 4, (4, channels, height, width), generator=generator).float() * 0.7
    xs[1] = 0.3
    jumps, want_jumps = numba_cpu.MASKS.jumps(xs, joint), lbi_path.TORCH_MASKS.jumps(xs, joint)
    for name, got, want in zip(("jumps_h", "jumps_v", "count"), jumps, want_jumps):
        assert torch.equal(got, want), name
    rule = lbi_path.stop_rule(xs, 0.5, joint, None)
    near_one = torch.tensor([1.0, -1.0, 1.0 + 2**-23, -(1.0 + 2**-23), 0.5, 1.5, -2.0, 0.0])
    zh, zv = (
        near_one[torch.randint(0, 8, (4, channels, *shape), generator=generator)] * (0.6 if joint else 1.0)
        for shape in ((height, width - 1), (height - 1, width))
    )
    support, want = numba_cpu.MASKS.support(zh, zv, rule, joint), lbi_path.TORCH_MASKS.support(zh, zv, rule, joint)
    for name in support._fields:
        assert torch.equal(getattr(support, name), getattr(want, name)), name
    assert int(jumps[2][1]) == 0 and (int(support.edges.sum()) > 0) == (zh.numel() + zv.numel() > 0)  # not vacuous


PROJECTION_CASES = projection_conformance_cases()


@pytest.mark.parametrize("case", [case for _, case in PROJECTION_CASES], ids=[name for name, _ in PROJECTION_CASES])
def test_projection_conformance(case):
    case("numba")


def test_union_find_projection_is_bit_identical_to_torch():
    """Beyond the suite's 1e-5: both add the pixels of a region in raster order, so the means are the same bits."""
    for density in (0.0, 0.4, 0.8, 1.0):
        active_h, active_v = torch.rand(3, 3, 13, 20) < density, torch.rand(3, 3, 12, 21) < density
        values = torch.rand(3, 3, 13, 21)
        out, regions = projection_numba.project(values, active_h, active_v)
        expected, expected_regions = projection_torch.project(values, active_h, active_v)
        assert torch.equal(regions, expected_regions) and torch.equal(out, expected)


def test_results_do_not_depend_on_the_thread_count():
    x = crops(32, 10, seed=1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = isvs.sparsify(x, 0.6, backend="numba", return_info=True)
        torch.set_num_threads(3)
        three = isvs.sparsify(x, 0.6, backend="numba", return_info=True)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one[0], three[0]) and torch.equal(one[1].iterations, three[1].iterations)


@pytest.fixture
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.skipif(parallel._set_openmp_threads is None, reason="torch's parallel backend is not OpenMP here")
def test_a_call_runs_its_torch_operations_on_one_thread_and_its_loops_on_all(two_torch_threads, monkeypatch):
    """Inside a numba backend call this thread's torch operations use one thread (idle OpenMP workers would spin on
    the loops' cores), the compiled loops as many as torch had; a thread that starts meanwhile, and this one after
    the call, keep torch's count."""
    seen, shares = [], []

    def watched(fn, count):
        seen.append(torch.get_num_threads())
        started = []
        thread = threading.Thread(target=lambda: started.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        seen.extend(started)
        parallel.in_parallel(lambda images: (shares.append(len(images)), fn(images)), count)

    monkeypatch.setattr(numba_cpu, "in_parallel", watched)
    isvs.sparsify(crops(16, 6, seed=2), 0.6, backend="numba")
    assert seen[:2] == [1, 2] and set(seen[::2]) == {1} and set(seen[1::2]) == {2}
    assert len(shares) % 2 == 0 and set(shares) == {3}  # each loop: two shares of the six images
    assert torch.get_num_threads() == 2


@pytest.mark.skipif(parallel._set_openmp_threads is None, reason="torch's parallel backend is not OpenMP here")
def test_the_scope_restores_the_count_on_error_and_nests(two_torch_threads):
    with pytest.raises(RuntimeError):
        with parallel.cores_to_compiled_loops():
            with parallel.cores_to_compiled_loops():
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1  # the inner scope leaves the outer one's count
            raise RuntimeError
    assert torch.get_num_threads() == 2 and parallel._scope.threads is None


class _Crops(torch.utils.data.Dataset):
    """Crops smoothed by the transform inside the dataset, as a torchvision-style pipeline does."""

    def __init__(self, transform):
        self.images, self.transform = crops(16, 8, seed=5), transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.transform(self.images[index])


def test_transform_in_dataloader_workers_equals_the_main_process():
    """The default CPU backend inside DataLoader worker processes (forked after the parent ran it: its thread pool
    must not be inherited) gives what the main process gives."""
    transform = isvs.Sparsify(0.6)
    expected = transform(_Crops(transform).images)  # the parent runs the batch first: its thread pool now exists
    loader = torch.utils.data.DataLoader(_Crops(transform), batch_size=3, num_workers=2)
    assert torch.equal(torch.cat(list(loader)), expected)


def test_the_first_compilation_is_announced_once(monkeypatch, capsys):
    """The first sparsify on a machine compiles the kernels for seconds; it says so once, and not when cached."""
    import os

    monkeypatch.setattr(numba_cpu, "_announced", False)
    monkeypatch.setattr(os.path, "exists", lambda path: True)  # every kernel in numba's cache: no word
    assert not numba_cpu.announce_compilation()
    monkeypatch.setattr(numba_cpu, "_announced", False)
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # as on a machine without numba's cache
    assert numba_cpu.announce_compilation() and not numba_cpu.announce_compilation()  # once per process
    assert capsys.readouterr().err.count("compiling the CPU kernels with numba") == 1
