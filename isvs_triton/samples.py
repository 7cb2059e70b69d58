"""Real photographs that ship inside pip packages (scikit-image), for tests, tools and demos with no network, and the
embedded dataset cut from them (``photo_patches``, the ``photo-patches`` of ``load_data``)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from .config import CHANNEL_MODES

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
    parser.add_argument("--channels", default="independent", choices=CHANNEL_MODES, help="the channel mode")


# skimage.data functions: the colour photographs and three grey textures bundled in its wheel, one class each
PATCH_CLASSES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "brick",
    "grass",
    "gravel",
)


@functools.lru_cache(maxsize=2)  # ~2 s to build; datasets are immutable (select/rename return new ones)
def photo_patches(size: int = 32, train_per_class: int = 320, test_per_class: int = 80, seed: int = 0):
    """The embedded dataset as a ``datasets.DatasetDict`` (train / test), identical on every machine for a seed.

    Patches flatter than std 0.02 (black sky, retina background) are redrawn: they carry no class."""
    import datasets
    import skimage.data

    generator = np.random.default_rng(seed)
    splits = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(PATCH_CLASSES):
        photo = getattr(skimage.data, name)()
        photo = np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo
        boundary = photo.shape[1] * 3 // 4
        for split, (lo, hi), count in (
            ("train", (0, boundary), train_per_class),
            ("test", (boundary, None), test_per_class),
        ):
            region = photo[:, lo:hi]
            images, labels = splits[split]
            while len(labels) < count * (label + 1):
                top = generator.integers(0, region.shape[0] - size + 1)
                left = generator.integers(0, region.shape[1] - size + 1)
                patch = region[top : top + size, left : left + size]
                if patch.std() / 255 >= 0.02:
                    images.append(patch)
                    labels.append(label)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(PATCH_CLASSES))})
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
            for split, (images, labels) in splits.items()
        }
    )
