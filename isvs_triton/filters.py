"""Classical image filters on float (B, C, H, W) batches in [0, 1]: the smoothing baselines ISVS is compared with
(training on blurred, low-passed or TV-denoised images, or with Gaussian-noise augmentation; median, Gaussian,
bilateral and non-local-means filters at test time), and the blur corruption.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter as scikit-image's ``gaussian``: nearest-edge padding, truncated at 4 sigma."""
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def median_filter(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """The median of each pixel's ``size`` x ``size`` neighbourhood per channel (edges mirrored about the border pixel,
    scipy's ``mode="mirror"``; replicated for images narrower than the radius), differentiable: the gradient reaches
    the neighbour that is the median, so an attack sees through it exactly."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median filter size must be an odd integer >= 1, got {size}")
    if size == 1:
        return x
    r = size // 2
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"  # reflect needs more pixels than the radius
    padded = F.pad(x, (r, r, r, r), mode=mode)
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # (B, C, H, W, size, size)
    return windows.flatten(-2).median(dim=-1).values


def bilateral(x: torch.Tensor, sigma_color: float, sigma_space: float = 1.0, size: int = 5) -> torch.Tensor:
    """Kornia's ``bilateral_blur``: each pixel the mean of its ``size`` x ``size`` neighbourhood (edges reflected),
    weighted by a Gaussian of the distance (``sigma_space`` px) and of the value difference (``sigma_color``, in the
    images' units; the L1 distance over channels). Edge-preserving like the smoothing, and differentiable, so an
    attack sees through it exactly."""
    from kornia.filters import bilateral_blur

    if not sigma_color > 0 or not sigma_space > 0:
        raise ValueError(f"bilateral sigmas must be > 0, got sigma_color={sigma_color!r}, sigma_space={sigma_space!r}")
    return bilateral_blur(x, (size, size), sigma_color, (sigma_space, sigma_space)).clamp(0, 1)


def lowpass(x: torch.Tensor, radius: float) -> torch.Tensor:
    """Keep the spatial frequencies within ``radius`` x Nyquist of zero (a radial mask on the 2-D FFT), clipped."""
    h, w = x.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=x.device)[None, :]
    mask = (fy.square() + fx.square()).sqrt() <= radius * 0.5
    return torch.fft.irfft2(torch.fft.rfft2(x.float()) * mask, s=(h, w)).to(x.dtype).clamp(0, 1)


@torch.no_grad()
def tv_chambolle(x: torch.Tensor, weight: float, max_num_iter: int = 100, eps: float = 2e-4) -> torch.Tensor:
    """scikit-image's ``denoise_tv_chambolle(image, weight, eps, max_num_iter, channel_axis=-1)``, batched: every
    channel of every image is its own 2-D problem with its own stop (the energy's change below ``eps`` times its
    first value), as the library runs them one by one; on the batch's device, in its dtype (float32 as the library
    keeps it). Chambolle's projection algorithm (2004), step 1/4."""
    b, c, h, w = x.shape
    planes = x.reshape(b * c, h, w)
    p = planes.new_zeros(2, b * c, h, w)
    result, done = planes.clone(), torch.zeros(b * c, dtype=torch.bool, device=x.device)
    first = previous = None
    tau = 0.25
    for i in range(max_num_iter):
        d = -p.sum(0)  # minus the divergence of p
        d[:, 1:, :] += p[0, :, :-1, :]
        d[:, :, 1:] += p[1, :, :, :-1]
        out = planes + d  # p starts at 0: the first iteration's out is the image itself
        energy = d.square().sum((1, 2))
        g = torch.zeros_like(p)
        g[0, :, :-1, :] = out.diff(dim=1)
        g[1, :, :, :-1] = out.diff(dim=2)
        norm = g.square().sum(0).sqrt()
        energy = (energy + weight * norm.sum((1, 2))) / (h * w)
        p = (p - tau * g) / (1 + norm * (tau / weight))
        result = torch.where(done.view(-1, 1, 1), result, out)  # a plane keeps the image of the iteration it stopped at
        if i == 0:
            first = previous = energy
            continue
        done = done | ((previous - energy).abs() < eps * first)
        previous = torch.where(done, previous, energy)
        if bool(done.all()):
            break
    return result.view(b, c, h, w)


def nl_means(x: torch.Tensor, h: float) -> torch.Tensor:
    """scikit-image's ``denoise_nl_means`` per image (fast mode, 3 x 3 patches within 5 px; filter strength ``h`` in
    the images' units), on the CPU, as the library runs it."""
    from skimage.restoration import denoise_nl_means

    images = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    out = [
        denoise_nl_means(image, h=h, patch_size=3, patch_distance=5, fast_mode=True, channel_axis=-1)
        for image in images
    ]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x).clamp(0, 1)


def gaussian_noise(x: torch.Tensor, sigma: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """x + N(0, sigma) per image, clipped; the normals come by Box-Muller from ``uniform`` (B, 2 * C * H * W) in
    [0, 1), so the caller decides where the randomness comes from. A greyscale image stored as RGB (every channel
    equal) gets its first channel's noise in every channel, and stays greyscale, as the corruptions keep it."""
    u1, u2 = uniform.view(x.shape[0], 2, -1).unbind(1)
    normal = (-2 * torch.log1p(-u1)).sqrt() * torch.cos(2 * torch.pi * u2)  # log1p(-u): u < 1, so finite
    normal = normal.view(x.shape).to(x)
    grey = (x == x[:, :1]).flatten(1).all(1).view(-1, 1, 1, 1)
    normal = torch.where(grey, normal[:, :1].expand_as(normal), normal)
    return (x + sigma.view(-1, 1, 1, 1) * normal).clamp(0, 1)


def photometric(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """Per image (B,): the contrast scaled about the image's mean grey by ``contrast`` (kornia's
    ``adjust_contrast_with_mean_subtraction``, ImageNet-C's contrast), then ``brightness`` added (kornia's
    ``adjust_brightness``), clipped to [0, 1]."""
    from kornia.enhance import adjust_brightness, adjust_contrast_with_mean_subtraction

    return adjust_brightness(adjust_contrast_with_mean_subtraction(x, contrast.to(x)), brightness.to(x))
