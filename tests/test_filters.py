"""The baselines' filters against their definitions."""

import pytest
import torch

from isvs_triton.filters import gaussian_blur, gaussian_noise, lowpass, tv_chambolle
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


def test_tv_and_blur_smooth():
    x = crops(32, 2, seed=8)
    for y in (tv_chambolle(x, 0.1), gaussian_blur(x, 1.0)):
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.diff(dim=-1).abs().mean() < 0.8 * x.diff(dim=-1).abs().mean()
