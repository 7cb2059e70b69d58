"""The path against hand-checks: what the inverse scale space must do on images whose answer is known."""

import pytest
import torch

import isvs_triton as isvs
from isvs_triton.config import edge_count
from isvs_triton.ops.lbi import path as lbi_path
from isvs_triton.ops.lbi import torch_path
from isvs_triton.samples import crops
from isvs_triton.testing import SHORT, SHORT_MOMENTUM, assert_close


@pytest.mark.parametrize("config", [SHORT, SHORT_MOMENTUM], ids=["fast", "momentum"])
@pytest.mark.parametrize("channels", ["independent", "joint"])
def test_sparsity_grows_along_the_path(config, channels):
    """Coarse to fine: the support grows from empty to almost every edge.

    Split LBI lets an edge leave the support when its neighbours' edges enter (z crosses back below 1), so the count
    is not exactly monotone; measured on these crops, a drop is one or two edges (of 2,000 to 6,000). The test
    bounds the count's fall below its running maximum at 0.25% of the edges.
    """
    joint = channels == "joint"
    x = crops(32, 4, seed=3).double()
    edges = edge_count(32, 32) * (1 if joint else 3)
    state, xs = lbi_path.PathState.zeros(x, config.momentum > 0), x * config.scale
    never = lbi_path.stop_rule(xs, 1.0, joint, None)
    never.need += 1
    counts = []
    for k in range(1, 601):
        torch_path.advance(state, xs, never, config.replace(max_iter=k), joint)
        counts.append(lbi_path.count_support(*lbi_path.support(state.zh, state.zv, joint)))
    counts = torch.stack(counts).double() / edges  # (iterations, images)
    assert float(counts[0].max()) < 0.01, "the path starts from an (almost) empty support"
    assert float(counts[-1].min()) > 0.05 and float(counts[-1].median()) > 0.5, "600 iterations go far along it"
    assert float((counts.cummax(0).values - counts).max()) <= 2.5e-3, "never 0.25% below its running max"


def square_image(size=16, low=0.1, high=0.9, noise=0.01):
    x = torch.full((1, size, size), low, dtype=torch.float64)
    x[:, 4:12, 4:12] = high
    return (x + noise * torch.randn_like(x)).clamp(0, 1)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("config", [SHORT, SHORT_MOMENTUM], ids=["fast", "momentum"])
def test_square_comes_back_as_two_flat_regions(backend, config):
    """At the sparsity of its contour, a noisy square gives two regions: exactly the 32 contour edges are active."""
    x = square_image()
    edges = edge_count(16, 16)
    contour = 4 * 8
    y, info = isvs.sparsify(x, contour / edges, backend=backend, return_info=True, **config.kwargs())
    assert bool(info.reached) and int(info.regions) == 2
    assert float(info.sparsity) == contour / edges
    inside = torch.zeros_like(x, dtype=torch.bool)
    inside[:, 4:12, 4:12] = True
    expected = torch.where(inside, x[inside].mean(), x[~inside].mean())
    assert_close("two-region output", y, expected, 1e-12)


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("channels", ["independent", "joint"])
def test_full_sparsity_returns_the_input(backend, channels):
    """With every edge active every pixel is its own region: the output is the input."""
    i, j = torch.meshgrid(torch.arange(9), torch.arange(7), indexing="ij")
    checker = ((i + j) % 2).double()
    x = (0.2 + 0.5 * checker + 0.1 * torch.rand(3, 9, 7, dtype=torch.float64)).clamp(0, 1)
    y, info = isvs.sparsify(x, 1.0, backend=backend, channels=channels, return_info=True, **SHORT.kwargs())
    assert bool(info.reached) and float(info.sparsity) == 1.0
    assert int(info.regions) == (1 if channels == "joint" else 3) * 9 * 7
    assert_close("output at sparsity 1", y, x, 1e-12)


def test_coarse_before_fine_regions_shrink_with_sparsity():
    """Fewer active edges, fewer (larger) regions: the path goes from one region towards one per pixel."""
    x = crops(32, 3, seed=5)
    _, infos = isvs.path(x, [0.1, 0.2, 0.3, 0.4], return_info=True, **SHORT.kwargs())
    assert all(bool(info.reached.all()) for info in infos)
    regions = torch.stack([info.regions for info in infos])
    assert bool((regions[1:] > regions[:-1]).all()), regions
