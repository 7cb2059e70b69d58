"""Common corruptions (Hendrycks & Dietterich, ICLR 2019) and low resolution, on float (B, C, H, W) images in [0, 1].

The definitions and the five severity constants per corruption are those of the CIFAR-10-C and ImageNet-C code:

- gaussian_noise   clip(x + N(0, sigma))                  speckle_noise  clip(x + x * N(0, sigma))
- shot_noise       clip(Poisson(x * lam) / lam)           impulse_noise  salt-and-pepper: each value flipped with
                                                                         probability p, to 0 or 1 with even odds
- gaussian_blur    Gaussian filter, sigma (skimage: nearest-edge padding, truncated at 4 sigma)
- pixelate         PIL BOX resize to c * size and back    jpeg_compression  PIL JPEG at quality c
- contrast         (x - channel mean) * c + channel mean  brightness     HSV value + c, clipped

Random draws come from a CPU generator per image seeded by (seed, image index, corruption, severity): an image gets
the same corruption on any device, in any batch, under any number of processes. The arithmetic runs batched on the
images' device; pixelate and JPEG go through PIL on the CPU, as in the original code.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F

from ..data import SMALL_SIDE
from ..filters import gaussian_blur

CONSTANTS = {
    "cifar": {
        "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
        "shot_noise": (500, 250, 100, 75, 50),
        "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
        "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
        "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
        "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
        "jpeg_compression": (80, 65, 58, 50, 40),
        "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
        "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    },
    "imagenet": {
        "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
        "shot_noise": (60, 25, 12, 5, 3),
        "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
        "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
        "gaussian_blur": (1, 2, 3, 4, 6),
        "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
        "jpeg_compression": (25, 18, 15, 10, 7),
        "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
        "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    },
}
CORRUPTIONS = tuple(CONSTANTS["cifar"])
NOISES = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")  # high-frequency: where smoothing helps
LOW_FREQUENCY = ("gaussian_blur", "pixelate", "jpeg_compression", "contrast", "brightness")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a float tensor (B, C, H, W), got {getattr(images, 'shape', type(images))}")
    if images.numel() and (not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1):
        raise ValueError("images must be finite and in [0, 1]")


def constants_for(images: torch.Tensor, constants: str = "auto") -> str:
    """ "cifar" or "imagenet": as asked, or by size for "auto" (CIFAR's up to 64 px, ImageNet's above)."""
    if constants == "auto":
        return "cifar" if max(images.shape[-2:]) <= SMALL_SIDE else "imagenet"
    if constants not in CONSTANTS:
        raise ValueError(f"unknown constants {constants!r}; accepted: ['auto', 'cifar', 'imagenet']")
    return constants


def _generators(index: torch.Tensor, seed: int, name: str, severity: int) -> list[torch.Generator]:
    salt = (CORRUPTIONS.index(name) + 1) * 10 + severity
    return [torch.Generator().manual_seed(((seed * 1_000_003 + int(i)) * 1009 + salt) % 2**63) for i in index]


def _draw(generators, shape, kind: str, rate: torch.Tensor | None = None) -> torch.Tensor:
    if kind == "normal":
        return torch.stack([torch.randn(shape, generator=g) for g in generators])
    if kind == "uniform":
        return torch.stack([torch.rand(shape, generator=g) for g in generators])
    return torch.stack([torch.poisson(r, generator=g) for r, g in zip(rate, generators)])  # rate on the CPU


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


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    *,
    constants: str = "auto",
    seed: int = 0,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """``images`` (B, C, H, W) float in [0, 1] with corruption ``name`` (``CORRUPTIONS``) at ``severity`` 1-5.

    ``index`` (B,): each image's position in its dataset (default 0..B-1); with ``seed`` it fixes the random draws.
    Returns a new tensor of the same shape, dtype and device, in [0, 1]."""
    _check_images(images)
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; accepted: {list(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int in 1-5, got {severity!r}")
    c = CONSTANTS[constants_for(images, constants)][name][severity - 1]
    index = torch.arange(images.shape[0]) if index is None else torch.as_tensor(index).cpu()
    if index.shape != images.shape[:1]:
        raise ValueError(f"index must have one entry per image ({images.shape[0]}), got shape {tuple(index.shape)}")
    x, shape = images, tuple(images.shape[1:])
    if name in ("gaussian_noise", "speckle_noise", "impulse_noise", "shot_noise"):
        generators = _generators(index, seed, name, severity)
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
    else:
        out = _brightness(x, c)
    return out.clamp(0, 1)


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
