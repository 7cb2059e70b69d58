"""Every training setting in one dataclass, and the command line over it (timm conventions).

Precedence, lowest first: the defaults below < a recipe's defaults < ``-c FILE.yaml`` < kebab-case flags.
The resolved configuration is written to the run folder as ``args.yaml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import backends, cli
from ..config import CHANNEL_MODES, NOISE_MODES, PRESETS, TRAINING_PRESET, saved_preset
from ..data import EMBEDDED
from ..models import list_models
from . import procedures
from .procedures import BASELINES, PROCEDURES
from .run_folder import SmoothingSpec, check_noise

__all__ = ["BASELINES", "PROCEDURES", "TrainConfig", "parse_args", "parse_bytes"]


@dataclass
class TrainConfig:
    # data
    dataset: str = EMBEDDED  # Hub id, or the embedded "photo-patches"
    data_dir: str | None = None  # local copy: save_to_disk folder, parquet/arrow files or imagefolder
    train_split: str = "train"  # the split to train on
    test_split: str | None = None  # None: the first of validation / valid / val / test
    image_column: str | None = None  # None: image / img, else the first Image feature
    label_column: str | None = None  # None: label / labels / fine_label, else the first ClassLabel feature
    image_size: int | None = None  # None: 32 for CIFAR and the embedded data, 224 for ImageNet-100
    limit_train: int | None = None  # keep a fixed random subset (quick runs)
    limit_test: int | None = None  # evaluate on a fixed random subset of the test split
    val_fraction: float = 0.0  # held out of the training split by --seed; epochs are evaluated on it, not on test
    workers: int | None = None  # DataLoader workers (decoding); None: 4 on a GPU (CPU count allowing), 0 on a CPU
    # model
    model: str = "resnet18"  # a model of isvs_triton.models
    amp_dtype: str | None = None  # mixed precision; None: as `accelerate launch` / `accelerate config` say, else no
    channels_last: bool = False  # weights and activations in channels_last (NHWC): faster convs, other rounding
    # optimisation
    batch_size: int = 128  # per process
    lr: float = 0.1  # peak learning rate (not rescaled with the number of processes)
    opt: str = "sgd"  # the optimiser: SGD with Nesterov momentum, or AdamW
    weight_decay: float = 5e-4  # L2 weight decay of the optimiser
    label_smoothing: float = 0.0  # of the cross-entropy, in [0, 1)
    grad_accum: int = 1  # batches per optimiser step (gradient accumulation)
    seed: int = 0  # initialisation, data order and augmentation
    # schedule
    epochs: int = 10  # training epochs (finetune: before its --finetune-epochs)
    warmup_epochs: float = 1.0  # linear warm-up of the learning rate, then a cosine to 0
    # smoothing
    procedure: str = "standard"  # how the training images are treated (train/procedures.py)
    sparsity: float = 0.6  # fixed (and fixed-*) / finetune train at it; all but iterative: the test-time smoothing's
    sparsity_min: float = 0.3  # augment (and augment-*): each image's sparsity every epoch, uniform in [it, 1]
    schedule: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6])  # iterative: one stage per sparsity
    finetune_epochs: int = 0  # finetune: epochs on smoothed images after `epochs` of standard training
    finetune_lr: float | None = None  # finetune: its peak learning rate; None: lr / 10
    cache_smoothed: bool = False  # fixed: smooth the training set once through datasets.map
    path_state_budget: str = "4GiB"  # iterative: keep each image's (beta, z) between stages if it fits, per process
    test_smoothing: bool = False  # also smooth the test images (at the last training sparsity)
    solver: str = TRAINING_PRESET  # solver preset (docs/solver.md); sparsify's default is events
    channels: str = "independent"  # a segmentation per channel, or one shared by the channels
    backend: str = "auto"  # sparsifier backend (isvs_triton.backends)
    noise: str | None = None  # noise stop of every smoothing (training and test time): "auto" or a sigma in [0, 1]
    discrepancy: float = 1.0  # the noise stop's factor: stop where RMS(beta / scale - x) <= discrepancy * sigma
    # baselines
    blur_sigma: float = 1.0  # blur: Gaussian blur, in pixels
    lowpass_radius: float = 0.5  # lowpass: keep spatial frequencies up to this fraction of Nyquist (radial FFT mask)
    tv_weight: float = 0.1  # tv: scikit-image denoise_tv_chambolle weight (100 iterations)
    noise_sigma: float = 0.1  # noise (and *-noise): Gaussian-noise augmentation, sigma uniform in [0, noise_sigma]
    augmix_severity: float = 3.0  # augmix (and *-augmix): its operations' largest level, of 10 (the paper's 3)
    photometric_strength: float = 0.4  # photometric (and *-photometric): brightness shift +-it, contrast factor 1 +- it
    # output
    output: str | None = None  # None: runs/<dataset>-<model>-<procedure>-s<seed>
    resume: str | None = None  # "latest" (the newest checkpoint in output) or a checkpoint folder
    checkpoint_every: int = 0  # also save a checkpoint every N steps (0: at the end of each epoch only)
    keep_checkpoints: int = 2  # the newest checkpoints kept
    log_with: str = "tensorboard"  # a tracker besides summary.csv
    progress: bool = True  # progress bars on a terminal (a line per interval otherwise)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def check(ok: bool, message: str):
            if not ok:
                raise ValueError(message)

        self._check_types()
        if isinstance(self.noise, str) and self.noise not in NOISE_MODES:  # a number given on the command line
            try:
                self.noise = float(self.noise)
            except ValueError:
                pass
        self.noise = check_noise(self.noise, "--noise")

        for name, accepted in choices().items():
            value = getattr(self, name)
            value = value.replace("-", "_") if name == "model" else value
            check(value in accepted, f"unknown {cli.flag(name)} {getattr(self, name)!r}; accepted: {list(accepted)}")
        for name, interval in RANGES.items():
            value, (low_bracket, low, high, high_bracket) = getattr(self, name), interval
            above_low = value is None or (low < value if low_bracket == "(" else low <= value)
            below_high = value is None or (value < high if high_bracket == ")" else value <= high)
            check(
                above_low and below_high,
                f"{cli.flag(name)} must lie in {low_bracket}{low:g}, {high:g}{high_bracket}, got {value!r}",
            )
        check(
            len(self.schedule) >= 1 and all(0 < s <= 1 for s in self.schedule),
            f"--schedule must be sparsities in (0, 1], got {self.schedule}",
        )
        check(
            all(a < b for a, b in zip(self.schedule, self.schedule[1:])),
            f"--schedule must rise (the path only moves forward), got {self.schedule}",
        )
        procedure = procedures.get(self.procedure)
        unread = [n for n in procedures.PROCEDURE_SETTINGS if not procedure.reads(n) and self._changed(n)]
        check(
            not unread,
            f"{', '.join(map(cli.flag, unread))} {'does' if len(unread) == 1 else 'do'} not apply to --procedure "
            f"{self.procedure}, which reads {list(map(cli.flag, procedure.settings))} of the procedure-specific "
            "settings: leave it out, or choose the procedure it belongs to",
        )
        problem = procedure.problem(self)
        check(problem is None, problem)
        check(self.output is None or self.output.strip() != "", f"--output must name a folder, got {self.output!r}")
        parse_bytes(self.path_state_budget)
        check(
            self.resume is None or self.resume == "latest" or Path(self.resume).is_dir(),
            f"--resume must be 'latest' or an existing checkpoint folder, got {self.resume!r}",
        )

    def _check_types(self) -> None:
        """Each setting against its annotation, before any is used: YAML gives strings, floats and booleans where
        the flags would have been parsed (``lr: "0.1"``, ``epochs: 1.5``, ``progress: "no"``)."""
        for f in dataclasses.fields(self):
            if f.name == "noise":  # "auto" or a number: check_noise decides
                continue
            value, flag = getattr(self, f.name), "--" + f.name.replace("_", "-")
            kind, optional = f.type.removesuffix(" | None"), f.type.endswith(" | None")
            if value is None and optional:
                continue
            if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if kind == "list[float]":
                ok = isinstance(value, list) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
                )
            else:
                python_type = {"str": str, "int": int, "float": float, "bool": bool}[kind]
                ok = isinstance(value, python_type) and (kind == "bool" or not isinstance(value, bool))
                ok = ok and (kind != "float" or math.isfinite(value))
            if not ok:
                what = {
                    "list[float]": "a list of finite numbers",
                    "bool": "true or false",
                    "float": "a finite number",
                    "int": "an integer",
                    "str": "a string",
                }[kind] + (" (or null)" if optional else "")
                raise ValueError(f"{flag} must be {what}, got {value!r} ({type(value).__name__})")

    def _changed(self, name: str) -> bool:
        """Whether setting ``name`` differs from TrainConfig's default."""
        return getattr(self, name) != cli.default(next(f for f in dataclasses.fields(self) if f.name == name))

    @staticmethod
    def from_record(settings: object, where: str) -> TrainConfig:
        """The settings a run recorded (run.json's "config"), checked as training checks them, with the names of
        the fields in every message. ``dataset`` and ``seed`` must be there; settings this version does not know
        are left out; ``resume`` and ``output`` (where it ran, not what it computed) and the settings its procedure
        does not read (they did not act) take their defaults."""
        if not isinstance(settings, dict):
            raise ValueError(f"{where}: config must be a mapping of settings, got {type(settings).__name__}")
        missing = [key for key in ("dataset", "seed") if key not in settings]
        if missing:
            raise ValueError(f"{where}: config lacks {missing}, which the evaluation reads: not a run's record")
        known = {f.name for f in dataclasses.fields(TrainConfig)} - {"resume", "output"}
        values = {key: value for key, value in settings.items() if key in known}
        if isinstance(values.get("solver"), str):
            values["solver"] = saved_preset(values["solver"])
        procedure = procedures.REGISTRY.get(values.get("procedure", "standard"))
        if procedure is not None:
            values = {k: v for k, v in values.items() if procedure.reads(k)}
        try:
            return TrainConfig(**values)
        except ValueError as error:
            raise ValueError(f"{where}: config: {error}") from None

    @property
    def total_epochs(self) -> int:
        return self.epochs + procedures.get(self.procedure).extra_epochs(self)

    def sparsity_at(self, epoch: int) -> float | None:
        """The sparsity the training images of ``epoch`` are smoothed at (None: not smoothed)."""
        return procedures.get(self.procedure).sparsity_at(self, epoch)

    @property
    def test_sparsity(self) -> float:
        return procedures.get(self.procedure).test_sparsity(self)

    def smoothing(self, sparsity: float) -> SmoothingSpec:
        """The run's smoothing at ``sparsity``: its solver, channel mode, backend and noise stop."""
        return SmoothingSpec(sparsity, self.solver, self.channels, self.backend, self.noise, self.discrepancy)

    def run_dir(self) -> Path:
        name = f"{self.dataset.split('/')[-1]}-{self.model}-{self.procedure}-s{self.seed}"
        return Path(self.output) if self.output else Path("runs") / name


# the accepted interval of each numeric setting, as its brackets read ("(": excluded, "[": included). The upper ends
# keep every value the optimiser, the filters and the allocator can take (--lr 1e308 overflowed inside the optimiser,
# --blur-sigma 1e9 asked for a kernel of that size); they lie far beyond any useful setting
RANGES = {
    "epochs": ("[", 1, 10**6, "]"),
    "batch_size": ("[", 1, 2**20, "]"),
    "grad_accum": ("[", 1, 2**20, "]"),
    "keep_checkpoints": ("[", 1, 10**6, "]"),
    "finetune_epochs": ("[", 0, 10**6, "]"),
    "checkpoint_every": ("[", 0, 2**62, "]"),
    "workers": ("[", 0, 256, "]"),
    "image_size": ("[", 1, 8192, "]"),
    "limit_train": ("[", 1, 2**62, "]"),
    "limit_test": ("[", 1, 2**62, "]"),
    "warmup_epochs": ("[", 0, 10**6, "]"),
    "weight_decay": ("[", 0, 10, "]"),
    "lr": ("(", 0, 1000, "]"),
    "finetune_lr": ("(", 0, 1000, "]"),
    "blur_sigma": ("(", 0, 100, "]"),
    "lowpass_radius": ("(", 0, 2, "]"),  # a fraction of Nyquist: from √2 on every frequency is kept
    "tv_weight": ("(", 0, 100, "]"),
    "noise_sigma": ("(", 0, 1, "]"),  # a standard deviation in [0, 1] units
    "discrepancy": ("(", 0, 100, "]"),
    "label_smoothing": ("[", 0, 1, ")"),
    "val_fraction": ("[", 0, 1, ")"),
    "sparsity": ("(", 0, 1, "]"),
    "sparsity_min": ("(", 0, 1, "]"),
    "photometric_strength": ("(", 0, 1, "]"),
    "augmix_severity": ("[", 0.1, 10, "]"),
}


def choices() -> dict[str, list]:
    """The accepted values of each setting that takes a name: the one list validation and --help read."""
    return {
        "model": list_models(),
        "procedure": list(procedures.REGISTRY),
        "opt": ["sgd", "adamw"],
        "amp_dtype": [None, "no", "fp16", "bf16"],
        "solver": list(PRESETS),
        "channels": list(CHANNEL_MODES),
        "backend": backends.names(),
        "log_with": ["tensorboard", "none"],
    }


def parse_bytes(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", str(text), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"--path-state-budget must be a size like 512MiB, 4GiB or 0, got {text!r}")
    unit = (match.group(2) or "B").upper()
    power = {"B": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit[0]]
    return int(float(match.group(1)) * (1024 if "I" in unit else 1000) ** power)


# ---------------------------------------------------------------------------------------------------- command line
def field_help() -> dict[str, str]:
    """Each setting's --help line: the comment beside its field in TrainConfig (one place documents a setting)."""
    return {name: text for name, (text, _) in cli.documented_fields(TrainConfig).items()}


def _parser(defaults: dict | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """The command line over TrainConfig, one group per section, choices listed, and the defaults it runs with: the
    recipe's (``defaults``) over TrainConfig's."""
    parser = argparse.ArgumentParser(
        prog=prog,
        usage="%(prog)s [-h] [-c FILE.yaml] [--SETTING VALUE ...]",
        description="Train an image classifier with inverse scale space smoothing. Settings: the defaults shown "
        "(a recipe's over TrainConfig's) < -c FILE.yaml < these flags.",
    )
    parser.add_argument("-c", "--config", help="YAML file of settings (keys as below, with - or _)")
    special = {
        "batch_size": {"names": ["--batch-size", "-b"]},
        "resume": {"nargs": "?", "const": "latest"},
    }
    cli.add_fields(parser, TrainConfig, defaults, choices(), special)
    return parser


def _yaml_settings(path: str) -> dict:
    try:
        settings = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"cannot read config file {path!r}: {error}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"config file {path!r} must hold a mapping of settings, got {type(settings).__name__}")
    settings = {k.replace("-", "_"): v for k, v in settings.items()}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown settings {unknown} in {path!r}; accepted: {sorted(known)}")
    return settings


def parse_args(argv: list[str] | None = None, defaults: dict | None = None, prog: str | None = None) -> TrainConfig:
    """TrainConfig from ``defaults`` (a recipe's), then ``-c`` YAML, then the flags in ``argv``."""
    args = _parser(defaults, prog).parse_args(argv)
    given = _yaml_settings(args.config) if args.config else {}
    given.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    settings = {**(defaults or {}), **given}
    procedure = procedures.REGISTRY.get(settings.get("procedure", "standard"))
    if procedure is not None:  # a recipe's setting for its own procedure does not follow the user to another one
        settings = {k: v for k, v in settings.items() if k in given or procedure.reads(k)}
    if isinstance(settings.get("schedule"), str):
        settings["schedule"] = cli.comma_list(float)(settings["schedule"])  # a YAML "0.2,0.4"
    return TrainConfig(**settings)


def save_yaml(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
