"""Image classification data through Hugging Face ``datasets``: Hub ids, local copies, and an embedded default.

``load_data`` returns the train and test splits with their columns renamed to ``image`` / ``label``; ``Images``
turns a split into uint8 (C, H, W) tensors of one size for a ``DataLoader``; ``EpochSampler`` orders an epoch.

The embedded default, ``photo-patches`` (``samples.photo_patches``), needs no network: 32x32 patches of ten
photographs that ship inside scikit-image's wheel, one class per photograph.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EMBEDDED = "photo-patches"
_IMAGE_COLUMNS = ("image", "img", "picture")
_LABEL_COLUMNS = ("label", "labels", "fine_label", "class")
_TEST_SPLITS = ("validation", "valid", "val", "test")
SMALL_SIDE = 64  # images up to this side are CIFAR-like: crop augmentation, CIFAR model stems, CIFAR-C constants
# image size of the known datasets (anything else: the size of its first training image)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DATA_SUFFIXES = {".parquet", ".arrow"} | IMAGE_SUFFIXES  # what --data-dir may hold besides a save_to_disk folder
KNOWN_SIZES = {EMBEDDED: 32, "uoft-cs/cifar10": 32, "uoft-cs/cifar100": 32, "clane9/imagenet-100": 224}


class DataError(ValueError):
    """A dataset that cannot be loaded or used as asked; the message says why and what to do."""


@dataclass
class Data:
    train: object  # datasets.Dataset with columns "image" (PIL) and "label" (int)
    test: object
    num_classes: int
    image_size: int
    name: str
    validation: object = None  # held out of the training split (``val_fraction``), or None


# ------------------------------------------------------------------------------------------------------- loading
def _load(name: str, data_dir: str | None):
    import datasets

    if data_dir is not None:
        path = Path(data_dir)
        if not path.exists():
            raise DataError(f"--data-dir {data_dir!r} does not exist")
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return datasets.load_from_disk(str(path))  # a save_to_disk folder
        found = {p.suffix.lower() for p in path.rglob("*") if p.is_file()}
        if not found & DATA_SUFFIXES:
            raise DataError(
                f"--data-dir {data_dir!r} holds no data set files (suffixes found: {sorted(found)}); "
                "accepted: a save_to_disk folder, parquet or arrow files, or an imagefolder of "
                f"{sorted(IMAGE_SUFFIXES)} images in class sub-folders"
            )
        try:  # parquet / arrow files, or an imagefolder (class sub-folders), inferred by datasets
            return datasets.load_dataset(str(path))
        except Exception as error:  # noqa: BLE001 - datasets raises many types; the user needs one message
            raise DataError(
                f"could not read {data_dir!r} as a dataset ({type(error).__name__}: {error}); accepted: a "
                "save_to_disk folder, a folder of parquet or arrow files, or an imagefolder (class sub-folders)"
            ) from None
    if name == EMBEDDED:
        from .samples import photo_patches

        return photo_patches()
    offline = bool(datasets.config.HF_HUB_OFFLINE)
    unreachable = None if offline else _hub_unreachable()
    if unreachable:  # datasets would retry for half a minute before saying so
        raise DataError(
            f"cannot reach the Hugging Face Hub ({unreachable}) to load {name!r}: pass --data-dir DIR with a local "
            "copy, or set HF_HUB_OFFLINE=1 to load it from the datasets cache"
        )
    try:
        return datasets.load_dataset(name)
    except Exception as error:  # noqa: BLE001
        first = str(error).splitlines()[0][:200] if str(error) else ""
        where = "in the datasets cache (HF_HUB_OFFLINE is set)" if offline else "on the Hugging Face Hub"
        raise DataError(
            f"could not load dataset {name!r} {where}: {type(error).__name__}: {first}. Pass --data-dir DIR with a "
            f"local copy (`hf download {name} --repo-type dataset --local-dir DIR` where there is network)"
        ) from None


HUB_TIMEOUT = 3.0  # seconds to wait for the Hub's TCP handshake before calling it unreachable


def _hub_unreachable() -> str | None:
    """Why the Hub endpoint cannot be reached (None: it answers a TCP connection within HUB_TIMEOUT)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    endpoint = urlparse(constants.ENDPOINT)
    host, port = endpoint.hostname or "", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=HUB_TIMEOUT).close()
        return None
    except OSError as error:
        return f"{host}:{port}: {error.strerror or type(error).__name__}"


def _column(split, asked: str | None, candidates: tuple[str, ...], kind, what: str) -> str:
    columns = list(split.column_names)
    if asked is not None:
        if asked not in columns:
            raise DataError(f"{what} column {asked!r} not in the dataset; its columns: {columns}")
        return asked
    for name in candidates:
        if name in columns:
            return name
    for name, feature in split.features.items():
        if type(feature).__name__ == kind:
            return name
    raise DataError(
        f"no {what} column found (looked for {list(candidates)}); its columns: {columns}; name it with --{what}-column"
    )


def load_data(
    dataset: str = EMBEDDED,
    *,
    data_dir: str | None = None,
    train_split: str = "train",
    test_split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    image_size: int | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    val_fraction: float = 0.0,
    val_seed: int = 0,
) -> Data:
    """Load ``dataset`` (a Hub id, or the embedded ``photo-patches``), from ``data_dir`` when given.

    The test split defaults to the first of validation / valid / val / test that exists (CIFAR has no validation
    split); ``limit_*`` keep a fixed random subset (seed 0) for quick runs. ``val_fraction`` > 0 holds that fraction
    of the training split out as ``Data.validation`` (a random draw fixed by ``val_seed``, made before
    ``limit_train`` takes its subset of the rest), so choices can be made without reading the test split."""
    splits = _load(dataset, data_dir)
    if not hasattr(splits, "keys"):
        raise DataError(f"{data_dir or dataset!r} holds a single split; save it as a DatasetDict with train and test")
    available = list(splits.keys())
    if test_split is None:
        test_split = next((s for s in _TEST_SPLITS if s in available), None)
        if test_split is None:
            raise DataError(
                f"no test split found (looked for {list(_TEST_SPLITS)}); splits: {available}; "
                "name one with --test-split"
            )
    for split in (train_split, test_split):
        if split not in available:
            raise DataError(f"split {split!r} not in the dataset; its splits: {available}")
    train = splits[train_split]
    image_key = _column(train, image_column, _IMAGE_COLUMNS, "Image", "image")
    label_key = _column(train, label_column, _LABEL_COLUMNS, "ClassLabel", "label")
    parts, validation = [], None
    for split, limit in ((train, limit_train), (splits[test_split], limit_test)):
        for key in (image_key, label_key):
            if key not in split.column_names:
                raise DataError(f"column {key!r} missing from the test split; its columns: {split.column_names}")
        split = split.select_columns([image_key, label_key])
        split = split.rename_columns({k: v for k, v in ((image_key, "image"), (label_key, "label")) if k != v})
        if val_fraction > 0 and not parts:  # the training split: carve the validation images out first
            split, validation = _hold_out(split, val_fraction, val_seed)
        if limit is not None and limit < len(split):
            # in memory: an indices cache file would land in the user's save_to_disk folder (or fail, read-only)
            split = split.shuffle(seed=0, keep_in_memory=True).select(range(limit), keep_in_memory=True)
        parts.append(split)
    feature = train.features[label_key]
    num_classes = len(feature.names) if hasattr(feature, "names") else int(max(train[label_key])) + 1
    # a --data-dir without --dataset is its own data set, not the embedded default's
    local = data_dir is not None and dataset == EMBEDDED
    if image_size is None:
        image_size = (None if local else KNOWN_SIZES.get(dataset)) or min(_to_rgb(train[0][image_key]).size)
    name = dataset if data_dir is None else str(data_dir) if local else f"{dataset}@{data_dir}"
    return Data(parts[0], parts[1], num_classes, image_size, name, validation)


def _hold_out(split, fraction: float, seed: int):
    """(the rest, the held-out part) of ``split``: round(fraction * len) rows drawn by ``seed``, kept in memory."""
    if not 0 < fraction < 1:
        raise DataError(f"--val-fraction must lie in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(split))
    count = round(fraction * len(split))
    if not 1 <= count < len(split):
        raise DataError(
            f"--val-fraction {fraction} of {len(split)} training images leaves no validation or no training image"
        )
    held, rest = np.sort(order[:count]), np.sort(order[count:])
    return split.select(rest, keep_in_memory=True), split.select(held, keep_in_memory=True)


# ---------------------------------------------------------------------------------------------- images to tensors
def _to_rgb(image):
    from PIL import Image

    if isinstance(image, dict):  # parquet written without Hugging Face metadata: the struct {bytes, path}
        if image.get("bytes") is not None:
            image = Image.open(io.BytesIO(image["bytes"]))
        elif image.get("path"):
            image = Image.open(image["path"])
        else:
            raise ValueError(f"an image struct with neither bytes nor path: {sorted(image)}")
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected an image (PIL, array or {{bytes, path}}), got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


def to_tensor(image, size: int) -> torch.Tensor:
    """A PIL image (any mode) or HWC array as uint8 (3, size, size): shorter side resized to ``size``, centre crop."""
    from PIL import Image

    image = _to_rgb(image)
    if image.size != (size, size):
        w, h = image.size
        scale = size / min(w, h)
        image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


class Images(torch.utils.data.Dataset):
    """A split as (index, uint8 image (3, size, size), label); the index keys per-instance state (the path cache).

    ``name`` (the split's) is what an error about an image that cannot be decoded names, with its row."""

    def __init__(self, split, size: int, name: str = "train"):
        self.split, self.size, self.name = split, size, name

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]):  # one columnar read per batch instead of one per image
        rows = read_rows(self.split, list(indices), self.name)
        return [
            (i, to_tensor(_readable(image, self.name, i), self.size), int(label))
            for i, image, label in zip(indices, rows["image"], rows["label"])
        ]


def test_images(dataset: str = EMBEDDED, count: int = 256, data_dir: str | None = None) -> torch.Tensor:
    """``count`` test images of ``dataset`` (the fixed random subset ``limit_test`` keeps) as a float (B, 3, S, S)
    batch in [0, 1] at the size training uses: what the tools and figures smooth."""
    data = load_data(dataset, data_dir=data_dir, limit_train=1, limit_test=count)
    rows = Images(data.test, data.image_size, "test").__getitems__(list(range(len(data.test))))
    return torch.stack([image for _, image, _ in rows]).float() / 255


def read_rows(split, indices: list[int], name: str) -> dict:
    """``split[indices]``, or a DataError naming the first row whose image cannot be decoded."""
    try:
        return split[indices]
    except Exception as error:  # noqa: BLE001 - PIL and datasets raise many types for a damaged image
        for i in indices:  # find the row
            try:
                split[i]
            except Exception as row_error:  # noqa: BLE001
                raise DataError(f"{name} split, row {i}: cannot decode the image ({row_error})") from None
        raise error


def check_images(split, name: str, batch: int = 256) -> None:
    """Decode every image of ``split`` once (before training: a damaged test image would otherwise surface only
    after the first epoch), raising a DataError that names the split and the row of the first bad one."""
    for start in range(0, len(split), batch):
        rows = read_rows(split, list(range(start, min(start + batch, len(split)))), name)
        for offset, image in enumerate(rows["image"]):
            _readable(image, name, start + offset)


def _readable(image, name: str, row: int):
    """The image as RGB, or a DataError naming its split and row (a struct without bytes, bytes that are no image)."""
    try:
        return _to_rgb(image)
    except (OSError, ValueError, TypeError) as error:
        raise DataError(f"{name} split, row {row}: cannot read the image ({error})") from None


class EpochSampler(torch.utils.data.Sampler):
    """An epoch's order drawn from (seed, epoch): the same after a resume, whatever the RNG state is then.

    One process (``shards`` 1): a permutation of the whole set. ``shards`` processes (Accelerate hands process p the
    batches p, p + N, p + 2N, ...): a rank-stable partition instead, so that each image is seen by the same process
    every epoch (that process keeps its path state, ``PathCache``): the set is cut once, by the seed, into ``shards``
    equal shards (the remainder left out, as ``drop_last`` would); each epoch permutes each shard on its own and
    interleaves their batches of ``batch_size``, so that process p's batches are all from shard p.

    Set ``epoch`` before iterating (no ``set_epoch`` on purpose: Accelerate would call it with its own counter)."""

    def __init__(self, size: int, seed: int, shards: int = 1, batch_size: int = 1):
        if shards > 1 and size // shards < batch_size:
            raise DataError(f"{size} images make no batch of {batch_size} on each of {shards} processes")
        self.size, self.seed, self.shards, self.batch_size, self.epoch = size, seed, shards, batch_size, 0

    def __len__(self) -> int:
        if self.shards == 1:
            return self.size
        return self.size // self.shards // self.batch_size * self.batch_size * self.shards

    def shard(self, rank: int) -> torch.Tensor:
        """The dataset indices that process ``rank`` sees, every epoch (all of them with one shard)."""
        if self.shards == 1:
            return torch.arange(self.size)
        per = self.size // self.shards
        return self._partition[rank * per : (rank + 1) * per]

    @functools.cached_property
    def _partition(self) -> torch.Tensor:
        """The seed's one permutation of the set that the shards cut (drawn once, not per shard and epoch)."""
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed))

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.shards == 1:
            return iter(torch.randperm(self.size, generator=generator).tolist())
        batches = self.size // self.shards // self.batch_size
        orders = []
        for rank in range(self.shards):
            shard = self.shard(rank)
            shard = shard[torch.randperm(len(shard), generator=generator)]
            orders.append(shard[: batches * self.batch_size].view(batches, self.batch_size))
        return iter(torch.stack(orders, 1).flatten().tolist())  # batch k of shard 0, of shard 1, ..., then k + 1
