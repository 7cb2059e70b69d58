"""The stopping rules against hand checks: sparsity counts the image's jumps (so every target below 1 is reachable),
the noise stop is the discrepancy principle, and ``estimate_noise`` finds a known sigma."""

import numpy as np
import pytest
import torch
from PIL import Image

import isvs_triton as isvs
from isvs_triton import backends
from isvs_triton.config import FAST, PROJECTIONS
from isvs_triton.samples import crops
from isvs_triton.testing import SHORT, SHORT_MOMENTUM, assert_backend_agrees, assert_close

CPU_BACKENDS = [name for name in ("reference", "torch", "numba") if name in backends.REGISTRY]


def tied_image(seed: int = 0) -> torch.Tensor:
    """(3, 24, 24) uint8-valued float image with a black background and a few flat objects: most neighbours tie,
    as in Fashion-MNIST product photographs (the case the old rule, over all edges, could not reach)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(3, 24, 24)
    x[:, 4:18, 6:14] = torch.randint(80, 200, (3, 1, 1), generator=g) / 255
    x[:, 9:12, 3:21] = torch.randint(20, 255, (3, 1, 1), generator=g) / 255
    x[:, 5:17, 7:13] += torch.randint(0, 4, (3, 12, 6), generator=g) / 255  # a little texture inside
    return x.clamp(0, 1)


# ------------------------------------------------------------------------------------------ sparsity over jumps
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("channels", ["independent", "joint"])
@pytest.mark.parametrize("target", [0.3, 0.6, 0.9, 0.99])
def test_tied_images_reach_every_target_below_one(backend, channels, target):
    x = torch.stack([tied_image(seed) for seed in range(3)])
    assert float((x[..., 1:] == x[..., :-1]).double().mean()) > 0.7, "most horizontal neighbours tie"
    _, info = isvs.sparsify(
        x, target, backend=backend, channels=channels, return_info=True, **FAST.replace(max_iter=5000).kwargs()
    )
    assert info.reached.all() and info.stopped_by == ["sparsity"] * 3
    assert (info.sparsity >= target).all() and (info.active_fraction < info.sparsity).all()


def test_sparsity_counts_jumps_by_hand():
    """A 1x4 image [0, 0, 1, 1] has one jump among three edges: any target up to 1/1 needs exactly that edge."""
    x = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]], dtype=torch.float64)
    y, info = isvs.sparsify(x, 0.5, backend="reference", return_info=True, **SHORT.kwargs())
    assert float(info.sparsity) == 1.0 and abs(float(info.active_fraction) - 1 / 3) < 1e-12
    assert int(info.regions) == 2 and torch.equal(y, x)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("projection", ["input", "beta", "none"])
@pytest.mark.parametrize("shape", [(3, 1, 1), (1, 5, 1), (3, 6, 7)], ids=["1x1", "5x1", "6x7"])
def test_an_image_without_jumps_returns_unchanged_at_iteration_zero(backend, projection, shape):
    x = torch.full((2, *shape), 0.3)
    x[1] = 0.7
    y, info = isvs.sparsify(x, 0.6, backend=backend, projection=projection, return_info=True)
    assert torch.equal(y, x)
    assert info.iterations.tolist() == [0, 0] and info.reached.all() and info.sparsity.tolist() == [1.0, 1.0]
    assert info.stopped_by == ["sparsity", "sparsity"]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("projection", ["input", "beta", "none"])
@pytest.mark.parametrize("channels", ["independent", "joint"])
def test_target_one_returns_the_input(backend, projection, channels):
    x = torch.stack([tied_image(1), torch.rand(3, 24, 24)])
    y, info = isvs.sparsify(x, 1.0, backend=backend, projection=projection, channels=channels, return_info=True)
    assert torch.equal(y, x)
    assert info.iterations.tolist() == [0, 0] and info.sparsity.tolist() == [1.0, 1.0] and info.reached.all()
    # the regions are the runs of equal pixels: a handful on the tied image, every pixel on the random one
    per_pixel = 24 * 24 * (1 if channels == "joint" else 3)
    assert int(info.regions[1]) == per_pixel and int(info.regions[0]) < per_pixel // 4


# ------------------------------------------------------------------------------------------ the noise stop
def piecewise_constant_plus_noise(sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.full((1, 16, 16), 0.3, dtype=torch.float64)
    x[:, 3:11, 4:13] = 0.7
    x[:, 10:15, 1:6] = 0.5
    return (x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)


@pytest.mark.parametrize("config", [SHORT, SHORT_MOMENTUM], ids=["fast", "momentum"])
def test_noise_stop_is_the_first_iteration_at_the_noise_level(config):
    """Iteration by iteration on the reference backend: the noise stop is the first k at which
    RMS(beta_k / s - x) <= discrepancy * sigma, and its output is the path's output at that k."""
    sigma, tau = 0.05, 1.2
    x = piecewise_constant_plus_noise(sigma)
    options = dict(backend="reference", **config.kwargs())
    rms, k = [], 0
    while True:
        beta, info = isvs.sparsify(x, 0.999, projection="none", return_info=True, **{**options, "max_iter": k})
        assert int(info.iterations) == k and not bool(info.reached)
        rms.append(float((beta - x).square().mean().sqrt()))
        if rms[-1] <= tau * sigma:
            break
        k += 1
        assert k < 2000, "the residual falls to the noise level well before this"
    assert k > 3 and all(r > tau * sigma for r in rms[:-1])
    y, info = isvs.sparsify(x, 0.999, noise=sigma, discrepancy=tau, return_info=True, **options)
    assert int(info.iterations) == k and info.stopped_by == "noise" and not bool(info.reached)
    assert float(info.noise) == sigma
    # an image stopped by its noise level returns beta / scale by default (projection "auto"); any can be asked for
    assert_close("output at the noise stop", y, beta, 0)
    for projection in ("input", "beta"):
        y = isvs.sparsify(x, 0.999, noise=sigma, discrepancy=tau, projection=projection, **options)
        expected = isvs.sparsify(x, 0.999, projection=projection, **{**options, "max_iter": k})
        assert_close(f"projection {projection} at the noise stop", y, expected, 0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("config", [FAST, SHORT_MOMENTUM], ids=["fast", "momentum"])
def test_an_image_stopped_by_its_sparsity_is_projected_as_without_a_noise_stop(backend, config):
    """With a noise stop the default projection ("auto") decides per image: one stopped by its target gets the
    region means of x exactly as without the stop (so the image's mean is kept), one stopped by its noise level
    beta / scale. Before, every image got beta / scale, which FAST's momentum had carried 21 % (median) past the
    input's mean on Fashion-MNIST shot-noise images (docs/notes/calibration.md, "The projection decides per image")."""
    clean = crops(16, 3, seed=5)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    x = torch.cat([noisy, clean])
    sigma = torch.tensor([0.1] * 3 + [0.0] * 3)  # the clean images (sigma 0) can only stop by their target
    options = dict(backend=backend, **config.kwargs())
    y, info = isvs.sparsify(x, 0.4, noise=sigma, return_info=True, **options)
    by_noise = torch.tensor([rule == "noise" for rule in info.stopped_by])
    assert by_noise.any() and not by_noise.all(), info.stopped_by
    projected = isvs.sparsify(x, 0.4, **options)
    beta = isvs.sparsify(x, 0.4, noise=sigma, projection="none", **options)
    assert_close("stopped by sparsity: as without the noise stop", y[~by_noise], projected[~by_noise], 0)
    assert_close("stopped by noise: beta / scale", y[by_noise], beta[by_noise], 0)
    assert_close("the mean is kept", y[~by_noise].mean((2, 3)), x[~by_noise].mean((2, 3)), 1e-5)


@pytest.mark.parametrize("against,backend", [("reference", "torch"), ("torch", "numba")])
@pytest.mark.parametrize("channels", ["independent", "joint"])
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_backends_agree_on_the_noise_stop(against, backend, channels, projection):
    if backend not in backends.REGISTRY:
        pytest.skip(f"{backend} cannot be imported here")
    clean = crops(16, 4, seed=2)
    x = (clean + 0.08 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    x = torch.cat([x, clean])  # noisy images stop by noise, clean ones (sigma 0: no noise stop) by sparsity
    sigma = torch.tensor([0.08] * 4 + [0.0] * 4)
    dtype = torch.float64 if against == "reference" else torch.float32
    info = assert_backend_agrees(
        backend,
        x.to(dtype),
        0.8,
        against=against,
        noise=sigma,
        channels=channels,
        projection=projection,
        **SHORT_MOMENTUM.kwargs(),
    )
    assert "noise" in info.stopped_by and "sparsity" in info.stopped_by


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_path_continues_across_a_noise_stop(backend):
    """An image that stops by its noise level keeps that output at every later target; the others go on."""
    clean = crops(16, 3, seed=4)
    x = torch.cat([(clean + 0.1 * torch.randn_like(clean)).clamp(0, 1), clean])
    targets, options = [0.2, 0.5, 0.9], dict(backend=backend, noise="auto", **SHORT_MOMENTUM.kwargs())
    outs, infos = isvs.path(x, targets, return_info=True, **options)
    for target, out, info in zip(targets, outs, infos):
        y, alone = isvs.sparsify(x, target, return_info=True, **options)
        assert_close(f"path at {target}", out, y, 0)
        assert torch.equal(info.iterations, alone.iterations) and info.stopped_by == alone.stopped_by
    assert "noise" in infos[-1].stopped_by


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_noise_given_per_image_and_in_the_inputs_units(backend):
    x = piecewise_constant_plus_noise(0.05).float().expand(3, 3, 16, 16).contiguous()
    sigma = torch.tensor([0.0, 0.05, 1.0])  # 0: never by noise; 1: the residual is below it at the start
    _, info = isvs.sparsify(x, 0.9, noise=sigma, backend=backend, return_info=True, **SHORT_MOMENTUM.kwargs())
    assert info.stopped_by[1:] == ["noise", "noise"] and info.stopped_by[0] != "noise"
    assert int(info.iterations[2]) == 0 and torch.equal(info.noise.float(), sigma)
    # uint8: sigma in grey levels gives the same stops as sigma / 255 on the float image
    x8 = (x * 255).round().to(torch.uint8)
    _, info8 = isvs.sparsify(x8, 0.9, noise=sigma * 255, backend=backend, return_info=True, **SHORT_MOMENTUM.kwargs())
    _, info01 = isvs.sparsify(
        x8.float() / 255, 0.9, noise=sigma, backend=backend, return_info=True, **SHORT_MOMENTUM.kwargs()
    )
    assert torch.equal(info8.iterations, info01.iterations)
    assert torch.allclose(info8.noise, sigma.double() * 255)


# ------------------------------------------------------------------------------------------ estimate_noise
@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1, 0.2])
def test_estimate_noise_finds_a_known_sigma(sigma):
    """On a piecewise-constant image (no texture) the estimate is within 5 % of sigma (unclipped values)."""
    g = torch.Generator().manual_seed(0)
    clean = torch.full((4, 3, 64, 64), 0.3)
    clean[:, :, 10:40, 20:50] = 0.7
    noisy = clean + sigma * torch.randn(clean.shape, generator=g)
    estimate = isvs.estimate_noise(noisy, value_range=(-2.0, 3.0))
    assert estimate.shape == (4,) and ((estimate / sigma - 1).abs() < 0.05).all(), estimate
    per_channel = isvs.estimate_noise(noisy, per_channel=True, value_range=(-2.0, 3.0))
    assert per_channel.shape == (4, 3) and ((per_channel / sigma - 1).abs() < 0.08).all(), per_channel


def test_estimate_noise_on_every_input_form():
    assert float(isvs.estimate_noise(torch.full((3, 8, 8), 0.5))) == 0.0, "a constant image has no noise"
    noisy = (0.5 + 0.1 * torch.randn(3, 48, 48, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    as_float = isvs.estimate_noise(noisy)
    as_uint8 = (noisy * 255).round().to(torch.uint8)
    from_uint8 = isvs.estimate_noise(as_uint8)
    from_numpy = isvs.estimate_noise(as_uint8.permute(1, 2, 0).numpy())
    from_pil = isvs.estimate_noise(Image.fromarray(as_uint8.permute(1, 2, 0).numpy()))
    assert as_float.shape == () and abs(float(as_float) - 0.1) < 0.01
    assert abs(float(from_uint8) / 255 - float(as_float)) < 2e-3, "uint8 input: sigma in grey levels"
    assert float(from_numpy) == float(from_uint8) == float(from_pil)
    assert isvs.estimate_noise(torch.rand(2, 1, 2, 9)).tolist() == [0.0, 0.0], "no interior pixel: 0"
    assert isvs.estimate_noise(noisy.double()).dtype == torch.float64


def test_noise_is_bounded_by_the_inputs_value_range_not_by_float32():
    """1e39 overflowed float32 inside api.py; the bound is the width of the value range, in the input's units."""
    x = (torch.rand(2, 3, 8, 8) * 255).to(torch.uint8)
    isvs.sparsify(x, 0.6, noise=200.0)  # uint8: standard deviations up to 255
    with pytest.raises(ValueError, match=r"in \[0, 255\]"):
        isvs.sparsify(x, 0.6, noise=300.0)


def test_noise_auto_uses_the_estimate():
    x = (crops(32, 4, seed=1) + 0.08 * torch.randn(4, 3, 32, 32)).clamp(0, 1)
    _, info = isvs.sparsify(x, 0.9, noise="auto", return_info=True)
    assert torch.allclose(info.noise, isvs.estimate_noise(x).double())


@pytest.mark.parametrize(
    "noise,discrepancy,error,match",
    [
        (float("nan"), 1.0, ValueError, "noise must be finite"),
        (-0.1, 1.0, ValueError, r"noise must lie in \[0.0, inf\)"),
        (float("inf"), 1.0, ValueError, "noise must be finite"),
        ("loud", 1.0, ValueError, r"unknown noise 'loud'; accepted: \['auto'\]"),
        (torch.tensor([0.1, 0.1]), 1.0, ValueError, r"shape \(3,\)"),
        (torch.tensor([0.1, -1.0, 0.1]), 1.0, ValueError, r"standard deviation in \[0, 1\].*for every image"),
        (torch.tensor([0.1, float("nan"), 0.1]), 1.0, ValueError, r"in \[0, 1\].*for every image"),
        (1e39, 1.0, ValueError, r"noise must be a standard deviation in \[0, 1\] \(the input's units"),
        (torch.tensor([0.1, 1e39, 0.1], dtype=torch.float64), 1.0, ValueError, r"in \[0, 1\].*for every image"),
        (0.1, 0.0, ValueError, r"discrepancy must lie in \(0.0, inf\)"),
        (0.1, -2.0, ValueError, "discrepancy must lie in"),
        (0.1, "1", TypeError, "discrepancy must be a real number"),
        ([0.1], 1.0, TypeError, "noise must be a real number"),
    ],
    ids=[
        "nan",
        "negative",
        "inf",
        "unknown-name",
        "wrong-length",
        "negative-entry",
        "nan-entry",
        "beyond-the-range",
        "beyond-the-range-entry",
        "tau-zero",
        "tau-negative",
        "tau-string",
        "list",
    ],  # fmt: skip
)
def test_bad_noise_options_are_refused(noise, discrepancy, error, match):
    with pytest.raises(error, match=match):
        isvs.sparsify(torch.rand(3, 3, 8, 8), 0.6, noise=noise, discrepancy=discrepancy)


def test_path_and_the_transform_take_the_noise_options():
    x = (crops(16, 2, seed=6) + 0.1 * torch.randn(2, 3, 16, 16)).clamp(0, 1)
    expected = isvs.sparsify(x, 0.9, noise="auto", discrepancy=1.5)
    assert torch.equal(isvs.path(x, [0.9], noise="auto", discrepancy=1.5)[0], expected)
    assert torch.equal(isvs.Sparsify(0.9, noise="auto", discrepancy=1.5)(x), expected)
    with pytest.raises(ValueError, match="discrepancy"):
        isvs.Sparsify(0.9, noise="auto", discrepancy=0)
    array = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert isvs.sparsify(array, 0.9, noise="auto").shape == array.shape
