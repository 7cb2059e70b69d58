"""The batched torch backend against the plain reference, over a sweep of shapes, channels and options."""

import pytest
import torch

import isvs_triton as isvs
from isvs_triton.config import FAST
from isvs_triton.samples import crops
from isvs_triton.testing import SHORT, SHORT_MOMENTUM, assert_close

SHAPES = [(1, 1), (1, 5), (7, 3), (32, 32), (64, 48)]
CONFIGS = {"short": SHORT, "momentum": SHORT_MOMENTUM, "fast": FAST}


def images(batch: int, channels: int, height: int, width: int, dtype=torch.float64) -> torch.Tensor:
    """Half real photograph crops, half uniform noise: stops at very different iterations within one batch."""
    noise = torch.rand(batch, channels, height, width, dtype=dtype)
    if height < 8 or width < 8:
        return noise
    photo = crops(max(height, width), batch, seed=batch + channels)[:, :channels, :height, :width].to(dtype)
    return torch.where(torch.arange(batch).view(-1, 1, 1, 1) % 2 == 0, photo, noise)


def both(x, sparsity, **options):
    out = {}
    for backend in ("reference", "torch"):
        out[backend] = isvs.sparsify(x, sparsity, backend=backend, return_info=True, **options)
    return out["reference"], out["torch"]


@pytest.mark.parametrize("height,width", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("channels", [1, 3], ids=["c1", "c3"])
@pytest.mark.parametrize("mode", ["independent", "joint"])
@pytest.mark.parametrize("projection", ["input", "beta", "none"])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_torch_equals_reference_float64(height, width, channels, mode, projection, config):
    """float64: the same iterations, the same support (sparsity, regions) and outputs equal to rounding."""
    x = images(3, channels, height, width)
    options = dict(channels=mode, projection=projection, **CONFIGS[config].kwargs())
    (ref, ref_info), (out, info) = both(x, 0.4, **options)
    for key in ("iterations", "sparsity", "regions", "reached"):
        assert torch.equal(info[key], ref_info[key]), f"{key}: torch {info[key]} != reference {ref_info[key]}"
    assert_close("output", out, ref, 1e-12)


@pytest.mark.parametrize("height,width", [(7, 3), (32, 32)], ids=lambda s: str(s))
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_torch_equals_reference_batch_17(height, width, mode):
    x = images(17, 3, height, width)
    (ref, ref_info), (out, info) = both(x, 0.6, channels=mode, **SHORT.kwargs())
    assert torch.equal(info.iterations, ref_info.iterations)
    assert torch.equal(info.regions, ref_info.regions)
    assert_close("output", out, ref, 1e-12)


@pytest.mark.parametrize("height,width", [(7, 3), (32, 32), (64, 48)], ids=lambda s: str(s))
@pytest.mark.parametrize("projection", ["input", "beta", "none"])
def test_torch_float32_close_to_reference_float64(height, width, projection):
    """float32 math (what users get) stays within 1e-5 of the float64 oracle, with the same stops."""
    x64 = images(4, 3, height, width)
    options = dict(projection=projection, **SHORT.kwargs())
    ref, ref_info = isvs.sparsify(x64, 0.5, backend="reference", return_info=True, **options)
    out, info = isvs.sparsify(x64.float(), 0.5, backend="torch", return_info=True, **options)
    assert out.dtype == torch.float32
    assert torch.equal(info.iterations, ref_info.iterations)
    assert torch.equal(info.regions, ref_info.regions)
    assert_close("float32 output", out, ref, 1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
@pytest.mark.parametrize("mode", ["independent", "joint"])
def test_batch_independence(config, mode):
    """Image i alone and inside a batch (whose other images stop much earlier or later): identical results."""
    x = images(9, 3, 32, 32, dtype=torch.float32)
    options = dict(channels=mode, return_info=True, **{**CONFIGS[config].kwargs(), "max_iter": 3000})
    batch_out, batch_info = isvs.sparsify(x, 0.6, **options)
    assert int(batch_info.iterations.max()) > 2 * int(batch_info.iterations.min()), "stops must differ widely"
    for i in (0, 3, 8):
        alone, alone_info = isvs.sparsify(x[i], 0.6, **options)
        assert torch.equal(alone, batch_out[i])
        assert int(alone_info.iterations) == int(batch_info.iterations[i])


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_path_equals_separate_calls(backend, config):
    """One run, several stops (unsorted on purpose): each output equals its own ``sparsify`` call."""
    x = images(4, 3, 16, 16, dtype=torch.float32)
    sparsities = [0.5, 0.2, 0.35, 0.5]
    options = dict(backend=backend, **CONFIGS[config].kwargs())
    outs, infos = isvs.path(x, sparsities, return_info=True, **options)
    for s, out, info in zip(sparsities, outs, infos):
        single, single_info = isvs.sparsify(x, s, return_info=True, **options)
        assert torch.equal(out, single), f"sparsity {s}"
        assert torch.equal(info.iterations, single_info.iterations)


def test_max_iter_stops_and_reports():
    x = images(2, 3, 16, 16)
    options = {**SHORT.kwargs(), "max_iter": 5}
    y, info = isvs.sparsify(x, 0.9, return_info=True, **options)
    assert info.iterations.tolist() == [5, 5]
    assert not bool(info.reached.any())
    assert bool((info.sparsity < 0.9).all())
    ref = isvs.sparsify(x, 0.9, backend="reference", **options)
    assert_close("output at max_iter", y, ref, 1e-12)
