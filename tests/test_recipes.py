"""The Hub recipes on local copies laid out like their Hub datasets (CI cannot reach the Hub): the same parquet file
names, split names, column names and features as ``uoft-cs/cifar10``, ``uoft-cs/cifar100`` and
``clane9/imagenet-100``, with bundled photographs as images. Each recipe loads its copy with its own settings and
runs a few short epochs with a small model: the data settings, procedure and schedule are the recipe's."""

import csv
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from isvs_triton.data import load_data
from isvs_triton.samples import crops

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# dataset: (split names, image column, {label column: class names}, image sizes (height, width) of the copy)
HUB_LAYOUTS = {
    "uoft-cs/cifar10": (("train", "test"), "img", {"label": CIFAR10_NAMES}, [(32, 32)]),
    "uoft-cs/cifar100": (("train", "test"), "img",
                         {"fine_label": [f"fine_{i}" for i in range(100)],
                          "coarse_label": [f"coarse_{i}" for i in range(20)]}, [(32, 32)]),
    "clane9/imagenet-100": (("train", "validation"), "image", {"label": [f"n{i:08d}" for i in range(100)]},
                            [(240, 296), (256, 256), (296, 232)]),  # JPEGs of varying sizes there
}  # fmt: skip


def hub_like_copy(folder: Path, dataset: str, per_split: int = 12) -> dict:
    """Write ``folder/data/<split>-00000-of-00001.parquet`` as the Hub repository holds them; returns the labels."""
    import datasets
    from PIL import Image

    splits, image_column, label_columns, sizes = HUB_LAYOUTS[dataset]
    features = datasets.Features(
        {image_column: datasets.Image(), **{c: datasets.ClassLabel(names=n) for c, n in label_columns.items()}}
    )
    generator = np.random.default_rng(0)
    written = {}
    for s, split in enumerate(splits):
        photos = crops(296, per_split, seed=s)  # up to the smallest bundled photograph (300 px)
        rows = {image_column: [], **{c: [] for c in label_columns}}
        for i, photo in enumerate(photos):
            height, width = sizes[i % len(sizes)]
            array = (photo[:, :height, :width].permute(1, 2, 0) * 255).round().byte().numpy()
            rows[image_column].append(Image.fromarray(array))
            for column, names in label_columns.items():
                rows[column].append(int(generator.integers(len(names))))
        (folder / "data").mkdir(parents=True, exist_ok=True)
        part = datasets.Dataset.from_dict(rows, features=features)
        part.to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
        written[split] = rows
    return written


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe,flags",
    [
        ("fixed_cifar10", ["--epochs", "1"]),
        ("finetune_cifar10", ["--epochs", "1", "--finetune-epochs", "1"]),
        ("iterative_cifar100", ["--epochs", "3"]),  # one epoch per stage of its three
        ("iterative_imagenet100", ["--epochs", "3"]),
    ],
)
def test_recipe_runs_on_a_copy_laid_out_like_its_hub_dataset(recipe, flags, tmp_path):
    defaults = importlib.import_module(f"recipes.{recipe}").DEFAULTS
    dataset = defaults["dataset"]
    splits, _, label_columns, _ = HUB_LAYOUTS[dataset]
    written = hub_like_copy(tmp_path / "copy", dataset)

    # what the recipe's settings pick from that layout: the test split, the label column, the classes, the size
    data = load_data(dataset, data_dir=str(tmp_path / "copy"), label_column=defaults.get("label_column"))
    label_column = defaults.get("label_column", "label")
    assert data.num_classes == len(label_columns[label_column])
    assert data.image_size == (224 if "imagenet" in dataset else 32)
    assert sorted(data.test["label"]) == sorted(written[splits[1]][label_column]), "the test split is " + splits[1]
    assert sorted(data.train["label"]) == sorted(written["train"][label_column])

    # as users start it (its own process: the ImageNet recipe sets bf16 autocast, fixed once per process)
    done = subprocess.run(
        [
            sys.executable,
            str(RECIPES / f"{recipe}.py"),
            "--data-dir",
            str(tmp_path / "copy"),
            "--model",
            "resnet8",
            *flags,
            "-b",
            "4",
            "--workers",
            "0",
            "--no-progress",
            "--log-with",
            "none",
            "--output",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "run" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    epochs = sum(int(flags[i + 1]) for i, flag in enumerate(flags) if flag.endswith("epochs"))
    assert len(rows) == epochs and all(0.0 <= float(r["test_acc"]) <= 1.0 for r in rows)
    assert torch.isfinite(torch.tensor([float(r["train_loss"]) for r in rows])).all()
    assert (tmp_path / "run" / "model.safetensors").stat().st_size > 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (run["image_size"], run["num_classes"]) == (data.image_size, data.num_classes)
    assert run["smoothing"]["procedure"] == defaults["procedure"]
    if defaults["procedure"] == "iterative":  # one epoch per stage, coarse to fine
        assert [float(r["sparsity"]) for r in rows] == defaults["schedule"]
