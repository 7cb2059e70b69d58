"""The batched torch backend against the plain reference, over a sweep of shapes, channels and options."""

import pytest
import torch

import isvs_triton as isvs
from isvs_triton.config import EVENTS, FAST
from isvs_triton.ops.lbi import path as lbi_path
from isvs_triton.ops.lbi import torch_path
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


@pytest.mark.parametrize("channels", ["independent", "joint"])
def test_fixed_rounds_of_event_steps_are_the_compacting_loop(channels):
    """``advance_events`` stepping every image a fixed number of rounds (stopped ones kept by selects, nothing read
    on the host: the tile-parallel GPU path's form) gives the states, outputs and steps of the loop over the running
    images, whether the rounds suffice (``step_bound``), fall short (the loop finishes) or exceed; on a batch with a
    flat image, a noise stop, and a path continued to a second target."""
    x = torch.cat([crops(20, 5, seed=6), torch.full((1, 3, 20, 20), 0.4)])
    noise = torch.tensor([0.0, 0.0, 0.08, 0.0, 0.0, 0.0])
    assert torch_path.step_bound(lbi_path.StopRule(*(torch.zeros(1),) * 5, target=0.6), EVENTS) == 15
    assert torch_path.step_bound(lbi_path.StopRule(*(torch.zeros(1),) * 5), EVENTS) is None  # one target per image
    project = isvs.backends.REGISTRY["torch"].project
    results = {}
    for rounds in (None, "bound", 2, 40):

        def advance(state, xs, rule, cfg, joint, rounds=rounds):
            count = torch_path.step_bound(rule, cfg) if rounds == "bound" else rounds
            return torch_path.advance_events(state, xs, rule, cfg, joint, rounds=count)

        state = lbi_path.PathState.zeros(x, momentum=False)
        calls = [lbi_path.solve(x, [t], EVENTS, channels, "auto", advance, project, state, noise) for t in (0.3, 0.6)]
        results[rounds] = [t for ((out, info),) in calls for t in (out, info.iterations, info.sparsity)] + [state.beta]
    for rounds, got in results.items():
        for name, a, b in zip(("out", "steps", "sparsity") * 2 + ("state",), got, results[None]):
            assert torch.equal(a, b), (rounds, name)
