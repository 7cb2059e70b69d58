"""A run folder: what a run records (``SmoothingSpec``: how it smooths; ``RunInfo``: its ``run.json``), how a finished
one is read back (``load_run``), and who may write into it.

Typed records that training writes and ``load_run``, the evaluation and the comparison read back, every field checked
(rather than each picking a dict apart by its own string keys). A run folder belongs to its run: training writes only
into a new or empty folder or into one that holds a run (``MARKER``, written first), and holds ``LOCK`` while it
writes, so that a second training on the same folder is refused instead of mixing its files with the first's. The
lock names its holder (process id, host, start time). A lock whose process no longer runs on this host is stale (a
run killed by SIGKILL or a power cut leaves one) and is taken over; a lock held on another host cannot be checked from
here, so it is refused with the way to remove it by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .. import backends
from ..api import sparsify
from ..config import CHANNEL_MODES, DEFAULT_PRESET, NOISE_MODES, PRESETS, saved_preset
from ..models import create_model, list_models

MODEL_FILE = "model.safetensors"  # the weights of a finished run (Accelerate's save_model)
MAX_CLASSES = 1_000_000  # a classifier's head beyond this is a damaged record, not a model (10^12 asked for 512 TB)
MAX_IMAGE_SIZE = 8192  # as training accepts (--image-size)

MARKER = ".isvs-run"  # written into a run folder before anything else: the folder's files are the run's
LOCK = "run.lock"  # present while a training writes into the folder


# ------------------------------------------------------------------------------------------------ the records
def check_noise(value: Any, where: str) -> float | str | None:
    """A ``noise`` setting as runs store it: None, "auto" or a standard deviation >= 0 (in [0, 1] units)."""
    if value is None or value in NOISE_MODES:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise ValueError(f"{where} must be {' or '.join(map(repr, NOISE_MODES))} or a number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SmoothingSpec:
    """One smoothing: a target sparsity, a solver preset, the channel mode, the backend and the noise stop.

    ``spec(x)`` smooths a (B, C, H, W) float batch in [0, 1] (``state=`` continues a saved path); ``spec.kwargs()``
    are the keyword options of ``sparsify`` it stands for."""

    sparsity: float
    solver: str = DEFAULT_PRESET  # a name of config.PRESETS
    channels: str = "independent"
    backend: str = "auto"
    noise: float | str | None = None  # the noise stop: None, "auto" or sigma in [0, 1] units
    discrepancy: float = 1.0

    def __post_init__(self):
        if self.solver not in PRESETS:
            raise ValueError(f"unknown solver preset {self.solver!r}; accepted: {list(PRESETS)}")
        check_noise(self.noise, "noise")

    def kwargs(self) -> dict:
        return dict(
            channels=self.channels,
            backend=self.backend,
            noise=self.noise,
            discrepancy=self.discrepancy,
            **PRESETS[self.solver].kwargs(),
        )

    def __call__(self, x: torch.Tensor, state=None) -> torch.Tensor:
        return sparsify(x, self.sparsity, state=state, **self.kwargs())

    def transform(self, key: str = "image"):
        """This smoothing as an ``isvs_triton.Sparsify`` transform (torchvision pipelines, ``datasets``)."""
        from ..transforms import Sparsify

        return Sparsify(self.sparsity, key=key, **self.kwargs())

    def replace(self, **changes) -> SmoothingSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_run(self, procedure: str, schedule: list[float]) -> dict:
        """The "smoothing" entry of ``run.json`` (``from_run`` reads it back): this spec as the run's test-time
        smoothing, with the procedure and schedule that trained the model."""
        spec = self.to_dict()
        return {"procedure": procedure, "test_sparsity": spec.pop("sparsity"), "schedule": schedule, **spec}

    @staticmethod
    def from_run(smoothing: dict, where: str = "run.json") -> SmoothingSpec:
        """The test-time smoothing recorded in a run's ``run.json`` "smoothing" entry, every field checked. A run
        that records no noise stop or backend smoothed without a noise stop on the "auto" backend: those are the
        defaults here; an older name of a preset is read as today's (``config.LEGACY_PRESETS``)."""
        missing = [key for key in ("test_sparsity", "solver", "channels") if key not in smoothing]
        if missing:
            raise ValueError(f"{where}: the 'smoothing' entry lacks {missing}; it has {sorted(smoothing)}")
        sparsity, discrepancy = smoothing["test_sparsity"], smoothing.get("discrepancy", 1.0)
        if not (_is_number(sparsity) and 0 < sparsity <= 1):
            raise ValueError(f"{where}: smoothing.test_sparsity must be a number in (0, 1], got {sparsity!r}")
        if not (_is_number(discrepancy) and 0 < discrepancy < float("inf")):
            raise ValueError(f"{where}: smoothing.discrepancy must be a finite number > 0, got {discrepancy!r}")
        choices = {"solver": (saved_preset(str(smoothing["solver"])), PRESETS), "channels": (smoothing["channels"],
                   CHANNEL_MODES), "backend": (smoothing.get("backend", "auto"), backends.names())}  # fmt: skip
        for key, (value, accepted) in choices.items():
            if value not in accepted:
                raise ValueError(f"{where}: smoothing.{key} must be one of {list(accepted)}, got {value!r}")
        return SmoothingSpec(
            sparsity=float(sparsity),
            solver=choices["solver"][0],
            channels=smoothing["channels"],
            backend=choices["backend"][0],
            noise=check_noise(smoothing.get("noise"), f"{where}: smoothing.noise"),
            discrepancy=float(discrepancy),
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunInfo:
    """A finished run as its ``run.json`` records it: the model, the data, how it was trained and how it smooths at
    test time, and every training setting (``config``, the resolved ``TrainConfig`` as a dict)."""

    model: str
    num_classes: int
    image_size: int
    dataset: str
    smoothing: SmoothingSpec  # the test-time smoothing
    procedure: str  # how the model was trained (train/procedures.py)
    schedule: tuple[float, ...]  # the iterative procedure's sparsities
    config: dict
    classes: list[str] | None = None  # the class names, where the data has them

    REQUIRED = ("model", "num_classes", "image_size", "dataset", "smoothing", "config")  # keys run.json must hold

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "dataset": self.dataset,
            "classes": self.classes,
            "smoothing": self.smoothing.to_run(self.procedure, list(self.schedule)),
            "config": self.config,
        }

    @staticmethod
    def from_json(description: dict, where: str = "run.json") -> RunInfo:
        """The record of a ``run.json`` dict; a file that lacks a key, or holds a wrong type, is refused by name."""
        if not isinstance(description, dict):
            raise ValueError(f"{where} holds a {type(description).__name__}, not a run description")
        missing = [key for key in RunInfo.REQUIRED if key not in description]
        if missing:
            raise ValueError(
                f"{where} lacks {missing} (it has {sorted(description)}): not a run of this version, or damaged"
            )
        smoothing = description["smoothing"]
        config = description["config"]
        kinds = {
            "model": (str, "a string"),
            "num_classes": (int, "an integer"),
            "image_size": (int, "an integer"),
            "dataset": (str, "a string"),
            "smoothing": (dict, "a mapping"),
            "config": (dict, "a mapping"),
        }
        for key, (kind, words) in kinds.items():
            if not isinstance(description[key], kind) or isinstance(description[key], bool):
                raise ValueError(f"{where}: {key} must be {words}, got {description[key]!r}")
        for key, high in (("num_classes", MAX_CLASSES), ("image_size", MAX_IMAGE_SIZE)):
            if not 1 <= description[key] <= high:
                raise ValueError(f"{where}: {key} must lie in [1, {high:,}], got {description[key]!r}")
        if description["model"].replace("-", "_") not in list_models():
            raise ValueError(f"{where}: model must be one of {list_models()}, got {description['model']!r}")
        classes = description.get("classes")
        if classes is not None and not (
            isinstance(classes, list)
            and len(classes) == description["num_classes"]
            and all(isinstance(c, str) for c in classes)
        ):
            raise ValueError(f"{where}: classes must be null or {description['num_classes']} names, got {classes!r}")
        schedule = smoothing.get("schedule", config.get("schedule", ()))
        if not (isinstance(schedule, (list, tuple)) and all(_is_number(v) and 0 < v <= 1 for v in schedule)):
            raise ValueError(f"{where}: smoothing.schedule must be a list of sparsities in (0, 1], got {schedule!r}")
        procedure = smoothing.get("procedure", config.get("procedure", "standard"))
        if not isinstance(procedure, str):
            raise ValueError(f"{where}: smoothing.procedure must be a procedure's name, got {procedure!r}")
        return RunInfo(
            model=description["model"],
            num_classes=description["num_classes"],
            image_size=description["image_size"],
            dataset=description["dataset"],
            smoothing=SmoothingSpec.from_run(smoothing, where),
            procedure=procedure,
            schedule=tuple(schedule),
            config=config,
            classes=classes,
        )

    @staticmethod
    def read(path: str | Path) -> RunInfo:
        """``from_json`` of the file at ``path`` (a damaged file, a folder or one that is not UTF-8 text is refused
        with its name)."""
        import json

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} cannot be read as a run description ({error})") from None
        try:
            return RunInfo.from_json(json.loads(text), str(path))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}): the file is damaged") from None

    def write(self, path: str | Path) -> None:
        import json

        Path(path).write_text(json.dumps(self.to_json(), indent=2))


def load_run(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, RunInfo]:
    """The trained model of a run folder (in eval mode) and its ``run.json`` record."""
    run = Path(path)
    if not (run / MODEL_FILE).exists() or not (run / "run.json").exists():
        raise FileNotFoundError(f"{run} holds no finished run (model.safetensors and run.json are written at the end)")
    info = RunInfo.read(run / "run.json")
    from .config import TrainConfig  # here: config.py reads this module's SmoothingSpec

    settings = TrainConfig.from_record(info.config, str(run / "run.json"))  # every field's type and range
    info = dataclasses.replace(info, config=dataclasses.asdict(settings))
    model = create_model(info.model, num_classes=info.num_classes, image_size=info.image_size)
    try:
        weights = load_file(str(run / "model.safetensors"), device=str(device))
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types; the user needs the file
        raise ValueError(
            f"{run / 'model.safetensors'} cannot be read ({error}): the file is damaged or incomplete"
        ) from None
    broken = [name for name, t in weights.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if broken:
        raise ValueError(
            f"{run / 'model.safetensors'} holds NaN or Inf in {broken[:5]}{' ...' if len(broken) > 5 else ''}: "
            "the training diverged (a lower --lr, or --amp-dtype bf16 instead of fp16), or the file is damaged"
        )
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ValueError(
            f"{run / 'model.safetensors'} does not fit run.json ({info.model}, {info.num_classes} "
            f"classes, {info.image_size} px): {' '.join(first[:2])}"
        ) from None
    return model.to(device).eval(), info


# ------------------------------------------------------------------------------------------------ who writes
def check_writable(folder: Path, what: str) -> None:
    """``--output`` ``folder`` can be made and written (for ``what``), checked before any data is loaded."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--output {str(folder)!r} is a file; {what} needs a folder there")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--output {str(folder)!r} lies under {str(existing)!r}, which is a file")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"--output {str(folder)!r}: {str(existing)!r} is not writable")


def claim(run: Path) -> None:
    """Make ``run`` a run folder: refused when it holds files that no run wrote (the user's own)."""
    if _holds_an_earlier_run(run):
        return
    if run.exists():
        # one listing decides: a training started beside this one may claim the folder at any moment, and its
        # marker (written before its lock) must read as a run's folder, not as the user's files
        entries = sorted(p.name for p in run.iterdir())
        if MARKER in entries:
            return
        if entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            raise ValueError(
                f"--output {str(run)!r} holds files that no training run wrote ({shown}): a run writes only into "
                "a new or empty folder, or continues its own; choose another --output"
            )
    run.mkdir(parents=True, exist_ok=True)
    (run / MARKER).write_text(json.dumps({"written_by": "isvs_triton training", "created": time.time()}) + "\n")


def _holds_an_earlier_run(run: Path) -> bool:
    """A run written before the marker existed: a readable run.json beside its model, or Accelerate checkpoints."""
    if (run / "model.safetensors").is_file() and (run / "run.json").is_file():
        try:
            RunInfo.read(run / "run.json")
            return True
        except ValueError:
            return False
    checkpoints = sorted((run / "checkpoints").glob("step_*")) if (run / "checkpoints").is_dir() else []
    return (run / "args.yaml").is_file() and any(any(c.glob("random_states_*.pkl")) for c in checkpoints)


def open_for_writing(run: Path) -> Lock:
    """``claim`` the folder, then take its lock (``Lock``): what a training does before it writes."""
    claim(run)
    return Lock(run)


class Lock:
    """``run / LOCK`` held by this process until ``release``; ``Lock(run)`` refuses when another live process
    holds it."""

    def __init__(self, run: Path):
        self.path = run / LOCK
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(2):  # a stale lock is removed once, then taken like a free one
            if self._create():
                return
            other = _read(self.path)
            if not _is_stale(other):
                raise ValueError(_held_message(run, other))
            self.path.unlink(missing_ok=True)
        raise ValueError(f"{self.path} could not be taken: another training may be starting in {run}")

    def _create(self) -> bool:
        # the holder is written to a temporary file and linked into place: the lock appears complete or not at all
        temporary = self.path.with_name(f"{LOCK}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self.holder) + "\n")
        try:
            os.link(temporary, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink(missing_ok=True)

    def release(self) -> None:
        if _read(self.path) == self.holder:
            self.path.unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # removed meanwhile, or not a lock this module wrote
    return holder if isinstance(holder, dict) else None


def _is_stale(holder: dict | None) -> bool:
    """Whether the lock's process is gone: only decidable for a process of this host."""
    if holder is None or holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, run by another user
        return False
    return False


def _held_message(run: Path, holder: dict | None) -> str:
    if holder is None:
        who = "a holder it does not name"
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
        who = f"process {holder.get('pid')} on host {holder.get('host')!r} (since {started})"
    return (
        f"--output {str(run)!r} is being written by another training: {who} holds {run / LOCK}. Wait for it, or "
        f"choose another --output; if that training is no longer running, delete {run / LOCK}"
    )
