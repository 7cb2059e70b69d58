"""Real photographs that ship inside pip packages (scikit-image), for tests, tools and demos with no network."""

from __future__ import annotations

import numpy as np
import torch

# colour photographs bundled in scikit-image's wheel (no download on first use)
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photograph(name: str) -> torch.Tensor:
    """One bundled photograph as float32 (3, H, W) in [0, 1]."""
    import skimage.data

    if name not in PHOTOGRAPHS:
        raise ValueError(f"unknown photograph {name!r}; accepted: {list(PHOTOGRAPHS)}")
    array = getattr(skimage.data, name)()
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255


BENCH_SETTINGS = {32: (256, 0.6), 224: (16, 0.3)}  # the benchmarks' crops: size -> (batch, target sparsity)


def crops(size: int, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` random (3, size, size) crops of the bundled photographs, float32 in [0, 1], reproducible by seed.

    Crops are taken in turn from every photograph; flat crops (std < 0.02) are skipped, since their path has almost
    no edges to activate and says nothing about natural images.
    """
    generator = torch.Generator().manual_seed(seed)
    images = [photograph(name) for name in PHOTOGRAPHS]
    out = []
    while len(out) < count:
        image = images[len(out) % len(images)]
        top = int(torch.randint(0, image.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, image.shape[2] - size + 1, (1,), generator=generator))
        crop = image[:, top : top + size, left : left + size]
        if float(crop.std()) >= 0.02:
            out.append(crop)
    return torch.stack(out)


def add_crop_arguments(parser) -> None:
    """The flags of the tools that measure on crops: --size, --count, --seed, --sparsity, --channels."""
    parser.add_argument("--size", type=int, default=32, help="side of the square crops, in pixels")
    parser.add_argument("--count", type=int, default=64, help="number of crops")
    parser.add_argument("--seed", type=int, default=0, help="seed of the crop positions")
    parser.add_argument("--sparsity", type=float, default=0.6, help="target sparsity")
    parser.add_argument("--channels", default="independent", choices=["independent", "joint"])
