"""Lay out Fashion-MNIST as a local copy of the Hub dataset ``zalando-datasets/fashion_mnist``.

    apt-get install dataset-fashion-mnist                        # Debian: the four idx files of Zalando Research
    python tools/fashion_mnist.py data/fashion_mnist             # writes data/fashion_mnist/fashion_mnist/*.parquet
    python -m isvs_triton.train --dataset zalando-datasets/fashion_mnist --data-dir data/fashion_mnist ...

The copy is what a user with network access gets from the Hub (``datasets.load_dataset(
"zalando-datasets/fashion_mnist")``): splits ``train`` (60,000) and ``test`` (10,000), columns ``image`` (a
``datasets.Image``, 28x28 greyscale PNG) and ``label`` (a ``ClassLabel`` with the Hub's class names), one parquet
file per split named as on the Hub. So every tool reads it through the same loading code as the Hub copy.
"""

from __future__ import annotations

import argparse
import gzip
import io
import struct
from pathlib import Path

import numpy as np

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"  # where dataset-fashion-mnist installs its files
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# the class names of zalando-datasets/fashion_mnist on the Hub, in label order
CLASSES = ("T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally gzipped): magic (0, 0, dtype 0x08 = uint8, rank), the sizes, then the data."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    zero, kind, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or kind != 0x08:
        raise ValueError(f"{path} is not a uint8 idx file (magic {raw[:4].hex()})")
    shape = struct.unpack(f">{rank}I", raw[4 : 4 + 4 * rank])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * rank)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} values for the shape {shape} its header gives")
    return data.reshape(shape)


def write_copy(source: Path, output: Path) -> dict[str, int]:
    """Write the local copy; returns the number of images per split."""
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    features = Features({"image": Image(), "label": ClassLabel(names=list(CLASSES))})
    folder = output / "fashion_mnist"
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, (image_file, label_file) in FILES.items():
        images, labels = read_idx(source / image_file), read_idx(source / label_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{split}: images {images.shape} and labels {labels.shape} do not pair up")
        if labels.size and int(labels.max()) >= len(CLASSES):
            raise ValueError(f"{split}: label {int(labels.max())} outside the {len(CLASSES)} classes")
        encoded = []
        for image in images:
            buffer = io.BytesIO()
            PILImage.fromarray(image, mode="L").save(buffer, format="PNG")
            encoded.append({"bytes": buffer.getvalue(), "path": None})
        split_data = Dataset.from_dict({"image": encoded, "label": labels.tolist()}, features=features)
        split_data.to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
        counts[split] = len(split_data)
    return counts


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="the folder of the local copy (pass it as --data-dir)")
    parser.add_argument("--source", default=DEBIAN_DIR, help=f"the folder of the idx files (default: {DEBIAN_DIR})")
    args = parser.parse_args(argv)
    source = Path(args.source)
    missing = [name for pair in FILES.values() for name in pair if not (source / name).exists()]
    if missing:
        parser.error(f"{source} lacks {missing}: install the Debian package dataset-fashion-mnist, or pass --source")
    counts = write_copy(source, Path(args.output))
    print(f"wrote {counts} to {Path(args.output) / 'fashion_mnist'}")
    return counts


if __name__ == "__main__":
    main()
