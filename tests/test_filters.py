"""The baselines' filters against their definitions."""

import numpy as np
import pytest
import torch

from isvs_triton.filters import bilateral, gaussian_blur, gaussian_noise, lowpass, tv_chambolle
from isvs_triton.samples import crops


def test_lowpass_keeps_the_mean_and_low_frequencies_and_drops_high_ones():
    x = crops(32, 4, seed=7)
    torch.testing.assert_close(lowpass(x, 2.0), x, atol=1e-5, rtol=0)  # radius above the corner: everything kept
    low = lowpass(x, 0.25)
    torch.testing.assert_close(low.mean((2, 3)), x.mean((2, 3)), atol=2e-3, rtol=0)
    checker = ((torch.arange(32)[:, None] + torch.arange(32)) % 2).float().expand(1, 3, 32, 32) * 0.5 + 0.25
    torch.testing.assert_close(lowpass(checker, 0.5), torch.full_like(checker, 0.5), atol=1e-5, rtol=0)
    wave = 0.5 + 0.25 * torch.cos(2 * torch.pi * torch.arange(32) / 16).expand(1, 3, 32, 32)  # 1/16 cycle/pixel
    torch.testing.assert_close(lowpass(wave, 0.25), wave, atol=1e-5, rtol=0)  # 0.0625 <= 0.25 * 0.5: kept


def test_gaussian_noise_has_the_asked_sigma_per_image():
    x = torch.full((2, 3, 64, 64), 0.5)
    uniform = torch.rand(2, 2 * x[0].numel())
    out = gaussian_noise(x, torch.tensor([0.02, 0.1]), uniform)
    assert (out[0] - 0.5).std().item() == pytest.approx(0.02, rel=0.05)
    assert (out[1] - 0.5).std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(out, gaussian_noise(x, torch.tensor([0.02, 0.1]), uniform))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2]), "grey images stay grey"
    colour = x + torch.tensor([0.0, 0.1, -0.1]).view(1, 3, 1, 1)
    noisy = gaussian_noise(colour, torch.tensor([0.1, 0.1]), uniform) - colour
    assert (noisy[:, 0] - noisy[:, 1]).abs().mean() > 0.05, "a colour image's channels get their own noise"


def test_tv_and_blur_smooth():
    x = crops(32, 2, seed=8)
    for y in (tv_chambolle(x, 0.1), gaussian_blur(x, 1.0)):
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.diff(dim=-1).abs().mean() < 0.8 * x.diff(dim=-1).abs().mean()


@pytest.mark.parametrize("weight", [0.05, 0.2])
def test_batched_tv_chambolle_is_scikit_images(weight):
    """Each channel of each image stops on its own, as denoise_tv_chambolle(channel_axis=-1) runs them one by one;
    a noisy batch makes the planes stop at different iterations."""
    import numpy as np
    from skimage.restoration import denoise_tv_chambolle

    x = crops(24, 6, seed=9)
    x = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    expected = [denoise_tv_chambolle(image, weight=weight, max_num_iter=100, channel_axis=-1) for image in
                x.permute(0, 2, 3, 1).numpy()]  # fmt: skip
    torch.testing.assert_close(tv_chambolle(x, weight), torch.from_numpy(np.stack(expected)).permute(0, 3, 1, 2),
                               atol=2e-6, rtol=0)  # fmt: skip


def test_nl_means_is_scikit_images_per_image():
    import numpy as np
    from skimage.restoration import denoise_nl_means

    from isvs_triton.filters import nl_means

    x = crops(16, 2, seed=10)
    expected = [denoise_nl_means(image, h=0.1, patch_size=3, patch_distance=5, fast_mode=True, channel_axis=-1)
                for image in x.permute(0, 2, 3, 1).numpy()]  # fmt: skip
    expected = torch.from_numpy(np.clip(np.stack(expected), 0, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(nl_means(x, 0.1), expected, atol=1e-6, rtol=0)


def _bilateral_by_hand(x: np.ndarray, sigma_color: float, sigma_space: float, size: int) -> np.ndarray:
    """The definition, pixel by pixel: weights exp(-r^2 / 2 sigma_space^2) exp(-d^2 / 2 sigma_color^2) over the
    reflected size x size window, d the L1 distance over channels; the weighted mean."""
    b, c, h, w = x.shape
    r = size // 2
    padded = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            window = padded[:, :, i : i + size, j : j + size]  # (B, C, size, size)
            dy, dx = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
            distance = np.abs(window - x[:, :, i : i + 1, j : j + 1]).sum(1)  # (B, size, size)
            weight = np.exp(-(dy**2 + dx**2) / (2 * sigma_space**2)) * np.exp(-(distance**2) / (2 * sigma_color**2))
            out[:, :, i, j] = (window * weight[:, None]).sum((2, 3)) / weight.sum((1, 2))[:, None]
    return out


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma_color", [0.05, 0.3])
def test_bilateral_is_its_definition_and_lets_gradients_through(channels, sigma_color):
    x = torch.rand(2, channels, 7, 6, dtype=torch.float64)
    want = _bilateral_by_hand(x.numpy(), sigma_color, 1.0, 5)
    torch.testing.assert_close(bilateral(x, sigma_color), torch.from_numpy(want), atol=1e-9, rtol=0)
    step = torch.zeros(1, channels, 8, 8, dtype=torch.float64)
    step[..., 4:] = 1.0
    kept = bilateral(step, 0.05)  # an edge far above sigma_color is kept; a small-value blur would not keep it
    assert float((kept - step).abs().max()) < 1e-6
    x.requires_grad_(True)
    bilateral(x, sigma_color).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="bilateral sigmas must be > 0"):
        bilateral(x, 0.0)
