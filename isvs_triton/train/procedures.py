"""The training procedures by name, one entry each: which sparsity an epoch's training images are smoothed at, what
a baseline does to a batch instead, the settings it needs, and what it implies at test time.

Adding a procedure is one ``register(Procedure(...))`` here: the settings' validation (``train/config.py``), the
loop's smoothing (``procedures.Smoother``), the comparison (``recipes/compare.py``) and the evaluation read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..filters import gaussian_blur, gaussian_noise, lowpass, photometric, tv_chambolle
from ..rng import sample_uniform
from .augmix import DRAWS as AUGMIX_DRAWS
from .augmix import augmix

if TYPE_CHECKING:
    from .config import TrainConfig

Transform = Callable[["TrainConfig", torch.Tensor, int, torch.Tensor], torch.Tensor]


def _never(config: TrainConfig, epoch: int) -> None:
    return None


def _no_problem(config: TrainConfig) -> str | None:
    return None


@dataclass(frozen=True)
class Procedure:
    """One way of training. ``sparsity_at(config, epoch)``: the sparsity the epoch's images are smoothed at (None:
    not smoothed); ``sparsity_per_image(config, epoch, index)``: each image's own sparsity in the epoch, (B,),
    instead (None: sparsity_at's); ``transform(config, x, epoch, index)``: what a baseline does to a batch instead
    (None: nothing), or, for a procedure that also smooths, to the batch before its smoothing; ``settings``: the
    settings of ``PROCEDURE_SETTINGS`` it reads (any other one changed from its default is refused: it would act on
    nothing); ``problem(config)``: why the settings do not fit it (None: they do); ``extra_epochs``: epochs after
    ``config.epochs``; ``test_sparsity``: the sparsity its test-time smoothing uses; ``smoothed_at_test``: whether
    the comparison also evaluates it with test-time smoothing; ``epoch_split``: how the comparison divides an epoch
    budget (settings dict -> settings dict)."""

    name: str
    help: str
    settings: tuple[str, ...] = ("sparsity",)  # sparsity: the test-time smoothing's, unless the procedure says
    sparsity_at: Callable[[TrainConfig, int], float | None] = _never
    sparsity_per_image: Callable[[TrainConfig, int, torch.Tensor], torch.Tensor] | None = None
    transform: Transform | None = None
    problem: Callable[[TrainConfig], str | None] = _no_problem
    extra_epochs: Callable[[TrainConfig], int] = lambda config: 0
    test_sparsity: Callable[[TrainConfig], float] = lambda config: config.sparsity
    smoothed_at_test: bool = True
    epoch_split: Callable[[dict], dict] = lambda settings: settings
    # a baseline's filter at test time, from the run's settings: (filter of a [0, 1] batch, whether the attacks can
    # differentiate it exactly); None: it has none (noise augmentation, the ISVS procedures: their smoothing instead)
    test_filter: Callable[[dict], tuple[Callable[[torch.Tensor], torch.Tensor], bool]] | None = None

    def reads(self, setting: str) -> bool:
        """Whether this procedure reads ``setting``: every setting but the procedure-specific ones it does not list."""
        return setting not in PROCEDURE_SETTINGS or setting in self.settings

    @property
    def baseline(self) -> bool:
        """An alternative ISVS is compared with: it transforms the training images rather than smoothing them."""
        return self.transform is not None and self.sparsity_at is _never and self.sparsity_per_image is None


REGISTRY: dict[str, Procedure] = {}


def register(procedure: Procedure) -> Procedure:
    if procedure.name in REGISTRY:
        raise ValueError(f"procedure {procedure.name!r} is registered twice")
    REGISTRY[procedure.name] = procedure
    return procedure


def get(name: str) -> Procedure:
    if name not in REGISTRY:
        raise ValueError(f"unknown --procedure {name!r}; accepted: {list(REGISTRY)}")
    return REGISTRY[name]


# ------------------------------------------------------------------------------------------------ ISVS
register(Procedure("standard", "no smoothing (test-time smoothing is still measured by the comparison)"))
register(
    Procedure(
        "fixed",
        "every epoch smoothed at --sparsity",
        settings=("sparsity", "cache_smoothed"),
        sparsity_at=lambda config, epoch: config.sparsity,
    )
)


def _stage(config: TrainConfig, epoch: int) -> float:
    """Stages of equal length, one per --schedule sparsity, the remainder in the last one."""
    stages = config.schedule
    return stages[min(epoch * len(stages) // config.epochs, len(stages) - 1)]


def _iterative_problem(config: TrainConfig) -> str | None:
    from .. import backends

    stages = len(config.schedule)
    if config.epochs < stages:
        return f"--epochs ({config.epochs}) must be at least the number of stages in --schedule ({stages})"
    if config.backend == "reference":
        continuing = list(backends.CONTINUING)
        return f"--backend reference cannot continue a path between stages: use auto or one of {continuing}"
    return None


register(
    Procedure(
        "iterative",
        "coarse to fine: one stage of epochs per --schedule sparsity, each image's path continued",
        settings=("schedule", "path_state_budget"),  # its test-time sparsity is the last stage's
        sparsity_at=_stage,
        problem=_iterative_problem,
        test_sparsity=lambda config: config.schedule[-1],
    )
)


def _finetune_split(settings: dict) -> dict:
    epochs = settings["epochs"]  # the last quarter of the budget smoothed
    return {**settings, "epochs": epochs - epochs // 4, "finetune_epochs": epochs // 4}


def _finetune_problem(config: TrainConfig) -> str | None:
    return None if config.finetune_epochs >= 1 else "--procedure finetune needs --finetune-epochs >= 1"


register(
    Procedure(
        "finetune",
        "--epochs standard, then --finetune-epochs smoothed at --sparsity",
        settings=("sparsity", "finetune_epochs", "finetune_lr"),
        sparsity_at=lambda config, epoch: config.sparsity if epoch >= config.epochs else None,
        problem=_finetune_problem,
        extra_epochs=lambda config: config.finetune_epochs,
        epoch_split=_finetune_split,
    )
)


def _drawn_sparsity(config: TrainConfig, epoch: int, index: torch.Tensor) -> torch.Tensor:
    """augment: each image's sparsity in ``epoch``, uniform in [--sparsity-min, 1), drawn from (seed, epoch, index)
    like the noise augmentation's sigma (104729 keeps these draws apart from the others); near 1 the image is all but
    unchanged, as noise of sigma near 0 leaves it."""
    u = sample_uniform(index, epoch, config.seed + 104729, 1)[:, 0].double()
    return config.sparsity_min + (1 - config.sparsity_min) * u


register(
    Procedure(
        "augment",
        "ISVS as an augmentation: every epoch each image smoothed at its own sparsity, uniform in [--sparsity-min, 1]",
        settings=("sparsity", "sparsity_min"),
        sparsity_per_image=_drawn_sparsity,
    )
)


# ------------------------------------------------------------------------------------------------ baselines
def _noise(config: TrainConfig, x: torch.Tensor, epoch: int, index: torch.Tensor) -> torch.Tensor:
    # per image: sigma uniform in [0, noise_sigma] and its noise, drawn from (seed, epoch, index): reproducible, and
    # the same in any batch composition; 7919 keeps these draws apart from the crops'
    draws = sample_uniform(index, epoch, config.seed + 7919, 1 + 2 * x[0].numel())
    return gaussian_noise(x, draws[:, 0].to(x) * config.noise_sigma, draws[:, 1:])


def _photometric(config: TrainConfig, x: torch.Tensor, epoch: int, index: torch.Tensor) -> torch.Tensor:
    # per image: a brightness shift uniform in [-s, s] and a contrast factor uniform in [1 - s, 1 + s], s =
    # --photometric-strength, drawn from (seed, epoch, index) (7727 keeps these draws apart from the others)
    u = 2 * sample_uniform(index, epoch, config.seed + 7727, 2) - 1
    strength = config.photometric_strength
    return photometric(x, strength * u[:, 0], 1 + strength * u[:, 1])


def _augmix(config: TrainConfig, x: torch.Tensor, epoch: int, index: torch.Tensor) -> torch.Tensor:
    return augmix(x, sample_uniform(index, epoch, config.seed + 5563, AUGMIX_DRAWS), config.augmix_severity)


def _blur(config: TrainConfig, x: torch.Tensor, epoch: int, index: torch.Tensor) -> torch.Tensor:
    return gaussian_blur(x, config.blur_sigma)


def _lowpass(config: TrainConfig, x: torch.Tensor, epoch: int, index: torch.Tensor) -> torch.Tensor:
    return lowpass(x, config.lowpass_radius)


def _tv(config: TrainConfig, x: torch.Tensor, epoch: int, index: torch.Tensor) -> torch.Tensor:
    return tv_chambolle(x, config.tv_weight)


def _filter(function, setting: str, differentiable: bool):
    return lambda settings: (lambda x: function(x, settings[setting]), differentiable)


for _name, _help, _setting, _transform, _test_filter in (
    ("blur", "Gaussian blur of --blur-sigma pixels", "blur_sigma", _blur, _filter(gaussian_blur, "blur_sigma", True)),
    (
        "lowpass",
        "spatial frequencies up to --lowpass-radius of Nyquist",
        "lowpass_radius",
        _lowpass,
        _filter(lowpass, "lowpass_radius", True),
    ),
    ("tv", "TV-Chambolle denoising at --tv-weight", "tv_weight", _tv, _filter(tv_chambolle, "tv_weight", False)),
    (
        "noise",
        "Gaussian-noise augmentation, sigma uniform in [0, --noise-sigma] per image",
        "noise_sigma",
        _noise,
        None,
    ),
    (
        "augmix",
        "AugMix (train/augmix.py): three chains of the paper's operations at up to --augmix-severity, mixed per image",
        "augmix_severity",
        _augmix,
        None,
    ),
    (
        "photometric",
        "photometric augmentation: brightness shift and contrast factor per image, of --photometric-strength",
        "photometric_strength",
        _photometric,
        None,
    ),
):
    register(
        Procedure(
            _name,
            _help,
            settings=("sparsity", _setting),
            transform=_transform,
            smoothed_at_test=False,
            test_filter=_test_filter,
        )
    )

# ISVS combined with an augmentation: the baseline's transform first, then the ISVS smoothing sees the augmented image
# ("fixed-noise": Gaussian noise as --procedure noise, then smoothed at --sparsity)
for _isvs in ("fixed", "augment"):
    for _augmentation in ("noise", "photometric", "augmix"):
        _smoothing, _baseline = REGISTRY[_isvs], REGISTRY[_augmentation]
        # not --cache-smoothed: a training set smoothed once would be smoothed before its augmentation
        _settings = [name for name in _smoothing.settings + _baseline.settings if name != "cache_smoothed"]
        register(
            Procedure(
                f"{_isvs}-{_augmentation}",
                f"--procedure {_augmentation}'s augmentation, then the smoothing of --procedure {_isvs}",
                settings=tuple(dict.fromkeys(_settings)),
                sparsity_at=_smoothing.sparsity_at,
                sparsity_per_image=_smoothing.sparsity_per_image,
                transform=_baseline.transform,
            )
        )

PROCEDURES = tuple(name for name, p in REGISTRY.items() if not p.baseline)  # the ISVS procedures
BASELINES = tuple(name for name, p in REGISTRY.items() if p.baseline)  # the alternatives, applied like `fixed`
# the settings that belong to some procedures only: TrainConfig refuses one set for a procedure that does not read it
PROCEDURE_SETTINGS = tuple(dict.fromkeys(name for p in REGISTRY.values() for name in p.settings))
