"""The events integrator (ops/lbi/README.md, "Events integrator"): the reference against the math (dense solves,
event by event, on tiny images), the batched backends against the reference, and the stop it promises."""

import numpy as np
import pytest
import torch

import isvs_triton as isvs
from isvs_triton.config import EVENTS, SolverConfig, required_active
from isvs_triton.ops.graph import grad
from isvs_triton.ops.lbi import numba_cpu, reference, torch_path
from isvs_triton.ops.lbi import path as lbi_path
from isvs_triton.ops.projection import torch_path as projection_torch
from isvs_triton.samples import crops
from isvs_triton.testing import assert_close, waiting_times

ONE_EVENT = EVENTS.replace(events=1e-9, tolerance=1e-13)  # one activation per step, solves to float64 precision
SHAPES = [(1, 1), (1, 7), (6, 1), (7, 3), (16, 32), (33, 17)]


def difference_matrix(height: int, width: int) -> torch.Tensor:
    """D as a dense (edges, pixels) float64 matrix, rows in the order of ``grad``'s (horizontal, vertical) output."""
    eye = torch.eye(height * width, dtype=torch.float64).view(height * width, height, width)
    dh, dv = grad(eye)
    return torch.cat([dh.flatten(1), dv.flatten(1)], 1).T


def exact_inverse_scale_space(x: torch.Tensor, sparsity: float, nu: float = 1.0) -> torch.Tensor:
    """The large-kappa limit of Split LBI on one channel (H, W), written from its definition, event by event: beta
    minimises 1/2 ||x - beta||^2 + 1/(2 nu) ||D_inactive beta||^2 (a dense solve), z of the inactive edges grows at
    D beta / nu, and the first edge to reach |z| = 1 enters; returns the support (edges,) at the target."""
    d = difference_matrix(*x.shape)
    jumps = (d @ x.flatten()) != 0
    need = required_active(sparsity, int(jumps.sum()))
    active, z = torch.zeros(len(d), dtype=torch.bool), torch.zeros(len(d), dtype=torch.float64)
    while int((active & jumps).sum()) < need:
        inactive = d[~active]
        beta = torch.linalg.solve(torch.eye(d.shape[1], dtype=torch.float64) + inactive.T @ inactive / nu, x.flatten())
        rate = d @ beta / nu
        time = torch.where(active | (rate == 0), torch.inf, (1 - torch.sign(rate) * z) / rate.abs())
        dt = time[jumps].min()
        z = torch.where(active, z, z + dt * rate)
        active |= time <= dt
    return active


def test_beta_solve_is_the_dense_solution():
    torch.manual_seed(0)
    x = torch.rand(2, 5, 7, dtype=torch.float64)
    wh, wv = (torch.rand(2, 5, 6) > 0.4).double(), (torch.rand(2, 4, 7) > 0.4).double()
    iterations = SolverConfig(nu=0.7, tolerance=1e-14).solve_iterations
    beta = reference.solve_beta(torch.zeros_like(x), x, wh, wv, nu=0.7, iterations=iterations)
    for c in range(2):
        d = difference_matrix(5, 7) * torch.cat([wh[c].flatten(), wv[c].flatten()]).view(-1, 1)
        dense = torch.linalg.solve(torch.eye(35, dtype=torch.float64) + d.T @ d / 0.7, x[c].flatten())
        assert_close(f"beta, channel {c}", beta[c].flatten(), dense, 1e-10)
    batched = torch.zeros_like(x)[None]
    torch_path.solve_beta(batched, x[None], wh[None], wv[None], SolverConfig(nu=0.7, tolerance=1e-14))
    assert_close("torch beta", batched[0], beta, 1e-10)


@pytest.mark.parametrize("nu", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("tolerance", [0.3, 1e-2, 1e-3])
def test_a_solve_shrinks_the_error_by_its_tolerance_in_every_form(nu, tolerance):
    """``solve_iterations`` Chebyshev iterations on the spectrum [1, 1 + 8/nu] shrink the error's energy norm
    (against the dense solution) by at least ``tolerance``, whatever the support; the fast backends' form on beta
    alone (``chebyshev_steps``, torch backend) is the same iteration as the reference's, to rounding."""
    torch.manual_seed(int(nu * 10))
    x = torch.rand(2, 6, 8, dtype=torch.float64)
    config = SolverConfig(nu=nu, tolerance=tolerance)
    for share in (0.0, 0.5, 1.0):  # the share of active edges (weight 0): none, about half, all
        wh, wv = (torch.rand(2, 6, 7) >= share).double(), (torch.rand(2, 5, 8) >= share).double()
        d = difference_matrix(6, 8)
        start = x + 0.3 * torch.randn_like(x)  # a warm start
        beta = reference.solve_beta(start.clone(), x, wh, wv, nu, config.solve_iterations)
        for c in range(2):
            w = torch.cat([wh[c].flatten(), wv[c].flatten()])
            operator = torch.eye(48, dtype=torch.float64) + d.T @ torch.diag(w) @ d / nu
            exact = torch.linalg.solve(operator, x[c].flatten())

            def energy(e, operator=operator):
                return float(e @ operator @ e) ** 0.5

            before, after = energy(start[c].flatten() - exact), energy(beta[c].flatten() - exact)
            assert after <= tolerance * before * (1 + 1e-9), (share, c, after / before)
        batched = start.clone()[None]
        torch_path.solve_beta(batched, x[None], wh[None], wv[None], config)
        assert_close(f"torch form, {share} inactive", batched[0], beta, 1e-12)


@pytest.mark.parametrize("joint", [False, True], ids=["independent", "joint"])
def test_time_to_activate_reaches_the_unit_sphere(joint):
    torch.manual_seed(1)
    z, rate = 0.9 * (2 * torch.rand(3, 4, 5, dtype=torch.float64) - 1), torch.randn(3, 4, 5, dtype=torch.float64)
    if joint:
        z = z / z.norm(dim=0, keepdim=True).clamp(min=1) * 0.9
    t = reference.time_to_activate(z, rate, joint)
    assert bool((t > 0).all())
    reached = z + t * rate
    size = reached.norm(dim=0) if joint else reached.abs()
    assert_close("|z + t rate|", size, torch.ones_like(size), 1e-12)
    # and not before: halfway there the edge is still inside
    halfway = z + t / 2 * rate
    assert bool(((halfway.norm(dim=0) if joint else halfway.abs()) < 1).all())


@pytest.mark.parametrize("seed", range(4))
def test_one_event_per_step_is_the_exact_inverse_scale_space(seed):
    """With one activation per step the events integrator has nothing left to approximate: its support is the one of
    the large-kappa limit computed from the definition with dense solves."""
    torch.manual_seed(seed)
    x = torch.rand(1, 1, 5, 6, dtype=torch.float64)
    for sparsity in (0.2, 0.5, 0.8):
        ((out, info),) = reference.solve(x, [sparsity], ONE_EVENT, "independent", "input")
        ah, av = _support(x, ONE_EVENT, sparsity).split([5 * 5, 4 * 6], dim=1)
        expected = exact_inverse_scale_space(x[0, 0], sparsity)
        assert torch.equal(torch.cat([ah.flatten(), av.flatten()]), expected), (seed, sparsity)
        assert int(info.iterations) == required_active(sparsity, expected.numel())


@pytest.mark.slow
def test_the_kappa_path_approaches_its_large_kappa_limit():
    """The explicit Split LBI path (the reference's step) and the events integrator's limit: on tiny random images
    their supports agree on nearly every edge already at the reference's kappa = 10, and at least as well at 40."""
    torch.manual_seed(0)
    x = torch.rand(6, 1, 6, 6, dtype=torch.float64)
    limit = _support(x, ONE_EVENT, 0.5)
    agreement = [
        float((_support(x, SolverConfig(kappa=k, max_iter=10**7), 0.5) == limit).double().mean()) for k in (10.0, 40.0)
    ]
    assert agreement[0] >= 0.95 and agreement[1] >= agreement[0], agreement


def _support(x, config, sparsity):
    ((_, active, _),) = list(lbi_path.stops(x, [sparsity], config, False, torch_path.advance))
    return torch.cat([active.h.flatten(1), active.v.flatten(1)], 1)


@pytest.mark.parametrize("mode", ["independent", "joint"])
@pytest.mark.parametrize("projection", ["input", "none"])
def test_torch_equals_reference_in_float64(mode, projection):
    x = crops(12, 4, seed=3).double()
    expected = reference.solve(x, [0.3, 0.6], EVENTS, mode, projection)
    got = lbi_path.solve(x, [0.3, 0.6], EVENTS, mode, projection, torch_path.advance, projection_torch.project)
    for (out, info), (want, want_info) in zip(got, expected):
        for key in ("iterations", "sparsity", "regions", "reached", "stop"):
            assert torch.equal(info[key], want_info[key]), key
        assert_close("output", out, want, 1e-12)


@pytest.mark.parametrize("height,width", [*SHAPES, (2, 5), (32, 32)], ids=lambda s: str(s))
def test_numba_solve_pass_is_the_dense_iteration(height, width):
    """One pass of the numba solve (one flat loop per channel over shifted views, in a layout with a zero row above
    and below each channel) against v + a (v - u) + b (s x - A v), A = I + D_inactive^T D_inactive / nu written as a
    dense matrix, with random weights on random edges."""
    torch.manual_seed(height * 31 + width)
    d = difference_matrix(height, width)
    edges_h = height * (width - 1)
    weights = torch.rand(len(d), dtype=torch.float64) * (torch.rand(len(d)) < 0.6)  # some edges active (weight 0)
    wh, wv = torch.zeros(2, height, width, dtype=torch.float64), torch.zeros(2, height, width, dtype=torch.float64)
    wh[0, :, : width - 1] = weights[:edges_h].view(height, width - 1)
    wv[0, : height - 1] = weights[edges_h:].view(height - 1, width)
    wh[1], wv[1] = wh[0].flip(0), wv[0]  # a second channel with other weights: the channels stay apart
    v, u, xs = (torch.rand(2, height, width, dtype=torch.float64) for _ in range(3))
    a, b = 0.7, 0.3

    def with_zero_rows(t):
        return np.pad(t.numpy(), ((0, 0), (1, 1), (0, 0)))

    out = with_zero_rows(u)
    numba_cpu._chebyshev_pass(with_zero_rows(v), out, xs.numpy(), with_zero_rows(wh), with_zero_rows(wv), a, b)
    for c in range(2):
        w = torch.cat([wh[c, :, : width - 1].flatten(), wv[c, : height - 1].flatten()])
        dense = torch.eye(height * width, dtype=torch.float64) + d.T @ torch.diag(w) @ d
        vc = v[c].flatten()
        expected = vc + a * (vc - u[c].flatten()) + b * (xs[c].flatten() - dense @ vc)
        assert_close(f"channel {c}", torch.from_numpy(out[c, 1:-1]).flatten(), expected, 1e-12)


def test_numba_selection_is_the_order_statistic():
    """The step's time (the k-th smallest waiting time, by a histogram pass) equals numpy's order statistic exactly, on
    times spread over decades, with ties, zeros, negative values (a joint edge a rounding inside the unit ball) and
    the infinities that mark edges that are not waiting."""
    buckets = np.empty(numba_cpu._BUCKETS, np.int64)
    for values, n, k in waiting_times(np.random.default_rng(0), trials=300, longest=3000):
        got = numba_cpu._select(values.copy(), n, k, buckets)
        assert got == np.partition(values, k)[k], (n, k)


def test_steps_are_bounded_and_the_target_is_met():
    """Each step activates at least its share of the jumps (or all the target still needs): ceil(target / events)
    steps at most; every image reaches its target, and the support only grows along the path."""
    x = crops(32, 16, seed=4)
    outs, infos = isvs.path(x, [0.3, 0.6], return_info=True, **EVENTS.kwargs())
    for sparsity, info in zip((0.3, 0.6), infos):
        assert bool(info.reached.all()) and bool((info.sparsity >= sparsity).all())
        assert int(info.iterations.max()) <= -(-sparsity // EVENTS.events) + 1, info.iterations
    state = lbi_path.PathState.zeros(x, momentum=False)
    supports = [
        torch.cat([active.h.flatten(1), active.v.flatten(1)], 1).clone()
        for _, active, _ in lbi_path.stops(x, [0.3, 0.6], EVENTS, False, torch_path.advance, state=state)
    ]
    assert bool((supports[0] <= supports[1]).all()), "an edge once active stays active"


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_path_and_state_continue_exactly(backend):
    x = crops(16, 4, seed=5)
    outs = isvs.path(x, [0.2, 0.6], backend=backend, **EVENTS.kwargs())
    state = isvs.PathState.zeros(x, momentum=False)
    first = isvs.sparsify(x, 0.2, backend=backend, state=state, **EVENTS.kwargs())
    second = isvs.sparsify(x, 0.6, backend=backend, state=state, **EVENTS.kwargs())
    for name, got, sparsity, continued in (("0.2", outs[0], 0.2, first), ("0.6", outs[1], 0.6, second)):
        alone = isvs.sparsify(x, sparsity, backend=backend, **EVENTS.kwargs())
        assert_close(f"path at {name}", got, alone, 1e-6)
        assert_close(f"continued state at {name}", continued, alone, 1e-6)


def test_options_are_checked_where_they_are_given():
    x = torch.rand(2, 3, 8, 8)
    y, info = isvs.sparsify(x, 0.6, integrator="events", return_info=True)
    assert torch.equal(y, isvs.sparsify(x, 0.6, **EVENTS.kwargs())), "integrator='events' alone is the EVENTS preset"
    assert torch.equal(y, isvs.sparsify(x, 0.6)), "the events integrator is the default"
    assert torch.equal(isvs.sparsify(x, 0.6, events=0.1), isvs.sparsify(x, 0.6, integrator="events", events=0.1))
    with pytest.raises(ValueError, match="events integrator only"):
        isvs.sparsify(x, 0.6, integrator="explicit", events=0.1)
    with pytest.raises(ValueError, match="explicit integrator only"):
        isvs.sparsify(x, 0.6, integrator="events", momentum=0.5)
    with pytest.raises(ValueError, match="explicit integrator only.*pass integrator='explicit' too"):
        isvs.sparsify(x, 0.6, momentum=0.5)  # the default integrator is "events"
    explicit, info = isvs.sparsify(x, 0.6, integrator="explicit", return_info=True)
    assert torch.equal(explicit, isvs.sparsify(x, 0.6, **isvs.FAST.kwargs())), "integrator='explicit' alone is FAST"
    with pytest.raises(ValueError, match="unknown integrator"):
        isvs.sparsify(x, 0.6, integrator="rk4")
    with pytest.raises(ValueError, match=r"events must lie in \(0.0, 1.0\]"):
        isvs.sparsify(x, 0.6, integrator="events", events=0.0)
    with pytest.raises(ValueError, match="tolerance must lie"):
        isvs.sparsify(x, 0.6, integrator="events", tolerance=1.0)


def test_layer_runs_the_events_integrator_compiled():
    layer = isvs.SparsifyLayer(0.6, integrator="events")
    x = torch.rand(2, 3, 12, 12)
    expected = isvs.sparsify(x, 0.6, integrator="events")
    assert torch.equal(layer(x), expected)
    assert torch.equal(torch.compile(layer, backend="aot_eager", fullgraph=True)(x), expected)
    restored = isvs.SparsifyLayer(0.3)
    restored.load_state_dict(layer.state_dict())
    assert torch.equal(restored(x), expected)
