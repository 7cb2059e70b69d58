"""The benchmark's corruptions against independent implementations of the reference definitions.

Deterministic parts are compared exactly (to float tolerance) with the libraries the reference code calls (cv2,
scipy) and with imagecorruptions (a maintained NumPy port of hendrycks/robustness, installed without its pinned
dependencies by the project's Makefile); random parts are compared by statistics over many draws, since the
reference draws from NumPy's global generator and this package from a generator per image."""

import importlib.util
import sys
import types
from pathlib import Path

import cv2  # opencv-python-headless: a test dependency (pyproject [test])
import numpy as np
import pytest
import torch

from isvs_triton.robustness import BENCHMARK, CONSTANTS, EXTRAS, GROUPS, corrupt
from isvs_triton.robustness import corruptions as ours
from isvs_triton.samples import crops


@pytest.fixture(scope="module")
def reference():
    """imagecorruptions' module; it imports ``pkg_resources`` (gone from recent setuptools) for one helper that
    locates its frost files, so that one function is provided here, pointing at the package's own folder."""
    from skimage.filters import gaussian

    spec = importlib.util.find_spec("imagecorruptions")
    assert spec is not None, "imagecorruptions is installed by `make install` (pip install --no-deps)"
    folder = Path(spec.submodule_search_locations[0])
    shim = types.ModuleType("pkg_resources")
    shim.resource_filename = lambda _, name: str(folder / name)
    saved = sys.modules.get("pkg_resources")
    sys.modules["pkg_resources"] = saved or shim
    try:
        module_spec = importlib.util.spec_from_file_location("_ic_corruptions", folder / "corruptions.py")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["pkg_resources"]
    # two APIs it was written against and that have since gone: skimage's `multichannel`, NumPy's `float_`
    module.gaussian = lambda image, sigma, multichannel=False, **kw: gaussian(
        image, sigma=sigma, channel_axis=-1 if multichannel else None, **kw
    )
    module.np = types.SimpleNamespace(
        **{k: getattr(np, k) for k in dir(np) if not k.startswith("__")}, float_=np.float64
    )
    return module


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy()


def test_the_fifteen_and_the_extras():
    assert len(BENCHMARK) == 15 and set(BENCHMARK) | set(EXTRAS) == set(ours.CORRUPTIONS)
    assert sum(len(g) for g in GROUPS.values()) == 15
    for tier in CONSTANTS.values():
        assert set(tier) == set(ours.CORRUPTIONS) and all(len(v) == 5 for v in tier.values())


@pytest.mark.parametrize("tier, severity", [("cifar", 1), ("cifar", 5), ("tinyimagenet", 3), ("imagenet", 2)])
def test_defocus_blur_is_cv2_filter2d_with_the_reference_disk(reference, tier, severity):
    x = crops(32, 2, seed=11)
    radius, alias = CONSTANTS[tier]["defocus_blur"][severity - 1]
    kernel = reference.disk(radius=radius, alias_blur=alias)
    np.testing.assert_allclose(ours._disk(radius, alias).numpy(), kernel, atol=1e-6)
    out = corrupt(x, "defocus_blur", severity, constants=tier, quantize=False)
    for image, got in zip(x, out):
        planes = [cv2.filter2D(np.ascontiguousarray(p), -1, kernel) for p in image.numpy().astype(np.float32)]
        np.testing.assert_allclose(got.numpy(), np.clip(np.stack(planes), 0, 1), atol=1e-5)


def _clipped_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """make_cifar_c.py's ``clipped_zoom`` on a square (H, W, C) array: scipy's zoom of the centre crop, trimmed."""
    from scipy.ndimage import zoom

    h = image.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    zoomed = zoom(image[top : top + ch, top : top + ch], (factor, factor, 1), order=1)
    trim = (zoomed.shape[0] - h) // 2
    return zoomed[trim : trim + h, trim : trim + h]


@pytest.mark.parametrize("tier, severity", [("cifar", 1), ("cifar", 5), ("imagenet", 5)])
def test_zoom_blur_is_the_mean_of_scipy_zooms(tier, severity):
    x = crops(32, 2, seed=12)
    stop, step = CONSTANTS[tier]["zoom_blur"][severity - 1]
    out = corrupt(x, "zoom_blur", severity, constants=tier, quantize=False)
    for image, got in zip(x, out):
        hwc = _hwc(image).astype(np.float32)
        factors = np.arange(1, stop, step)
        expected = (hwc + sum(_clipped_zoom(hwc, z) for z in factors)) / (len(factors) + 1)
        np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), np.clip(expected, 0, 1), atol=1e-5)


@pytest.mark.parametrize("radius, sigma, angle", [(6, 1.5, 17.0), (9, 2.5, -44.0), (15, 8, 30.0), (10, 4, -100.0)])
def test_motion_blur_kernel_is_imagemagicks_line(reference, radius, sigma, angle):
    x = crops(48, 1, seed=13)[0]
    got = ours._motion_blur(x.double()[None], radius, sigma, torch.tensor([angle]))[0]
    expected = reference._motion_blur(_hwc(x), radius=radius, sigma=sigma, angle=angle)
    np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_glass_blur_swaps_in_the_reference_order():
    rng = np.random.default_rng(3)
    image = rng.random((3, 12, 10)).astype(np.float32)
    delta, iterations = 2, 2
    count = iterations * (12 - 2 * delta) * (10 - 2 * delta)
    offsets = rng.integers(-delta, delta, size=(count, 2))
    expected, k = image.transpose(1, 2, 0).copy(), 0
    for _ in range(iterations):  # the reference's loop, on an (H, W, C) array
        for h in range(12 - delta, delta, -1):
            for w in range(10 - delta, delta, -1):
                dx, dy = offsets[k]
                k += 1
                hp, wp = h + dy, w + dx
                expected[h, w], expected[hp, wp] = expected[hp, wp].copy(), expected[h, w].copy()
    got = ours._swap_pixels(image.copy(), offsets, delta)
    np.testing.assert_array_equal(got, expected.transpose(2, 0, 1))


def test_elastic_pieces_are_cv2_and_scipy():
    from scipy.ndimage import gaussian_filter, map_coordinates

    rng = np.random.default_rng(4)
    image = rng.random((2, 20, 24))
    ys = torch.from_numpy(rng.uniform(-30, 50, size=(20, 24)))
    xs = torch.from_numpy(rng.uniform(-30, 50, size=(20, 24)))
    got = ours._bilinear(torch.from_numpy(image)[None], ys[None], xs[None], "symmetric")[0]
    for c in range(2):
        expected = map_coordinates(image[c], [ys.numpy(), xs.numpy()], order=1, mode="reflect")
        np.testing.assert_allclose(got[c].numpy(), expected, atol=1e-10)
    field = torch.from_numpy(rng.uniform(-1, 1, size=(1, 1, 20, 24)))
    for sigma in (0.96, 6.4, 19.0):  # radii below, near and beyond the image's side
        expected = gaussian_filter(field[0, 0].numpy(), sigma, mode="reflect", truncate=3)
        np.testing.assert_allclose(ours._gaussian_symmetric(field, sigma, 3)[0, 0].numpy(), expected, atol=1e-10)
    # cv2.warpAffine(M, BORDER_REFLECT_101) against the inverse-mapped bilinear sample (cv2 rounds its weights to 1/32)
    source = np.float32([[20, 20], [20, 4], [4, 4]])
    target = source + rng.uniform(-3, 3, size=(3, 2)).astype(np.float32)
    warp = cv2.warpAffine(image[0].astype(np.float32), cv2.getAffineTransform(source, target), (24, 20),
                          borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip
    gy, gx = torch.meshgrid(torch.arange(20.0).double(), torch.arange(24.0).double(), indexing="ij")
    solve = torch.linalg.solve(torch.cat([torch.from_numpy(target).double(), torch.ones(3, 1).double()], 1),
                               torch.from_numpy(source).double())  # fmt: skip
    points = torch.stack([gx, gy, torch.ones_like(gx)], -1) @ solve
    mine = ours._bilinear(torch.from_numpy(image[None, :1]), points[None, ..., 1], points[None, ..., 0], "reflect101")
    mine = mine[0, 0].numpy()
    assert np.abs(mine - warp).max() < 0.04 and np.abs(mine - warp).mean() < 0.01


def test_frost_photographs_are_cv2_resized_and_chosen_among_the_first_five(reference):
    folder = Path(importlib.util.find_spec("imagecorruptions").submodule_search_locations[0]) / "frost"
    ours._frost_photographs.cache_clear()
    photos = ours._frost_photographs(0.2)
    expected = cv2.resize(cv2.imread(str(folder / "frost2.png")), (0, 0), fx=0.2, fy=0.2)[..., [2, 1, 0]] / 255
    assert photos[1].shape[1:] == expected.shape[:2]
    assert np.abs(photos[1].permute(1, 2, 0).numpy() - expected).mean() < 2 / 255
    x = crops(32, 64, seed=14)
    weight, frost_weight = CONSTANTS["cifar"]["frost"][2]
    out = corrupt(x, "frost", 3, quantize=False)
    residual = (out - weight * x) / frost_weight  # the frost crop, where nothing was clipped
    inside = out < 1
    assert residual[inside].min() >= -1e-5 and residual[inside].max() <= 1 + 1e-5


# the random corruptions whose whole function imagecorruptions keeps as the reference wrote it, at ImageNet size:
# the mean absolute change of 6 images against its own draws (NumPy's global generator, seeded here), within 20 %
@pytest.mark.slow
@pytest.mark.parametrize("name", ["glass_blur", "motion_blur", "snow"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_random_corruptions_change_images_as_the_reference_does(reference, name, severity):
    images = np.uint8(crops(224, 6, seed=15).permute(0, 2, 3, 1).numpy() * 255)
    np.random.seed(severity)
    theirs = [np.asarray(getattr(reference, name)(image, severity), dtype=np.float64) for image in images]
    theirs = float(np.mean([np.abs(np.clip(t, 0, 255) - image).mean() / 255 for t, image in zip(theirs, images)]))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    mine = (corrupt(x, name, severity, constants="imagenet") - x).abs().mean().item()
    assert mine == pytest.approx(theirs, rel=0.2)


def test_fog_plasma_has_the_reference_statistics(reference):
    """The diamond-square field against the reference's ``plasma_fractal`` over 300 draws each: level, spread and
    roughness (mean absolute neighbour difference) within 5 % (fog's only random part)."""
    np.random.seed(0)
    theirs = np.stack([reference.plasma_fractal(mapsize=32, wibbledecay=2.5) for _ in range(300)])
    g = torch.Generator().manual_seed(0)
    mine = torch.stack([ours._plasma(g, 32, 2.5) for _ in range(300)]).numpy()
    for stat in (np.mean, np.std, lambda f: np.abs(np.diff(f, axis=-1)).mean()):
        assert stat(mine) == pytest.approx(stat(theirs), rel=0.05)
    assert mine.min() == 0 and mine.max() == 1


def test_elastic_transform_is_the_reference_steps_on_the_same_draws():
    """make_cifar_c.py's elastic_transform written with cv2 and scipy, fed the draws this package makes for image 3
    (imagecorruptions rewrote this corruption, so the reference is spelled out here)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    x = crops(32, 4, seed=17)
    for severity in (2, 5):
        alpha, sigma, affine = CONSTANTS["cifar"]["elastic_transform"][severity - 1]
        out = corrupt(x, "elastic_transform", severity, quantize=False)
        g = ours._generators(torch.arange(4), 0, "elastic_transform", severity)[3]
        image = x[3].permute(1, 2, 0).numpy().astype(np.float32)
        centre, square = np.float32([16, 16]), 32 // 3
        pts1 = np.float32([centre + square, [centre[0] + square, centre[1] - square], centre - square])
        pts2 = (pts1 + ours._uniform(g, -affine, affine, (3, 2)).numpy()).astype(np.float32)
        warped = cv2.warpAffine(image, cv2.getAffineTransform(pts1, pts2), (32, 32), borderMode=cv2.BORDER_REFLECT_101)
        fields = ours._uniform(g, -1, 1, (2, 32, 32)).numpy()
        dx, dy = (gaussian_filter(f, sigma, mode="reflect", truncate=3) * alpha for f in fields)
        ys, xs = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
        expected = np.stack(
            [map_coordinates(warped[..., c], [ys + dy, xs + dx], order=1, mode="reflect") for c in range(3)]
        )
        difference = np.abs(out[3].numpy() - np.clip(expected, 0, 1))
        assert difference.max() < 0.05 and difference.mean() < 0.005  # cv2 rounds its bilinear weights to 1/32


def test_outputs_are_stored_as_8_bits():
    x = crops(32, 3, seed=16)
    for name in ("gaussian_noise", "fog", "zoom_blur", "contrast"):
        out = corrupt(x, name, 3)
        torch.testing.assert_close(out * 255, (out * 255).round(), atol=1e-4, rtol=0)
        assert (corrupt(x, name, 3, quantize=False) - out).abs().max() <= 1 / 255 + 1e-6
