"""What each procedure (``procedures.py``) feeds the loop: the smoothing of an epoch's images at the sparsity the
procedure names (``TrainConfig.sparsity_at``), on the device, batch by batch; or, for the baselines, their transform.

``iterative`` advances each training image's path stage after stage. When every image's Split LBI state
(beta, z, and the momentum's previous iterate) fits in ``--path-state-budget``, ``PathCache`` keeps it in host memory
between visits, so stage k+1 continues the path where stage k stopped; otherwise each visit recomputes the path from a
blank image. Both give the same images (tests/test_train.py), the cache only saves iterations.
"""

from __future__ import annotations

import time

import torch
from PIL import Image

from ..config import PRESETS
from ..data import to_tensor
from ..ops.lbi.path import PathState, StateRecord
from . import procedures
from .config import TrainConfig, parse_bytes


def path_state_bytes(channels: int, height: int, width: int, momentum: bool) -> int:
    """Host bytes of one image's path state in float32: beta, both z's (twice with momentum), its iteration count."""
    floats = channels * (height * width + height * (width - 1) + (height - 1) * width)
    return 4 * floats * (2 if momentum else 1) + 8


class PathCache:
    """Per-instance path states of a whole training set, in host memory, zero (= the path's start) until visited,
    with their records (``StateRecord``: each image's fingerprint and the sparsity it has reached), so that every
    visit is checked to continue the same image's path."""

    def __init__(self, size: int, image_shape: tuple[int, int, int], momentum: bool):
        c, h, w = image_shape
        shapes = [(c, h, w), (c, h, w - 1), (c, h - 1, w)] * (2 if momentum else 1)
        self.tensors = [torch.zeros(size, *shape) for shape in shapes]
        self.iterations = torch.zeros(size, dtype=torch.int64)
        self.record = StateRecord.blank(size, torch.device("cpu"))  # solver and channels: those of the first visit
        self.momentum = momentum

    def take(self, index: torch.Tensor, device: torch.device) -> PathState:
        t = [x[index].to(device) for x in self.tensors]
        record = StateRecord(
            self.record.solver,
            self.record.channels,
            self.record.fingerprints[index].to(device),
            self.record.targets[index].to(device),
        )
        prev = tuple(t[3:]) if self.momentum else None
        return PathState(t[0], t[1], t[2], prev, self.iterations[index].to(device), record)

    def put(self, index: torch.Tensor, state: PathState) -> None:
        for dst, src in zip(self.tensors, state.tensors()):
            dst[index] = src.cpu()
        self.iterations[index] = state.iterations.cpu()
        self.record.solver, self.record.channels = state.record.solver, state.record.channels
        self.record.fingerprints[index] = state.record.fingerprints.cpu()
        self.record.targets[index] = state.record.targets.cpu()


class Smoother:
    """Smooths training batches on their device for a ``TrainConfig``; keeps the time it spends (``seconds``)."""

    def __init__(self, config: TrainConfig, images: torch.Tensor | int, image_size: int):
        """``images``: the dataset indices this process trains on (``EpochSampler.shard``; a count n: 0..n-1): the
        path cache holds those only, 1/N of the set on each of N processes."""
        images = torch.arange(images) if isinstance(images, int) else images
        self.config = config
        self.cache = None
        if config.procedure == "iterative":
            momentum = PRESETS[config.solver].momentum > 0
            needed = len(images) * path_state_bytes(3, image_size, image_size, momentum)
            if needed <= parse_bytes(config.path_state_budget):
                self.cache = PathCache(len(images), (3, image_size, image_size), momentum)
                self.rows = torch.full((int(images.max()) + 1 if len(images) else 0,), -1, dtype=torch.int64)
                self.rows[images] = torch.arange(len(images))  # dataset index -> the cache's row
        self._seconds, self._events = 0.0, []

    def train_batch(self, x: torch.Tensor, epoch: int, index: torch.Tensor) -> torch.Tensor:
        """What the procedure does to the training batch x (B, 3, H, W) of ``epoch``; ``index`` its dataset rows."""
        config = self.config
        procedure = procedures.get(config.procedure)
        sparsity = config.sparsity_at(epoch)
        if procedure.sparsity_per_image is not None:
            sparsity = procedure.sparsity_per_image(config, epoch, index).to(x.device)
        transform = procedure.transform
        if sparsity is not None and not config.cache_smoothed:
            if transform is not None:  # fixed-noise, augment-augmix, ...: the augmentation first, then the smoothing
                x = transform(config, x, epoch, index)
            return self(x, sparsity, index)
        if transform is None:
            return x
        start = self._start_clock(x)  # a baseline's augmentation alone (the smoothing's clock is in __call__)
        x = transform(config, x, epoch, index)
        self._stop_clock(x, start)
        return x

    def __call__(
        self, x: torch.Tensor, sparsity: float | torch.Tensor, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, 3, H, W) float in [0, 1] at ``sparsity`` (one, or (B,) one per image); ``index`` (B,) the images'
        positions in the training set (path cache)."""
        start = self._start_clock(x)
        smooth = self.config.smoothing(sparsity)
        rows = self._rows(index)
        if rows is not None:
            state = self.cache.take(rows, x.device)
            out = smooth(x, state=state)
            self.cache.put(rows, state)
        else:
            out = smooth(x)
        self._stop_clock(out, start)
        return out

    def _rows(self, index: torch.Tensor | None) -> torch.Tensor | None:
        """The cache rows of the images ``index`` (None: no cache, or an image outside this process's shard)."""
        if self.cache is None or index is None:
            return None
        index = index.cpu()
        if bool((index >= len(self.rows)).any()):
            return None
        rows = self.rows[index]
        return None if bool((rows < 0).any()) else rows

    @property
    def seconds(self) -> float:
        """Seconds spent smoothing so far: host time, and on a GPU the device time between events recorded around
        each batch's smoothing, read here (one synchronisation per read, none per batch: the next batch's model
        step is queued while the smoothing runs)."""
        for begin, end in self._events:
            end.synchronize()
            self._seconds += begin.elapsed_time(end) / 1000
        self._events.clear()
        return self._seconds

    def _start_clock(self, x: torch.Tensor) -> float | torch.cuda.Event:
        if x.device.type == "cuda":  # kernels run asynchronously: time them on the device
            begin = torch.cuda.Event(enable_timing=True)
            begin.record(torch.cuda.current_stream(x.device))
            return begin
        return time.perf_counter()

    def _stop_clock(self, result: torch.Tensor, start: float | torch.cuda.Event) -> None:
        if isinstance(start, float):
            self._seconds += time.perf_counter() - start
            return
        end = torch.cuda.Event(enable_timing=True)
        end.record(torch.cuda.current_stream(result.device))
        self._events.append((start, end))


def smooth_dataset(split, config: TrainConfig, image_size: int, batch_size: int = 256):
    """``--cache-smoothed``: the training split smoothed once at ``config.sparsity`` by ``datasets.map`` (stored as
    uint8; the map is fingerprinted, so a Hub dataset's smoothed copy is reused from the datasets cache)."""
    smoothing = config.smoothing(config.sparsity)

    def smooth(batch):
        x = torch.stack([to_tensor(image, image_size) for image in batch["image"]])
        y = smoothing(x)
        return {"image": [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in y]}

    return split.map(smooth, batched=True, batch_size=batch_size, desc=f"smoothing at sparsity {config.sparsity}")
