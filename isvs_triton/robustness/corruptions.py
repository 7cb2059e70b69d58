"""Common corruptions (Hendrycks & Dietterich, ICLR 2019) and low resolution, on float (B, C, H, W) images in [0, 1].

The benchmark's fifteen (CIFAR-10-C, Tiny-ImageNet-C, ImageNet-C), in its four groups, and the reference's two extras,
with the five severity constants per image-size tier (``CONSTANTS``: CIFAR up to 32 px, Tiny-ImageNet up to 64,
ImageNet above), each written from the reference code's definition (hendrycks/robustness ``make_*_c.py``):

- noise    gaussian_noise  clip(x + N(0, sigma));  shot_noise  Poisson(x * lam) / lam;  impulse_noise  salt and pepper
           (each value flipped with probability p, to 0 or 1 with even odds)
- blur     defocus_blur  a disk of radius r, antialiased by a 3x3 (5x5 beyond r 8) Gaussian, edges reflected (cv2);
           glass_blur  Gaussian, quantised to uint8, each pixel swapped with a random neighbour within d px, Gaussian;
           motion_blur  ImageMagick's one-sided Gaussian line kernel (width 2r + 1) at a random angle in +-45 deg;
           zoom_blur  the mean of the image and its centre zoomed by each factor of a range (bilinear, as scipy)
- weather  snow  a thresholded, zoomed normal field smeared by a motion blur, added twice, over a whitened image;
           frost  a random crop of one of the reference's frost photographs blended in; fog  a diamond-square plasma
           fractal added and the range rescaled; brightness  HSV value + c
- digital  contrast  (x - channel mean) * c + mean;  elastic_transform  a random affine warp, then a smooth random
           displacement field (bilinear, mirrored edges);  pixelate  PIL BOX resize down and back;  jpeg  PIL quality c
- extras   speckle_noise  clip(x + x * N(0, sigma));  gaussian_blur  skimage Gaussian (nearest edges, 4 sigma)

Outputs are quantised to 8 bits as the reference stores them (``np.uint8``: truncation), unless ``quantize=False``.
Greyscale images stored as RGB (every channel equal) are corrupted as one channel and stay greyscale: the noise is the
same in every channel, as it is for a greyscale photograph, instead of coloured. Image sizes between the tiers'
(28-px Fashion-MNIST at the CIFAR tier): the elastic transform's constants, which the reference writes as fractions
of its image side, are scaled to the image's side; the others are the tier's as written (whole-pixel radii and swap
distances the reference sets by hand per tier, with no rule to scale them by). Shot noise, Poisson(x lam) / lam,
leaves pixels at exactly 0 at 0: on images with a black background (Fashion-MNIST) it changes the object only.
Frost needs the benchmark's frost photographs: they ship in the ``imagecorruptions`` wheel (read from its folder,
without importing it), and nothing stands in for them when it is absent (a clear error says so).

Random draws come from a CPU generator per image seeded by (seed, image index, corruption, severity): an image gets
the same corruption on any device, in any batch, under any number of processes. The arithmetic runs batched on the
images' device where the corruption allows; the per-image parts (angles, crops, swaps) loop over the batch, and
pixelate and JPEG go through PIL on the CPU, as in the original code.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
import zlib
from pathlib import Path

import numba
import numpy as np
import torch
import torch.nn.functional as F

from ..filters import gaussian_blur


def _scaled(side: int, rows: tuple) -> tuple:
    """The reference's elastic constants are fractions of its image side (``IMSIZE * 0.08``)."""
    return tuple(tuple(side * v for v in row) for row in rows)


# the five severities of each corruption, per image-size tier, as the reference code writes them (make_cifar_c.py,
# make_tinyimagenet_c.py, make_imagenet_c.py); tuples are each corruption's parameters, named in its function below
CONSTANTS = {
    "cifar": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
        "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        "zoom_blur": ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
        "snow": (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ),
        "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
        "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
        "elastic_transform": _scaled(
            32, ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
        ),
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
        "jpeg_compression": (80, 65, 58, 50, 40),
        "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    },
    "tinyimagenet": {
        "gaussian_noise": (0.04, 0.08, 0.12, 0.15, 0.18),
        "shot_noise": (250, 100, 50, 30, 15),
        "impulse_noise": (0.01, 0.02, 0.05, 0.08, 0.14),
        "defocus_blur": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
        "glass_blur": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
        "motion_blur": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
        "zoom_blur": ((1.06, 0.01), (1.11, 0.01), (1.16, 0.01), (1.21, 0.01), (1.26, 0.01)),
        "snow": (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
        ),
        "frost": ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
        "fog": ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
        "elastic_transform": _scaled(
            64, ((0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02))
        ),
        "pixelate": (0.9, 0.8, 0.7, 0.6, 0.5),
        "jpeg_compression": (65, 58, 50, 40, 25),
        "speckle_noise": (0.15, 0.2, 0.25, 0.3, 0.35),
        "gaussian_blur": (0.5, 0.75, 1, 1.25, 1.5),
    },
    "imagenet": {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot_noise": (60, 25, 12, 5, 3),
        "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
        "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
        "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
        "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
        "zoom_blur": ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
        "snow": (
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ),
        "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
        "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
        # 244, not 224: the reference's own constant (its comment: "ultimately nothing is incorrect")
        "elastic_transform": _scaled(
            244, ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))
        ),
        "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
        "jpeg_compression": (25, 18, 15, 10, 7),
        "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
        "gaussian_blur": (1, 2, 3, 4, 6),
    },
}
TIERS = {"cifar": 32, "tinyimagenet": 64, "imagenet": 224}  # the side each tier's constants were written for
FROST_SCALE = {"cifar": 0.2, "tinyimagenet": 0.3, "imagenet": 1.0}  # the frost photographs' resize before cropping
CORRUPTIONS = tuple(CONSTANTS["cifar"])
# the benchmark's fifteen (CIFAR-10-C / ImageNet-C) in its four groups; "mean corruption" is over these only
GROUPS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
BENCHMARK = tuple(name for group in GROUPS.values() for name in group)
# the five that lift or flatten the whole image, background included (on a black background they carry most of any
# gain: docs/results.md), and the ten that do not: the second primary measure, "mean corruption (10)"
BACKGROUND_SHIFTING = ("snow", "frost", "fog", "brightness", "contrast")
STEADY_BACKGROUND = tuple(name for name in BENCHMARK if name not in BACKGROUND_SHIFTING)
EXTRAS = ("speckle_noise", "gaussian_blur")  # the reference's held-out extras, reported apart from the mean


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (B, C, H, W), got {getattr(images, 'shape', type(images))}")
    if images.numel() and (not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1):
        raise ValueError("images must be finite and in [0, 1]")


def constants_for(images: torch.Tensor, constants: str = "auto") -> str:
    """The constants' tier: as asked, or by the image's side for "auto" (CIFAR's up to 32 px, Tiny-ImageNet's up to
    64, ImageNet's above)."""
    if constants == "auto":
        side = max(images.shape[-2:])
        return next((tier for tier, limit in TIERS.items() if side <= limit), "imagenet")
    if constants not in CONSTANTS:
        raise ValueError(f"unknown constants {constants!r}; accepted: {['auto', *CONSTANTS]}")
    return constants


def _generators(index: torch.Tensor, seed: int, name: str, severity: int) -> list[torch.Generator]:
    salt = zlib.crc32(name.encode()) * 10 + severity  # by name: adding a corruption changes no other one's draws
    return [torch.Generator().manual_seed(((seed * 1_000_003 + int(i)) * 1009 + salt) % 2**63) for i in index]


def _draw(generators, shape, kind: str, rate: torch.Tensor | None = None) -> torch.Tensor:
    if kind == "normal":
        return torch.stack([torch.randn(shape, generator=g) for g in generators])
    if kind == "uniform":
        return torch.stack([torch.rand(shape, generator=g) for g in generators])
    return torch.stack([torch.poisson(r, generator=g) for r, g in zip(rate, generators)])  # rate on the CPU


def _uniform(generator: torch.Generator, low: float, high: float, shape=()) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def _per_image_pil(x: torch.Tensor, apply) -> torch.Tensor:
    out = [apply(image) for image in x.detach().cpu().numpy()]
    return torch.from_numpy(np.stack(out)).to(x)


def _pixelate(image: np.ndarray, c: float) -> np.ndarray:
    from PIL import Image

    _, h, w = image.shape
    small = (int(w * c), int(h * c))
    planes = [
        Image.fromarray(p.astype(np.float32), mode="F").resize(small, Image.BOX).resize((w, h), Image.BOX)
        for p in image
    ]
    return np.stack([np.asarray(p) for p in planes])


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    array = np.clip(np.rint(image.transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer)).astype(np.float32) / 255
    return decoded[None] if decoded.ndim == 2 else decoded.transpose(2, 0, 1)


def _brightness(x: torch.Tensor, c: float) -> torch.Tensor:
    # HSV value + c: hue and saturation are kept, and RGB is linear in V for fixed (H, S)
    value = x.amax(1, keepdim=True)
    brighter = (value + c).clamp(0, 1)
    return torch.where(value > 0, x * (brighter / value.clamp_min(1e-12)), brighter.expand_as(x))


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma as cv2's RGB2GRAY (0.299 R + 0.587 G + 0.114 B); a one-channel image is its own."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def _quantize(x: torch.Tensor) -> torch.Tensor:
    # np.uint8(clip(y, 0, 1) * 255) truncates; the 1e-4 keeps an exact k/255 from falling to k - 1 by rounding
    return torch.floor(x.clamp(0, 1) * 255 + 1e-4) / 255


# ------------------------------------------------------------------------------------------------ geometry helpers
def _index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Integer positions folded into 0..n-1: "reflect101" mirrors about the edge pixel (cv2's BORDER_REFLECT_101),
    "symmetric" about the edge (scipy's "reflect"), "edge" clamps; any distance from the image."""
    if mode == "edge" or n == 1:
        return i.clamp(0, n - 1)
    if mode == "reflect101":
        period = 2 * n - 2
        i = i.remainder(period)
        return torch.where(i >= n, period - i, i)
    i = i.remainder(2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _bilinear(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, mode: str) -> torch.Tensor:
    """``image`` (B, C, H, W) sampled at real positions (ys, xs) (each (B, H', W')), bilinear, borders by ``mode``."""
    b, c, h, w = image.shape
    y0, x0 = ys.floor(), xs.floor()
    fy, fx = (ys - y0).to(image.dtype)[:, None], (xs - x0).to(image.dtype)[:, None]
    y0, x0 = y0.long(), x0.long()
    flat = image.flatten(2)  # (B, C, H * W)

    def at(rows, cols):
        key = (_index(rows, h, mode) * w + _index(cols, w, mode)).flatten(1)[:, None].expand(b, c, -1)
        return flat.gather(2, key).view(b, c, *ys.shape[1:])

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy


def _gaussian_symmetric(x: torch.Tensor, sigma: float, truncate: float) -> torch.Tensor:
    """scipy's ``gaussian_filter(mode="reflect", truncate=truncate)`` over the last two dims of (B, C, H, W)."""
    if sigma <= 0:
        return x
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, device=x.device)
    kernel = torch.exp(-0.5 * (offsets.double() / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    h, w = x.shape[-2:]
    rows = _index(torch.arange(h, device=x.device)[:, None] + offsets, h, "symmetric")  # (H, 2r + 1)
    cols = _index(torch.arange(w, device=x.device)[:, None] + offsets, w, "symmetric")
    x = (x[..., rows, :] * kernel.view(-1, 1)).sum(-2)  # (B, C, H, 2r + 1, W) -> (B, C, H, W)
    x = (x[..., cols] * kernel).sum(-1)
    return x


def _clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The centre 1/factor of (B, C, H, W) zoomed back to H x W: a crop of ceil(side / factor), scipy's
    ``zoom(order=1)`` (corner-aligned bilinear to round(crop * factor)), then the centre cut out, as the reference."""
    h, w = x.shape[-2:]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    size = (round(ch * factor), round(cw * factor))
    zoomed = F.interpolate(crop, size=size, mode="bilinear", align_corners=True) if size != (ch, cw) else crop
    trim_top, trim_left = (size[0] - h) // 2, (size[1] - w) // 2
    return zoomed[..., trim_top : trim_top + h, trim_left : trim_left + w]


def _motion_blur(x: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor) -> torch.Tensor:
    """ImageMagick's ``MotionBlurImage`` on (B, C, H, W), one angle (degrees) per image: a one-sided Gaussian of
    width 2 ceil(radius) + 1 along the angle, out(y, x) = sum_i k_i in(y + dy_i, x + dx_i), edges replicated; the
    line ends where it leaves the image (as imagecorruptions' port stops)."""
    b, c, h, w = x.shape
    width = int(2 * math.ceil(radius) + 1)
    taps = torch.arange(width, dtype=torch.float64)
    k = torch.exp(-(taps**2) / (2 * sigma**2))
    k = k / k.sum()
    radians = torch.as_tensor(angles, dtype=torch.float64).view(-1, 1) * math.pi / 180
    dy = torch.ceil(taps * torch.sin(radians) - 0.5).long()  # (B, width)
    dx = torch.ceil(taps * torch.cos(radians) - 0.5).long()
    inside = ((dy.abs() < h) & (dx.abs() < w)).long().cumprod(1).to(x.dtype)  # 0 from the first tap outside on
    weights = (k.to(x) * inside).to(x.device)
    rows = (torch.arange(h)[None, None, :] + dy[..., None]).clamp(0, h - 1).to(x.device)  # (B, width, H)
    cols = (torch.arange(w)[None, None, :] + dx[..., None]).clamp(0, w - 1).to(x.device)  # (B, width, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    gathered = x.permute(0, 2, 3, 1)[batch, rows[..., :, None], cols[..., None, :]]  # (B, width, H, W, C)
    return (gathered * weights.view(b, width, 1, 1, 1)).sum(1).permute(0, 3, 1, 2)


def _disk(radius: float, alias_blur: float) -> torch.Tensor:
    """The reference's defocus kernel: an aliased disk on a 17 x 17 (or 2r + 1) grid, normalised, then cv2's
    ``GaussianBlur`` with a 3 x 3 (5 x 5 beyond radius 8) kernel and reflected edges."""
    half = 8 if radius <= 8 else int(radius)
    ksize = 3 if radius <= 8 else 5
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).double()
    disk = disk / disk.sum()
    taps = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    g = torch.exp(-(taps**2) / (2 * alias_blur**2))
    g = g / g.sum()
    n, r = disk.shape[0], ksize // 2
    idx = _index(torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :], n, "reflect101")
    disk = (disk[idx] * g.view(1, -1, 1)).sum(1)  # rows
    return (disk[:, idx] * g.view(1, 1, -1)).sum(2)  # columns


def _filter2d_reflect101(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """cv2's ``filter2D`` (correlation, centred anchor, BORDER_REFLECT_101) of each channel of (B, C, H, W)."""
    r = kernel.shape[0] // 2
    h, w = x.shape[-2:]
    rows = _index(torch.arange(-r, h + r, device=x.device), h, "reflect101")
    cols = _index(torch.arange(-r, w + r, device=x.device), w, "reflect101")
    padded = x[..., rows, :][..., cols]
    c = x.shape[1]
    return F.conv2d(padded, kernel.to(x).expand(c, 1, *kernel.shape), groups=c)


@numba.njit(cache=True)
def _swap_pixels(image, offsets, delta):  # pragma: no cover - compiled
    # the reference's local shuffle, in its order: rows and columns from the far edge inwards, one swap each
    h, w = image.shape[1], image.shape[2]
    k = 0
    for _ in range(offsets.shape[0] // max(1, (h - 2 * delta) * (w - 2 * delta))):
        for y in range(h - delta, delta, -1):
            for x in range(w - delta, delta, -1):
                dx, dy = offsets[k, 0], offsets[k, 1]
                k += 1
                y2, x2 = y + dy, x + dx
                for ch in range(image.shape[0]):
                    image[ch, y, x], image[ch, y2, x2] = image[ch, y2, x2], image[ch, y, x]
    return image


def _plasma(generator: torch.Generator, size: int, decay: float) -> torch.Tensor:
    """A size x size (a power of two) diamond-square height map in [0, 1], as the reference's ``plasma_fractal``:
    each new point the mean of its neighbours plus wibble * U(-wibble, wibble), wibble divided by ``decay`` per
    level, on a torus."""
    field = torch.zeros(size, size, dtype=torch.float64)
    step, wibble = size, 100.0

    def wibbled(values):
        return values / 4 + wibble * _uniform(generator, -wibble, wibble, values.shape)

    while step >= 2:
        half = step // 2
        corners = field[0::step, 0::step]
        squares = corners + corners.roll(-1, 0)
        squares = squares + squares.roll(-1, 1)
        field[half::step, half::step] = wibbled(squares)
        centres, corners = field[half::step, half::step], field[0::step, 0::step]
        field[0::step, half::step] = wibbled(centres + centres.roll(1, 0) + corners + corners.roll(-1, 1))
        field[half::step, 0::step] = wibbled(centres + centres.roll(1, 1) + corners + corners.roll(-1, 0))
        step //= 2
        wibble /= decay
    field -= field.min()
    return field / field.max()


@functools.lru_cache(maxsize=8)
def _frost_photographs(scale: float) -> tuple[torch.Tensor, ...]:
    """The reference's first five frost photographs (its ``randint(5)`` never picks the sixth), RGB in [0, 1],
    resized by ``scale`` as cv2's ``resize(fx=scale)`` (bilinear, half-pixel centres, no antialiasing)."""
    spec = importlib.util.find_spec("imagecorruptions")
    folder = Path(spec.submodule_search_locations[0]) / "frost" if spec and spec.submodule_search_locations else None
    if folder is None or not folder.is_dir():
        raise ValueError(
            "frost needs the benchmark's frost photographs, which ship in the imagecorruptions wheel: "
            "pip install --no-deps imagecorruptions (nothing else stands in for them)"
        )
    from PIL import Image

    photographs = []
    for name in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"):
        array = np.asarray(Image.open(folder / name).convert("RGB"), dtype=np.float32) / 255
        photo = torch.from_numpy(array).permute(2, 0, 1)[None]
        if scale != 1:
            size = (round(photo.shape[-2] * scale), round(photo.shape[-1] * scale))
            photo = F.interpolate(photo, size=size, mode="bilinear", align_corners=False)
        photographs.append(photo[0])
    return tuple(photographs)


# ----------------------------------------------------------------------------------------- the fifteen's new eight
def _defocus_blur(x, c, generators):
    return _filter2d_reflect101(x, _disk(*c))


def _glass_blur(x, c, generators):
    sigma, delta, iterations = c
    h, w = x.shape[-2:]
    blurred = _quantize(gaussian_blur(x, sigma)).cpu().numpy()  # np.uint8(gaussian(x) * 255)
    swaps = iterations * max(0, h - 2 * delta) * max(0, w - 2 * delta)
    for image, g in zip(blurred, generators):  # randint(-delta, delta): high exclusive
        offsets = torch.randint(-delta, delta, (swaps, 2), generator=g).numpy()
        _swap_pixels(image, offsets, delta)
    return gaussian_blur(torch.from_numpy(blurred).to(x), sigma)


def _motion(x, c, generators):
    radius, sigma = c
    return _motion_blur(x, radius, sigma, torch.stack([_uniform(g, -45, 45) for g in generators]))


def _zoom_blur(x, c, generators):
    factors = np.arange(1, c[0], c[1])  # the reference's own np.arange, end point quirks included
    return (x + sum(_clipped_zoom(x, float(z)) for z in factors)) / (len(factors) + 1)


def _snow(x, c, generators):
    loc, scale, zoom, threshold, radius, sigma, blend = c
    b, _, h, w = x.shape
    layer = torch.stack([loc + scale * torch.randn(h, w, generator=g, dtype=torch.float64) for g in generators])
    layer = _clipped_zoom(layer[:, None], zoom)
    layer = torch.where(layer < threshold, 0.0, layer)
    layer = _quantize(layer)  # the reference passes the layer through an 8-bit PNG to ImageMagick, and back
    layer = _motion_blur(layer, radius, sigma, torch.stack([_uniform(g, -135, -45) for g in generators]))
    layer = (layer * 255).round().div(255).to(x)
    whitened = blend * x + (1 - blend) * torch.maximum(x, _gray(x) * 1.5 + 0.5)
    return whitened + layer + layer.flip(-1, -2)


def _frost(x, c, generators, tier):
    weight, frost_weight = c
    photographs = _frost_photographs(FROST_SCALE[tier])
    h, w = x.shape[-2:]
    layers = []
    for g in generators:
        photo = photographs[int(torch.randint(5, (), generator=g))]
        if photo.shape[-2] <= h or photo.shape[-1] <= w:
            raise ValueError(
                f"frost at {tier} constants needs images smaller than {tuple(photo.shape[-2:])}, got {h}x{w}"
            )
        top = int(torch.randint(photo.shape[-2] - h, (), generator=g))
        left = int(torch.randint(photo.shape[-1] - w, (), generator=g))
        crop = photo[:, top : top + h, left : left + w]
        layers.append(crop.mean(0, keepdim=True) if x.shape[1] == 1 else crop)
    return weight * x + frost_weight * torch.stack(layers).to(x)


def _fog(x, c, generators):
    strength, decay = c
    h, w = x.shape[-2:]
    size = 1 << (max(h, w) - 1).bit_length()  # the power of two at or above the side (32 at CIFAR, 256 at 224)
    fog = torch.stack([_plasma(g, size, decay)[:h, :w] for g in generators])[:, None].to(x)
    peak = x.amax((1, 2, 3), keepdim=True)
    return (x + strength * fog) * peak / (peak + strength)


def _elastic(x, c, generators):
    alpha, sigma, affine = c
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    centre = torch.tensor([h // 2, w // 2], dtype=torch.float64)  # (h, w) used as (x, y), as the reference does
    square = min(h, w) // 3
    source = torch.stack([centre + square, torch.stack([centre[0] + square, centre[1] - square]), centre - square])
    targets, fields = [], []
    for g in generators:  # the draws in the reference's order: the affine's points, then dx, then dy
        targets.append(source + _uniform(g, -affine, affine, (3, 2)))
        fields.append(_uniform(g, -1, 1, (2, h, w)))
    # cv2.warpAffine(M) with M mapping source to target: each output pixel reads the input at M^-1 (x, y)
    ones = torch.ones(b, 3, 1, dtype=torch.float64)
    solve = torch.linalg.solve(torch.cat([torch.stack(targets), ones], 2), source.expand(b, 3, 2))  # (B, 3, 2)
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3) @ solve  # (B, H * W, 2)
    points = points.view(b, h, w, 2)
    warped = _bilinear(x.double().cpu(), points[..., 1], points[..., 0], "reflect101")
    dx, dy = (_gaussian_symmetric(torch.stack(fields), sigma, truncate=3) * alpha).unbind(1)
    return _bilinear(warped, ys + dy, xs + dx, "symmetric").to(x)


_RANDOM = (
    "gaussian_noise",
    "speckle_noise",
    "impulse_noise",
    "shot_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
)


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    *,
    constants: str = "auto",
    seed: int = 0,
    index: torch.Tensor | None = None,
    quantize: bool = True,
    keep_greyscale: bool = True,
) -> torch.Tensor:
    """``images`` (B, C, H, W) float in [0, 1] with corruption ``name`` (``CORRUPTIONS``) at ``severity`` 1-5.

    ``index`` (B,): each image's position in its dataset (default 0..B-1); with ``seed`` it fixes the random draws.
    ``constants``: "auto" (by size), or a tier of ``CONSTANTS``; the elastic transform's constants, fractions of the
    image side in the reference, are scaled from the tier's side to the image's (28-px images: 28/32 of CIFAR's).
    ``quantize``: round the output to 8 bits as the benchmark stores it. ``keep_greyscale``: an image whose channels
    are all equal (greyscale stored as RGB) is corrupted as one channel and stays greyscale (the same noise in every
    channel; ``False``: each channel drawn apart, as for a colour image). Returns a new tensor of the same shape,
    dtype and device, in [0, 1]."""
    _check_images(images)
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; accepted: {list(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int in 1-5, got {severity!r}")
    tier = constants_for(images, constants)
    c = CONSTANTS[tier][name][severity - 1]
    if name == "elastic_transform":
        c = tuple(v * max(images.shape[-2:]) / TIERS[tier] for v in c)
    index = torch.arange(images.shape[0]) if index is None else torch.as_tensor(index).cpu()
    if index.shape != images.shape[:1]:
        raise ValueError(f"index must have one entry per image ({images.shape[0]}), got shape {tuple(index.shape)}")
    grey = (images == images[:, :1]).flatten(1).all(1).cpu() if keep_greyscale and images.shape[1] > 1 else None
    if grey is None or not bool(grey.any()):
        return _corrupt(images, name, severity, c, tier, seed, index, quantize)
    out = torch.empty_like(images)
    out[grey] = _corrupt(images[grey][:, :1], name, severity, c, tier, seed, index[grey], quantize).expand(
        -1, images.shape[1], -1, -1
    )
    if not bool(grey.all()):
        out[~grey] = _corrupt(images[~grey], name, severity, c, tier, seed, index[~grey], quantize)
    return out


def _corrupt(images, name, severity, c, tier, seed, index, quantize) -> torch.Tensor:
    """``corrupt`` on checked images of any number of channels, with the severity's constants ``c`` resolved."""
    x, shape = images, tuple(images.shape[1:])
    generators = _generators(index, seed, name, severity) if name in _RANDOM else None
    if name == "gaussian_noise":
        out = x + c * _draw(generators, shape, "normal").to(x)
    elif name == "speckle_noise":
        out = x + x * c * _draw(generators, shape, "normal").to(x)
    elif name == "shot_noise":
        out = _draw(generators, shape, "poisson", rate=x.detach().double().cpu() * c).to(x) / c
    elif name == "impulse_noise":
        u = _draw(generators, (2, *shape), "uniform").to(x.device)
        flipped, salted = u[:, 0] < c, u[:, 1] < 0.5
        out = torch.where(flipped, salted.to(x.dtype), x)
    elif name == "gaussian_blur":
        out = gaussian_blur(x, c)
    elif name == "pixelate":
        out = _per_image_pil(x, lambda image: _pixelate(image, c))
    elif name == "jpeg_compression":
        out = _per_image_pil(x, lambda image: _jpeg(image, c))
    elif name == "contrast":
        mean = x.mean((2, 3), keepdim=True)
        out = (x - mean) * c + mean
    elif name == "brightness":
        out = _brightness(x, c)
    elif name == "frost":
        out = _frost(x, c, generators, tier)
    else:
        out = _GEOMETRIC[name](x, c, generators)
    out = out.clamp(0, 1)
    return _quantize(out).to(images.dtype) if quantize else out


_GEOMETRIC = {
    "defocus_blur": _defocus_blur,
    "glass_blur": _glass_blur,
    "motion_blur": _motion,
    "zoom_blur": _zoom_blur,
    "snow": _snow,
    "fog": _fog,
    "elastic_transform": _elastic,
}


def low_resolution(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Downsample by ``factor`` with antialiasing (bilinear), then upsample back to the input size (bilinear)."""
    _check_images(images)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an int >= 1, got {factor!r}")
    h, w = images.shape[-2:]
    if factor == 1:
        return images.clone()
    if h < factor or w < factor:
        raise ValueError(f"factor {factor} leaves no pixel of a {h}x{w} image")
    small = F.interpolate(images, size=(h // factor, w // factor), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
