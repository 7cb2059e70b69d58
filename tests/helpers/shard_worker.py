"""Run by tests/test_data.py under ``torch.distributed.run`` with two CPU processes: the training loader's sampler
through ``accelerator.prepare`` and the iterative path cache, as the loop uses them; each process writes what it saw."""

import json
import sys

import torch
from accelerate import Accelerator

from isvs_triton import sparsify
from isvs_triton.data import EpochSampler
from isvs_triton.train import parse_args
from isvs_triton.train.smoother import Smoother

SIZE, BATCH, SEED = 40, 4, 3

accelerator = Accelerator(cpu=True)
images = torch.rand(SIZE, 3, 8, 8, generator=torch.Generator().manual_seed(0))
sampler = EpochSampler(SIZE, SEED, accelerator.num_processes, BATCH)
loader = accelerator.prepare(
    torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.arange(SIZE)), sampler=sampler, batch_size=BATCH, drop_last=True
    )  # fmt: skip
)
config = parse_args(["--procedure", "iterative", "--epochs", "2", "--schedule", "0.3,0.6", "--model", "resnet8"])
smoother = Smoother(config, sampler.shard(accelerator.process_index), 8)
seen, equal = [], True
for epoch in range(2):
    sampler.epoch = epoch
    order = []
    for (index,) in loader:
        out = smoother(images[index], config.sparsity_at(epoch), index)
        fresh = sparsify(images[index], config.sparsity_at(epoch), **config.smoothing(0.6).kwargs())
        equal &= torch.equal(out, fresh)
        order += index.tolist()
    seen.append(order)
cache = smoother.cache.iterations
shard = sampler.shard(accelerator.process_index).tolist()
record = {
    "shard": shard,
    "seen": seen,
    "equal": bool(equal),
    "cached": int((cache > 0).sum()),
    "cache_rows": len(cache),
}
with open(f"{sys.argv[1]}/rank{accelerator.process_index}.json", "w") as f:
    json.dump(record, f)
