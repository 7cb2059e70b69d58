"""The block projection kernels against the torch projection and the dense math, in Triton's interpreter."""

import numpy as np
import pytest
import torch

from isvs_triton.ops.projection import torch_path as projection_torch
from isvs_triton.ops.projection import triton_block
from isvs_triton.testing import assert_close, no_host_reads, projection_conformance_cases

BH, BW = triton_block.BLOCK_H, triton_block.BLOCK_W
CASES = projection_conformance_cases()


@pytest.mark.parametrize("case", [case for _, case in CASES], ids=[name for name, _ in CASES])
def test_conformance(case):
    """The projection conformance suite (isvs_triton/testing.py) on the block kernels."""
    case("triton")


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


def test_many_tiles_merge_in_one_pass_without_host_reads():
    """Random supports over 4x4 tiles per image (and none at all: every border edge joins one region, every union
    contending for the same roots) label as the torch projection does, in a fixed sequence of launches that reads
    nothing back on the host."""
    torch.manual_seed(5)
    height, width = 4 * BH - 3, 4 * BW + 1
    for density in (0.0, 0.15, 0.4):
        active_h = torch.rand(3, 2, height, width - 1) < density
        active_v = torch.rand(3, 2, height - 1, width) < density
        values = torch.rand(3, 2, height, width)
        with no_host_reads():
            out, regions = triton_block.project(values, active_h, active_v)
        expected, expected_regions = projection_torch.project(values, active_h, active_v)
        assert torch.equal(regions, expected_regions), density
        assert_close(f"density {density}", out, expected, 1e-5)
