"""Every evaluation setting in one dataclass (``EvalConfig``), validated before the run is loaded; its field comments
are ``tools/evaluate.py``'s --help, and ``QUICK`` is its ``--quick``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .attacks import ATTACK_GRADS
from .corruptions import CONSTANTS, CORRUPTIONS

# what the model sees at test time. plain: the image; smoothed: the run's test-time smoothing (or at
# smoothing_sparsity); adaptive: the same with the noise stop ("auto"); median / gaussian / bilateral / nlmeans: a
# classical filter at test time (median_size, gaussian_sigma, bilateral_sigma, nlmeans_h); trained: a filter
# baseline's own filter, at the strength it was trained with. median, gaussian, bilateral and the blur / low-pass
# filters are differentiated exactly by the attacks; the smoothing, non-local means and TV through the BPDA surrogates
PIPELINES = ("plain", "smoothed", "adaptive", "median", "gaussian", "bilateral", "nlmeans", "trained")
DEFAULT_PIPELINES = ("plain", "smoothed", "adaptive")
SPLITS = ("test", "validation")  # what an evaluation reads: the test split, or the run's held-out training images
# "suite": every attack of attacks.robust, robust accuracy = the worst case; a surrogate name: APGD with it alone (the
# restarts still run), e.g. "naive" to show what gradient masking would report
ATTACK_MODES = ("suite", *ATTACK_GRADS)
CONSTANT_TIERS = ("auto", *CONSTANTS)  # the corruptions' severity constants: by image size, or one tier


@dataclass
class EvalConfig:
    # data
    dataset: str | None = None  # the data to evaluate on; None: the run's
    data_dir: str | None = None  # a local copy of the data; None: the run's (with --dataset: none)
    test_split: str | None = None  # None: the run's
    image_column: str | None = None  # None: the run's
    label_column: str | None = None  # None: the run's
    split: str = "test"  # test, or validation: the training images the run held out (--val-fraction)
    limit_test: int | None = None  # evaluate a fixed random subset (seed 0) of this size; None: every image
    batch_size: int = 128  # test images per batch
    # conditions
    corruptions: list[str] = field(default_factory=lambda: list(CORRUPTIONS))  # the benchmark's, by name
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])  # of each corruption, 1-5
    resolutions: list[int] = field(default_factory=lambda: [2, 4])  # low-resolution factors
    constants: str = "auto"  # corruption severity constants; auto: by image size
    # attacks
    epsilons: list[float] | None = None  # L-inf radii in [0, 1] units; None: 1,2,4,8/255 to 64 px, else 1,2,4/255
    attack: str = "suite"  # suite: the worst case over every attack; a gradient's name: APGD with it alone
    pgd_steps: int = 20  # APGD iterations per start (its step schedule scales with them)
    restarts: int = 2  # APGD random starts per gradient, losses alternating (CE, DLR)
    square_queries: int = 1000  # Square attack queries per image (0: none)
    attack_limit: int | None = None  # attack only the images of index below this; None: all
    attacked: list[str] | None = None  # the pipelines attacked (a subset of --pipelines); None: all of them
    sanity: bool = True  # the random-noise and 32/255 sanity checks of every attacked pipeline
    # pipelines
    pipelines: list[str] = field(default_factory=lambda: list(DEFAULT_PIPELINES))  # what the model sees
    median_size: int = 3  # the median pipeline's window side, odd
    gaussian_sigma: float = 0.5  # the gaussian pipeline's sigma, in pixels
    bilateral_sigma: float = 0.1  # the bilateral pipeline's value sigma, [0, 1] units (5x5 window, spatial sigma 1)
    nlmeans_h: float = 0.1  # the nlmeans pipeline's filter strength
    smoothing_sparsity: float | None = None  # the smoothed / adaptive pipelines' sparsity; None: the run's
    # output
    seed: int = 0  # of the corruptions' and attacks' random draws
    output: str | None = None  # the report's folder (results.json, .csv, .md, plots); None: write nothing
    progress: bool = True  # progress on a terminal (a line per interval otherwise), per condition, with the time left

    def __post_init__(self):
        self.validate()

    def replace(self, **changes) -> EvalConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        def check(ok: bool, message: str):
            if not ok:
                raise ValueError(message)

        for name, accepted in choices().items():
            values = getattr(self, name)
            for value in values if isinstance(values, (list, tuple)) else [] if values is None else [values]:
                check(value in accepted, f"unknown --{name.replace('_', '-')} {value!r}; accepted: {list(accepted)}")
        check(bool(self.pipelines), f"--pipelines must name one or more of {list(PIPELINES)}")
        outside = [p for p in self.attacked or [] if p not in self.pipelines]
        check(not outside, f"--attacked {outside} not among --pipelines {list(self.pipelines)}")
        check(all(1 <= s <= 5 for s in self.severities), f"--severities must be in 1-5, got {self.severities}")
        check(all(f >= 1 for f in self.resolutions), f"--resolutions must be factors >= 1, got {self.resolutions}")
        counts = {"batch_size": 1, "restarts": 1, "square_queries": 0, "pgd_steps": 0, "limit_test": 1,
                  "attack_limit": 0}  # fmt: skip
        for name, low in counts.items():
            value = getattr(self, name)
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= low)
            check(ok, f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")
        odd = isinstance(self.median_size, int) and self.median_size >= 1 and self.median_size % 2 == 1
        size = self.median_size
        check("median" not in self.pipelines or odd, f"--median-size must be an odd integer >= 1, got {size!r}")
        for name in ("gaussian_sigma", "bilateral_sigma", "nlmeans_h"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
            check(ok, f"--{name.replace('_', '-')} must be a finite number > 0, got {value!r}")
        sparsity = self.smoothing_sparsity
        check(sparsity is None or 0 < sparsity <= 1, f"--smoothing-sparsity must be in (0, 1], got {sparsity}")
        check(
            self.epsilons is None or all(0 <= e <= 1 for e in self.epsilons),
            f"epsilons must lie in [0, 1] (the images' units), got {self.epsilons}",
        )


def choices() -> dict[str, tuple]:
    """The accepted values of each setting that takes names: the one list validation and --help read."""
    return {
        "split": SPLITS,
        "corruptions": CORRUPTIONS,
        "constants": CONSTANT_TIERS,
        "attack": ATTACK_MODES,
        "pipelines": PIPELINES,
        "attacked": PIPELINES,
    }


# --quick: a first look in minutes instead of hours: one severity, the middle radius, short attacks on 200 images, the
# first 1,000 test images; its figures are not the report's (fewer conditions, a weaker attack)
QUICK = dict(severities=[3], epsilons=[2 / 255], pgd_steps=5, restarts=1, square_queries=100, attack_limit=200,
             limit_test=1000)  # fmt: skip


def describe(settings: dict) -> str:
    """Settings as flags (epsilons in 1/255, as the command line takes them)."""

    def shown(key, value):
        value = [round(e * 255, 3) for e in value] if key == "epsilons" else value
        return ",".join(f"{v:g}" for v in value) if isinstance(value, list) else value

    return " ".join(f"--{k.replace('_', '-')} {shown(k, v)}" for k, v in settings.items())
