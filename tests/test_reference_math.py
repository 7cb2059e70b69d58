"""The reference against the math: dense matrices and pseudo-inverses on tiny images (test-only)."""

import math

import numpy as np
import pytest
import torch

from isvs_triton.config import FAST, REFERENCE, edge_count
from isvs_triton.ops.graph import grad, grad_adjoint
from isvs_triton.ops.lbi import reference
from isvs_triton.ops.projection import reference as projection_reference
from isvs_triton.ops.projection import torch_path as projection_torch
from isvs_triton.testing import SHORT, SHORT_MOMENTUM, assert_close

SIZES = [(1, 1), (1, 5), (5, 1), (2, 2), (4, 4), (5, 3), (3, 7)]


def dense_difference(height: int, width: int) -> np.ndarray:
    """D of isvs_triton/ops/lbi/README.md written from its definition: horizontal edges row-major, then vertical
    edges."""
    rows = []
    for i in range(height):
        for j in range(width - 1):
            rows.append({i * width + j: -1.0, i * width + j + 1: 1.0})
    for i in range(height - 1):
        for j in range(width):
            rows.append({i * width + j: -1.0, (i + 1) * width + j: 1.0})
    d = np.zeros((len(rows), height * width))
    for e, row in enumerate(rows):
        for p, value in row.items():
            d[e, p] = value
    return d


def split_edges(flat: np.ndarray, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense edge vector (..., m) -> (horizontal (..., H, W-1), vertical (..., H-1, W))."""
    nh = height * (width - 1)
    h = torch.from_numpy(flat[..., :nh].copy()).reshape(*flat.shape[:-1], height, width - 1)
    v = torch.from_numpy(flat[..., nh:].copy()).reshape(*flat.shape[:-1], height - 1, width)
    return h, v


@pytest.mark.parametrize("height,width", SIZES, ids=lambda s: str(s))
def test_grad_and_adjoint_match_dense_matrix(height, width):
    d = dense_difference(height, width)
    assert d.shape[0] == edge_count(height, width)
    v = torch.rand(2, height, width, dtype=torch.float64)
    r = np.random.default_rng(1).standard_normal((2, d.shape[0]))
    gh, gv = grad(v)
    eh, ev = split_edges(v.reshape(2, -1).numpy() @ d.T, height, width)
    assert_close("D v (horizontal)", gh, eh, 1e-12)
    assert_close("D v (vertical)", gv, ev, 1e-12)
    rh, rv = split_edges(r, height, width)
    assert_close("D^T r", grad_adjoint(rh, rv), torch.from_numpy(r @ d).reshape(2, height, width), 1e-12)
    if d.size:
        assert np.linalg.norm(d, 2) ** 2 < 8, "||D||^2 < 8 is what makes step <= 1 stable"


def dense_projection(values: np.ndarray, inactive_rows: np.ndarray) -> np.ndarray:
    """(I - D_S^+ D_S) v for one channel, D_S the rows of the inactive edges."""
    if inactive_rows.shape[0] == 0:
        return values
    # every cycle of inactive edges adds a zero singular value, computed as ~1e-16 or larger depending on the LAPACK
    # build; the nonzero ones of a tiny grid are > 1e-3 (relative): cut between them explicitly, not at numpy's default
    return values - np.linalg.pinv(inactive_rows, rcond=1e-8) @ (inactive_rows @ values)


@pytest.mark.parametrize("height,width", SIZES, ids=lambda s: str(s))
@pytest.mark.parametrize("channels,joint", [(1, False), (3, False), (3, True)], ids=["c1", "c3", "c3-joint"])
@pytest.mark.parametrize("density", [0.0, 0.3, 0.7, 1.0])
def test_projection_equals_dense_pseudo_inverse(height, width, channels, joint, density):
    rng = np.random.default_rng(height * 100 + width + int(density * 10))
    d = dense_difference(height, width)
    groups = 1 if joint else channels
    active = rng.random((groups, d.shape[0])) < density
    values = rng.random((channels, height * width))
    expected = np.empty_like(values)
    expected_regions = 0
    for c in range(channels):
        rows = d[~active[0 if joint else c]]
        expected[c] = dense_projection(values[c], rows)
    for g in range(groups):
        rows = d[~active[g]]
        expected_regions += height * width - (np.linalg.matrix_rank(rows) if rows.size else 0)
    ah, av = split_edges(active.astype(np.float64), height, width)
    ah, av = ah.bool(), av.bool()
    v = torch.from_numpy(values).reshape(channels, height, width)
    out, regions = projection_reference.project(v, ah, av)
    assert_close("reference projection", out.reshape(channels, -1), torch.from_numpy(expected), 1e-10)
    assert regions == expected_regions
    out_t, regions_t = projection_torch.project(v[None], ah[None], av[None])
    assert_close("torch projection", out_t[0].reshape(channels, -1), torch.from_numpy(expected), 1e-10)
    assert int(regions_t[0]) == expected_regions


def dense_lbi(x: np.ndarray, target: float, cfg, joint: bool, projection: str):
    """Split LBI of isvs_triton/ops/lbi/README.md with the dense D; returns (output (C, n), iterations)."""
    channels, height, width = x.shape
    d = dense_difference(height, width)
    v = x.reshape(channels, -1)
    edges = d.shape[0] * (1 if joint else channels)
    need = math.ceil(target * edges - 1e-9)
    beta, z = np.zeros_like(v), np.zeros((channels, d.shape[0]))
    beta_prev, z_prev = beta, z

    def active_of(z):
        return (np.linalg.norm(z, axis=0, keepdims=True) > 1) if joint else (np.abs(z) > 1)

    def gamma_of(z):
        if joint:
            norm = np.linalg.norm(z, axis=0, keepdims=True)
            return cfg.kappa * z * np.maximum(1 - 1 / np.maximum(norm, 1e-300), 0)
        return cfg.kappa * np.sign(z) * np.maximum(np.abs(z) - 1, 0)

    k = 0
    while active_of(z).sum() < need and k < cfg.max_iter:
        yb, yz = beta + cfg.momentum * (beta - beta_prev), z + cfg.momentum * (z - z_prev)
        r = yb @ d.T - gamma_of(yz)
        beta_prev, z_prev = beta, z
        z = yz + cfg.alpha / cfg.nu * r
        beta = yb - cfg.kappa * cfg.alpha * ((yb - cfg.scale * v) + (r @ d) / cfg.nu)
        k += 1
    if projection == "none":
        return beta / cfg.scale, k
    values = v if projection == "input" else beta / cfg.scale
    active = active_of(z)
    out = np.stack([dense_projection(values[c], d[~active[0 if joint else c]]) for c in range(channels)])
    return out, k


@pytest.mark.parametrize("height,width", [(1, 5), (4, 4), (5, 3), (6, 6)], ids=lambda s: str(s))
@pytest.mark.parametrize("channels,joint", [(1, False), (3, False), (3, True)], ids=["c1", "c3", "c3-joint"])
@pytest.mark.parametrize(
    "config", [SHORT, SHORT_MOMENTUM, REFERENCE, FAST], ids=["short", "momentum", "reference", "fast"]
)
@pytest.mark.parametrize("projection", ["input", "beta", "none"])
def test_reference_lbi_equals_dense_math(height, width, channels, joint, config, projection):
    x = torch.rand(channels, height, width, dtype=torch.float64)
    target = 0.5
    ((out, info),) = reference.solve(x[None], [target], config, "joint" if joint else "independent", projection)
    expected, iterations = dense_lbi(x.numpy(), target, config, joint, projection)
    assert int(info.iterations[0]) == iterations
    assert bool(info.reached[0])
    assert_close("reference output", out[0].reshape(channels, -1), torch.from_numpy(expected), 1e-9)
