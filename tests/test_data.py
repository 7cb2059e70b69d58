"""The embedded data, the images-to-tensors path and the on-device augmentation."""

import numpy as np
import pytest
import torch

from isvs_triton.data import load_data, to_tensor
from isvs_triton.rng import sample_uniform
from isvs_triton.samples import photo_patches
from isvs_triton.train.augment import AUGMENT_DRAWS, augment


def test_embedded_data_is_real_disjoint_and_deterministic():
    data = load_data()
    assert (data.num_classes, data.image_size) == (10, 32)
    assert len(data.train) >= 2000 and len(data.test) >= 500
    assert np.bincount(data.train["label"]).min() == len(data.train) // 10
    first = np.asarray(data.train[0]["image"])
    assert first.shape == (32, 32, 3) and first.std() / 255 >= 0.02
    assert np.array_equal(np.asarray(photo_patches.__wrapped__()["train"][0]["image"]), first), "same on every build"
    train = {np.asarray(r["image"]).tobytes() for r in data.train}
    assert not any(np.asarray(r["image"]).tobytes() in train for r in data.test), "test patches never seen in training"


def test_to_tensor_resizes_the_shorter_side_and_centre_crops():
    from PIL import Image

    wide = Image.fromarray(np.tile(np.arange(80, dtype=np.uint8)[None, :, None], (40, 1, 3)))
    out = to_tensor(wide, 20)
    assert out.shape == (3, 20, 20) and out.dtype == torch.uint8
    assert 18 <= out[0, 10, 0] <= 24 and 56 <= out[0, 10, -1] <= 62, "the centre half of the ramp 0..79 is kept"
    grey = Image.fromarray(np.full((8, 8), 7, dtype=np.uint8))
    assert torch.equal(to_tensor(grey, 8), torch.full((3, 8, 8), 7, dtype=torch.uint8))


def test_draws_depend_on_seed_epoch_and_index_only():
    u = sample_uniform(torch.arange(1000), epoch=2, seed=0, count=AUGMENT_DRAWS)
    assert u.shape == (1000, AUGMENT_DRAWS) and 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.std() - 12**-0.5) < 0.02
    assert torch.equal(sample_uniform(torch.tensor([7, 3]), 2, 0, AUGMENT_DRAWS), u[[7, 3]]), "batch layout free"
    assert not torch.equal(sample_uniform(torch.arange(5), 3, 0, AUGMENT_DRAWS), u[:5])
    assert not torch.equal(sample_uniform(torch.arange(5), 2, 1, AUGMENT_DRAWS), u[:5])


def _draws(b, **columns):
    u = torch.full((b, AUGMENT_DRAWS), 0.5)
    for i, v in columns.items():
        u[:, int(i[1:])] = v
    return u


def test_crop_and_flip_at_cifar_size():
    x = torch.rand(2, 3, 32, 32)
    centre = _draws(2, u0=0.9, u1=4.5 / 9, u2=4.5 / 9)  # no flip, offset 4 of the 4-pixel padding: the image itself
    assert torch.equal(augment(x, centre), x)
    assert torch.equal(augment(x, _draws(2, u0=0.1, u1=4.5 / 9, u2=4.5 / 9)), x.flip(-1))
    shifted = augment(x, _draws(2, u0=0.9, u1=0.0, u2=8.5 / 9))  # 4 rows up (reflected), 4 columns left
    assert torch.equal(shifted[..., 4:, :-4], x[..., :-4, 4:])
    random = augment(x, sample_uniform(torch.arange(2), 0, 0, AUGMENT_DRAWS))
    assert random.shape == x.shape and random.is_contiguous()


def test_random_resized_crop_at_imagenet_size():
    x = torch.rand(2, 3, 96, 96)
    whole = _draws(2, u0=0.9, u1=1.0, u2=0.5)  # area 1, aspect 1, centred: the identity
    torch.testing.assert_close(augment(x, whole), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(augment(x, _draws(2, u0=0.1, u1=1.0, u2=0.5)), x.flip(-1), atol=1e-5, rtol=0)
    zoom = augment(x, _draws(2, u0=0.9, u1=0.0, u2=0.5))  # 8 % of the area, upsampled: smoother than the input
    assert zoom.shape == x.shape and zoom.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()


@pytest.mark.parametrize("size", [32, 224])
def test_load_data_image_sizes(size):
    assert load_data(image_size=size, limit_train=4, limit_test=4).image_size == size


def test_an_unreachable_hub_fails_in_seconds_with_one_short_message(monkeypatch):
    """Offline, datasets retried for ~27 s before a 450-character message; the probe asks the endpoint once."""
    import time

    import datasets
    import pytest
    from huggingface_hub import constants

    from isvs_triton.data import DataError

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")  # the discard port: nothing listens
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        load_data("uoft-cs/cifar10")
    message = str(error.value)
    assert time.perf_counter() - start < 5 and len(message) < 250, message
    assert "cannot reach the Hugging Face Hub (127.0.0.1:9" in message
    assert "--data-dir DIR" in message and "HF_HUB_OFFLINE=1" in message


def test_the_epoch_sampler_partitions_the_set_across_processes_rank_stably():
    """Several processes: disjoint shards covering the set (but the remainder), the same every epoch, reproducible from
    the seed; Accelerate's batch sharding (process p takes batches p, p + N, ...) hands each process its own shard,
    in a new order each epoch."""
    import torch
    from accelerate.data_loader import BatchSamplerShard

    from isvs_triton.data import EpochSampler

    size, shards, batch = 103, 3, 8
    sampler = EpochSampler(size, seed=5, shards=shards, batch_size=batch)
    parts = [set(sampler.shard(r).tolist()) for r in range(shards)]
    assert all(len(p) == size // shards for p in parts) and len(set.union(*parts)) == 3 * (size // shards)
    assert [set(EpochSampler(size, 5, shards, batch).shard(r).tolist()) for r in range(shards)] == parts
    assert [set(EpochSampler(size, 6, shards, batch).shard(r).tolist()) for r in range(shards)] != parts
    orders = []
    for epoch in range(3):
        sampler.epoch = epoch
        assert len(list(sampler)) == len(sampler) == 3 * (size // shards // batch) * batch
        batches = torch.utils.data.BatchSampler(sampler, batch, drop_last=True)
        for rank in range(shards):
            seen = [i for b in BatchSamplerShard(batches, shards, rank) for i in b]
            assert set(seen) <= parts[rank] and len(seen) == len(set(seen)) == size // shards // batch * batch
            orders.append(seen) if rank == 0 else None
    assert orders[0] != orders[1], "each epoch a new order within the shard"
    one = EpochSampler(size, seed=5)  # one process: a permutation of everything, as before
    assert sorted(one) == list(range(size)) and torch.equal(one.shard(0), torch.arange(size))


def test_the_path_cache_holds_only_this_processs_shard():
    import torch

    from isvs_triton.train import parse_args
    from isvs_triton.train.smoother import Smoother

    config = parse_args(["--procedure", "iterative", "--epochs", "3", "--model", "resnet8"])
    shard = torch.tensor([7, 2, 11, 5])
    smoother = Smoother(config, shard, 8)
    assert smoother.cache.iterations.shape == (4,)
    x = torch.rand(2, 3, 8, 8)
    smoother(x, 0.2, torch.tensor([11, 2]))
    assert smoother.cache.iterations[[2, 1]].gt(0).all() and smoother.cache.iterations[[0, 3]].eq(0).all()
    smoother(x, 0.2, torch.tensor([3, 2]))  # 3 is another process's: smoothed from the start, not cached
    assert smoother.cache.iterations[[0, 3]].eq(0).all()


@pytest.mark.slow
def test_two_processes_each_see_and_cache_their_own_shard(tmp_path):
    """Two CPU processes through Accelerate, as the loop runs them: each sees its shard every epoch (in a new order),
    caches only those images' paths, and smooths each as one process would."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).parent / "helpers" / "shard_worker.py"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(worker.parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(worker), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert not set(ranks[0]["shard"]) & set(ranks[1]["shard"]) and len(ranks[0]["shard"]) == 20
    for record in ranks:
        assert all(sorted(order) == sorted(record["shard"]) for order in record["seen"]), "its shard, every epoch"
        assert record["seen"][0] != record["seen"][1] and record["equal"]
        assert record["cache_rows"] == 20 and record["cached"] == 20, "1/2 of the set, every image of it cached"
