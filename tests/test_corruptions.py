"""Corruptions of greyscale images and of sizes between the benchmark's tiers (robustness/corruptions.py): what the
reference code does not define, decided and documented in the module."""

import pytest
import torch

from isvs_triton.robustness.corruptions import BENCHMARK, CONSTANTS, EXTRAS, corrupt


@pytest.mark.parametrize("name", [*BENCHMARK, *EXTRAS])
def test_greyscale_images_stay_greyscale_and_colour_ones_are_drawn_per_channel(name):
    """A greyscale image stored as RGB is corrupted as its one channel (the same noise in every channel); in a batch
    that mixes it with a colour image each gets what it would get alone, by its own index."""
    torch.manual_seed(0)
    grey = torch.rand(1, 1, 28, 28).expand(1, 3, 28, 28)
    colour = torch.rand(1, 3, 28, 28)
    batch, index = torch.cat([grey, colour]), torch.tensor([4, 9])
    out = corrupt(batch, name, 3, index=index)
    assert torch.equal(out[0, 0], out[0, 1]) and torch.equal(out[0, 0], out[0, 2]), "the grey image stays grey"
    assert torch.equal(out[:1], corrupt(grey[:, :1], name, 3, index=index[:1]).expand(1, 3, 28, 28))
    assert torch.equal(out[1:], corrupt(colour, name, 3, index=index[1:]))
    if name in ("gaussian_noise", "impulse_noise", "speckle_noise"):
        kept = corrupt(grey, name, 3, index=index[:1], keep_greyscale=False)
        assert not torch.equal(kept[0, 0], kept[0, 1]), "keep_greyscale=False draws each channel"


def test_elastic_constants_follow_the_image_side_between_tiers():
    """The elastic transform's constants are fractions of the reference's side: at 28 px they are 28/32 of CIFAR's;
    at the tiers' own sides (32, 64, 224) the reference's numbers, 244-based ImageNet ones included."""
    from isvs_triton.robustness import corruptions

    seen = {}

    def capture(x, c, generators):
        seen[x.shape[-1]] = c
        return x

    original = corruptions._GEOMETRIC["elastic_transform"]
    corruptions._GEOMETRIC["elastic_transform"] = capture
    try:
        for side in (28, 32, 224):
            corrupt(torch.rand(1, 3, side, side), "elastic_transform", 2)
    finally:
        corruptions._GEOMETRIC["elastic_transform"] = original
    cifar, imagenet = CONSTANTS["cifar"]["elastic_transform"][1], CONSTANTS["imagenet"]["elastic_transform"][1]
    assert seen[32] == pytest.approx(cifar) and seen[224] == pytest.approx(imagenet)
    assert seen[28] == pytest.approx(tuple(v * 28 / 32 for v in cifar))
