"""The training loop: one Accelerate loop for every procedure (a procedure only decides what happens to each epoch's
training images: smoothing at a sparsity, a baseline's filter or noise, or nothing).

Per batch, on the device: uint8 -> float [0, 1] -> ``Smoother.train_batch`` -> augmentation -> step.
Runs as is under ``python``, ``accelerate launch`` (DDP on GPUs or nodes, several CPU processes), with mixed precision
and gradient accumulation. A run folder (new, empty or the run's own, locked while a training writes: run_folder.py)
holds ``args.yaml``, ``summary.csv``, TensorBoard logs, ``checkpoints/`` (one ``save_state`` per epoch and every
``--checkpoint-every`` steps, written to a temporary folder and renamed, so a run killed at any moment resumes from
its last complete checkpoint, mid-epoch too) and, at the end, ``model.safetensors`` with ``run.json`` (what
``load_run`` needs).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed

from ..config import saved_preset
from ..data import EpochSampler, Images, check_images, load_data
from ..models import create_model
from ..progress import track
from ..rng import sample_uniform
from . import run_folder
from .augment import AUGMENT_DRAWS, augment
from .config import TrainConfig, save_yaml
from .run_folder import MODEL_FILE, RunInfo
from .smoother import Smoother, smooth_dataset

KILL_ENV = "ISVS_KILL_AFTER_STEP"  # tests: SIGKILL the run right after this global step, as a crash would
SUMMARY_FIELDS = (
    "epoch",
    "sparsity",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "train_seconds",
    "smoothing_seconds",
    "images_per_second",
)


class Progress:
    """Where the run is, saved in every checkpoint: epoch, batches done in it, and the epoch's running sums."""

    def __init__(self):
        self.epoch, self.step, self.global_step = 0, 0, 0
        self.sums = [0.0, 0.0, 0.0]  # the epoch's train loss sum, correct, images (all processes, at the checkpoint)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "global_step": self.global_step, "sums": list(self.sums)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.step, self.global_step, self.sums = (
            state["epoch"],
            state["step"],
            state["global_step"],
            state["sums"],
        )


def learning_rate(config: TrainConfig, epoch: float) -> float:
    """Linear warm-up then cosine to 0 over ``epochs``; the finetune phase restarts a cosine from ``finetune_lr``."""
    if epoch >= config.epochs:
        peak = config.finetune_lr or config.lr / 10
        return peak * 0.5 * (1 + math.cos(math.pi * (epoch - config.epochs) / config.finetune_epochs))
    if epoch < config.warmup_epochs:
        return config.lr * (epoch + 1e-3) / config.warmup_epochs
    span = max(config.epochs - config.warmup_epochs, 1e-9)
    return config.lr * 0.5 * (1 + math.cos(math.pi * (epoch - config.warmup_epochs) / span))


def evaluate(model, loader, accelerator: Accelerator, transform=None) -> dict:
    """Loss and accuracy of ``model`` over ``loader`` (index, uint8 image, label), gathered over processes.

    ``transform`` maps the float [0, 1] batch before the model (test-time smoothing, corruptions)."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for _, images, labels in loader:
            x = images.float().div_(255)
            if transform is not None:
                x = transform(x)
            logits = model(x).float()
            losses, predictions, labels = accelerator.gather_for_metrics(
                (F.cross_entropy(logits, labels, reduction="none"), logits.argmax(1), labels)
            )
            loss_sum += float(losses.sum())
            correct += int((predictions == labels).sum())
            count += labels.numel()
    return {"loss": loss_sum / max(count, 1), "acc": correct / max(count, 1)}


def _checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step_*"))


def _save_checkpoint(accelerator: Accelerator, run: Path, progress: Progress, running: torch.Tensor, keep: int):
    """Save the state with ``running`` (this process's epoch sums) in ``progress``; returns the sums to go on with.

    A checkpoint is loaded by every process, so the main process saves the sums of all and the others restart at 0."""
    folder = run / "checkpoints" / f"step_{progress.global_step:09d}"
    if folder.exists():
        return running
    running = accelerator.reduce(running, "sum")
    if not accelerator.is_main_process:
        running.zero_()
    progress.sums = running.tolist()
    temporary = run / "checkpoints" / "incomplete"
    if accelerator.is_main_process and temporary.exists():
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        os.replace(temporary, folder)  # atomic: a checkpoint folder is complete or absent
        for old in _checkpoints(run)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return running


def _resume(accelerator: Accelerator, config: TrainConfig, run: Path, progress: Progress) -> None:
    if config.resume == "latest":
        candidates = _checkpoints(run)[::-1]  # newest first: a damaged one gives way to the one before
        if not candidates:
            accelerator.print(f"--resume: no checkpoint in {run / 'checkpoints'} yet, starting from the beginning")
            return
    else:
        candidates = [Path(config.resume)]
    damaged = []
    for folder in candidates:
        try:
            # Accelerate skips random states it cannot read with a log line; a damaged file must not pass for one
            torch.load(folder / f"random_states_{accelerator.process_index}.pkl", weights_only=False)
            accelerator.load_state(str(folder))
            break
        except Exception as error:  # noqa: BLE001 - torch, safetensors and pickle each raise their own types
            damaged.append(f"{folder} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
            accelerator.print(f"--resume: checkpoint {folder} cannot be loaded, trying the one before: {damaged[-1]}")
    else:
        raise ValueError(
            f"--resume: no checkpoint could be loaded: {'; '.join(damaged)}. Delete the damaged "
            "folders to start over, or name an intact one with --resume FOLDER"
        )
    if not accelerator.is_main_process:
        progress.sums = [0.0, 0.0, 0.0]
    accelerator.print(f"resumed from {folder} (epoch {progress.epoch + 1}, step {progress.step})")


def _write_summary(path: Path, row: dict | None, keep_epochs: int | None = None) -> None:
    rows = list(csv.DictReader(path.open())) if path.exists() else []
    if any(not str(r.get("epoch") or "").isdigit() for r in rows):
        raise ValueError(f"{path} is not this run's summary (a row without an epoch number): move it away to go on")
    if keep_epochs is not None:  # a resumed run rewrites the epochs after its checkpoint
        rows = [r for r in rows if int(r["epoch"]) <= keep_epochs]
    rows += [row] if row else []
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


# settings a resumed run may change: they decide how it runs, not what it computes
RESUMABLE_CHANGES = ("resume", "output", "progress", "log_with", "workers", "checkpoint_every", "keep_checkpoints")


def _check_resumed_settings(config: TrainConfig, run: Path) -> None:
    """--resume continues the run its args.yaml describes: any setting that changes the result must be the same."""
    saved_file = run / "args.yaml"
    if not saved_file.exists():
        return  # killed before its first checkpoint: nothing recorded to continue
    saved = yaml.safe_load(saved_file.read_text()) or {}
    if "solver" in saved:
        saved["solver"] = saved_preset(saved["solver"])  # an older run's name of a preset (LEGACY_PRESETS)
    now = dataclasses.asdict(config)
    differences = [
        f"{key} (run: {saved.get(key)!r}, now: {value!r})"
        for key, value in now.items()
        if key not in RESUMABLE_CHANGES and key in saved and saved[key] != value
    ]
    if differences:
        raise ValueError(
            f"--resume: these settings differ from the run's {saved_file}: {', '.join(differences)}. "
            f"Resume with the run's settings (only {list(RESUMABLE_CHANGES)} may change), or "
            "start a new run with another --output"
        )


def train(config: TrainConfig) -> Path:
    """Train as ``config`` says; returns the run folder."""
    run = config.run_dir()
    accelerator = Accelerator(
        # torchrun on a machine without GPUs: without cpu=True every process would run alone, racing on the folder
        cpu=int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available(),
        mixed_precision=config.amp_dtype,
        gradient_accumulation_steps=config.grad_accum,
        log_with=None if config.log_with == "none" else config.log_with,
        project_dir=str(run),
    )
    if accelerator.mixed_precision != "no" and not accelerator.native_amp:
        # Accelerate keeps the name but trains in float32 (fp16 on a CPU): run.json would record what did not run
        raise ValueError(
            f"--amp-dtype {accelerator.mixed_precision} (given here or by accelerate config) does not run on "
            f"{accelerator.device.type}: Accelerate would train in float32; use bf16 or no there"
        )
    run_folder.check_writable(run, "a run")
    if config.resume is None and (_checkpoints(run) or (run / MODEL_FILE).exists()):
        raise ValueError(f"{run} already holds a run: pass --resume to continue it, or choose another --output")
    lock = _on_main_process(accelerator, lambda: run_folder.open_for_writing(run))
    try:
        if config.resume is not None:
            _check_resumed_settings(config, run)
        return _train(config, accelerator, run)
    finally:
        if lock is not None:
            lock.release()


def _on_main_process(accelerator: Accelerator, action):
    """``action()`` on the main process (None on the others); a ValueError it raises is raised on every process."""
    result, error = None, None
    if accelerator.is_main_process:
        try:
            result = action()
        except ValueError as raised:
            error = str(raised)
    if accelerator.num_processes > 1:
        error = broadcast_object_list([error])[0]
    if error is not None:
        raise ValueError(error)
    return result


def _train(config: TrainConfig, accelerator: Accelerator, run: Path) -> Path:
    set_seed(config.seed)
    with accelerator.main_process_first():  # the main process builds the datasets caches, the others read them
        data = load_data(
            config.dataset,
            data_dir=config.data_dir,
            train_split=config.train_split,
            test_split=config.test_split,
            image_column=config.image_column,
            label_column=config.label_column,
            image_size=config.image_size,
            limit_train=config.limit_train,
            limit_test=config.limit_test,
            val_fraction=config.val_fraction,
            val_seed=config.seed,
        )
        train_split = smooth_dataset(data.train, config, data.image_size) if config.cache_smoothed else data.train
    size = data.image_size
    model = create_model(config.model, num_classes=data.num_classes, image_size=size)
    if config.channels_last:  # the images follow: a conv with channels_last weights returns channels_last
        model = model.to(memory_format=torch.channels_last)
    if config.opt == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if len(train_split) < config.batch_size * accelerator.num_processes:
        raise ValueError(
            f"{len(train_split)} training images make no full batch of {config.batch_size} per "
            f"process x {accelerator.num_processes} processes: lower --batch-size"
        )
    # one process: a permutation per epoch; several: each image on the same process every epoch (its path cache)
    sampler = EpochSampler(len(train_split), config.seed, accelerator.num_processes, config.batch_size)
    workers = config.workers
    if workers is None:  # on a GPU, decoding in the main process starves the step (measured: half the images/s)
        workers = min(4, (os.cpu_count() or 1) // accelerator.num_processes) if accelerator.device.type == "cuda" else 0
    loader_args = dict(batch_size=config.batch_size, num_workers=workers, persistent_workers=workers > 0)
    train_loader = torch.utils.data.DataLoader(
        Images(train_split, size, "train"), sampler=sampler, drop_last=True, **loader_args
    )
    # the split each epoch is evaluated on: the held-out validation images when there are, so that the test split
    # is read only by the final evaluation (tools/evaluate.py); else the test split, as before
    watched, watched_name = (data.validation, "val") if data.validation is not None else (data.test, "test")
    check_images(watched, watched_name)  # a damaged image fails now, not after the first epoch
    watched_loader = torch.utils.data.DataLoader(Images(watched, size, watched_name), **loader_args)
    model, optimizer, train_loader, watched_loader = accelerator.prepare(model, optimizer, train_loader, watched_loader)
    progress = Progress()
    accelerator.register_for_checkpointing(progress)
    if config.resume is not None:
        _resume(accelerator, config, run, progress)
    smoother = Smoother(config, sampler.shard(accelerator.process_index), size)

    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        save_yaml(config, run / "args.yaml")
        _write_summary(run / "summary.csv", None, keep_epochs=progress.epoch)
    hyperparameters = {k: str(v) if isinstance(v, list) else v for k, v in dataclasses.asdict(config).items()}
    accelerator.init_trackers("tensorboard", config={k: v for k, v in hyperparameters.items() if v is not None})
    test_transform = None
    if config.test_smoothing:
        test_transform = lambda x: smoother(x, config.test_sparsity)  # noqa: E731

    steps_per_epoch = len(train_loader)
    kill_after = int(os.environ.get(KILL_ENV, "0"))
    for epoch in range(progress.epoch, config.total_epochs):
        sampler.epoch = epoch
        sparsity = None if config.cache_smoothed else config.sparsity_at(epoch)  # for the summary
        loader = accelerator.skip_first_batches(train_loader, progress.step) if progress.step else train_loader
        smoothing_before, start, seen = smoother.seconds, _clock(accelerator), 0
        running = torch.tensor(progress.sums, dtype=torch.float64, device=accelerator.device)
        lr = learning_rate(config, epoch + progress.step / steps_per_epoch)
        model.train()
        bar = track(
            loader,
            total=steps_per_epoch,
            initial=progress.step,
            desc=f"epoch {epoch + 1}/{config.total_epochs}",
            enabled=config.progress and accelerator.is_local_main_process,
        )
        for index, images, labels in bar:
            lr = learning_rate(config, epoch + progress.step / steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = smoother.train_batch(images.float().div_(255), epoch, index)
            x = augment(x, sample_uniform(index, epoch, config.seed, AUGMENT_DRAWS))
            with accelerator.accumulate(model):
                logits = model(x)
                loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            running[0] += loss.detach() * labels.numel()  # on the device: no synchronisation per step
            running[1] += (logits.argmax(1) == labels).sum()
            running[2] += labels.numel()
            seen += labels.numel()
            progress.step += 1
            progress.global_step += 1
            if progress.step % 20 == 0 and not bar.disable:
                bar.set_postfix(loss=f"{float(running[0] / running[2]):.3f}", lr=f"{lr:.3g}")
            if config.checkpoint_every and progress.global_step % config.checkpoint_every == 0:
                running = _save_checkpoint(accelerator, run, progress, running, config.keep_checkpoints)
            if progress.global_step == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
        seconds = max(_clock(accelerator) - start, 1e-9)
        sums = accelerator.reduce(running, "sum").tolist()
        progress.epoch, progress.step, progress.sums = epoch + 1, 0, [0.0, 0.0, 0.0]
        scores = evaluate(model, watched_loader, accelerator, test_transform)
        row = {
            "epoch": epoch + 1,
            "sparsity": sparsity if sparsity is not None else "",
            "lr": f"{lr:.6g}",
            "train_loss": f"{sums[0] / sums[2]:.6f}",
            "train_acc": f"{sums[1] / sums[2]:.6f}",
            f"{watched_name}_loss": f"{scores['loss']:.6f}",
            f"{watched_name}_acc": f"{scores['acc']:.6f}",
            "train_seconds": f"{seconds:.3f}",
            "smoothing_seconds": f"{smoother.seconds - smoothing_before:.3f}",
            "images_per_second": f"{seen * accelerator.num_processes / seconds:.1f}",
        }
        if accelerator.is_main_process:
            _write_summary(run / "summary.csv", row)
        accelerator.log({k: float(v) for k, v in row.items() if v != "" and k != "epoch"}, step=epoch + 1)
        accelerator.print(
            f"epoch {epoch + 1}/{config.total_epochs}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "epoch")
        )
        _save_checkpoint(accelerator, run, progress, torch.zeros_like(running), config.keep_checkpoints)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.save_model(model, str(run))  # model.safetensors
        RunInfo(
            model=config.model,
            num_classes=data.num_classes,
            image_size=size,
            dataset=data.name,
            smoothing=config.smoothing(config.test_sparsity),
            procedure=config.procedure,
            schedule=tuple(config.schedule),
            config=dataclasses.asdict(config),
            classes=getattr(data.train.features["label"], "names", None),
        ).write(run / "run.json")
    accelerator.end_training()
    return run


def _clock(accelerator: Accelerator) -> float:
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize(accelerator.device)
    return time.perf_counter()
