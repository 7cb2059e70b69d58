"""The block projection kernels against the torch projection and the dense math, in Triton's interpreter."""

import numpy as np
import pytest
import torch

from isvs_triton.ops.projection import torch_path as projection_torch
from isvs_triton.ops.projection import triton_block
from isvs_triton.testing import assert_close

BH, BW = triton_block.BLOCK_H, triton_block.BLOCK_W
SHAPES = [(1, 1), (1, 9), (7, 1), (5, 3), (BH, BW), (BH + 1, BW + 1), (2 * BH + 3, 2 * BW - 1)]


@pytest.mark.parametrize("height,width", SHAPES, ids=lambda s: str(s))
@pytest.mark.parametrize("channels,groups", [(1, 1), (3, 3), (3, 1)], ids=["c1", "c3", "c3-joint"])
@pytest.mark.parametrize("density", [0.0, 0.35, 0.7, 1.0])
def test_block_projection_equals_torch(height, width, channels, groups, density):
    active_h = torch.rand(2, groups, height, width - 1) < density
    active_v = torch.rand(2, groups, height - 1, width) < density
    values = torch.rand(2, channels, height, width)
    expected, expected_regions = projection_torch.project(values, active_h, active_v)
    out, regions = triton_block.project(values, active_h, active_v)
    assert torch.equal(regions, expected_regions)
    assert_close("region means", out, expected, 1e-5)


def test_regions_that_cross_tiles_many_times():
    """A serpentine corridor crosses every tile border back and forth: one region, found by the border merge."""
    height, width = 3 * BH + 1, 2 * BW + 5
    wall = torch.zeros(height, width, dtype=torch.bool)
    wall[1::2, :] = True
    for row in range(1, height, 2):  # open one end of every wall row, alternating sides
        wall[row, -1 if (row // 2) % 2 == 0 else 0] = False
    # an edge is active (a cut) when it joins a corridor pixel and a wall pixel
    active_h = (wall[:, 1:] != wall[:, :-1]).view(1, 1, height, width - 1)
    active_v = (wall[1:, :] != wall[:-1, :]).view(1, 1, height - 1, width)
    values = torch.rand(1, 1, height, width)
    out, regions = triton_block.project(values, active_h, active_v)
    expected, expected_regions = projection_torch.project(values, active_h, active_v)
    assert torch.equal(regions, expected_regions)
    assert_close("serpentine", out, expected, 1e-5)
    corridor = values[0, 0][~wall]
    assert np.isclose(float(out[0, 0][~wall][0]), float(corridor.mean()), atol=1e-5)
