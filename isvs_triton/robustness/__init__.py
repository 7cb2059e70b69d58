"""Robustness evaluation: common corruptions, low resolution, adaptive L-inf attacks, and the report of a run."""

from .attacks import ATTACK_GRADS, LOSSES, Pipeline, apgd, fgsm, pgd, region_average, robust, square, suite_names
from .config import ATTACK_MODES, DEFAULT_PIPELINES, PIPELINES, QUICK, SPLITS, EvalConfig
from .corruptions import BENCHMARK, CONSTANTS, CORRUPTIONS, EXTRAS, GROUPS, corrupt, low_resolution
from .evaluate import ATTACK_LABELS, default_epsilons, evaluate_run, markdown, write_report

__all__ = [
    "ATTACK_GRADS",
    "ATTACK_LABELS",
    "ATTACK_MODES",
    "LOSSES",
    "CONSTANTS",
    "CORRUPTIONS",
    "BENCHMARK",
    "EXTRAS",
    "GROUPS",
    "DEFAULT_PIPELINES",
    "PIPELINES",
    "SPLITS",
    "EvalConfig",
    "Pipeline",
    "QUICK",
    "apgd",
    "corrupt",
    "default_epsilons",
    "evaluate_run",
    "fgsm",
    "low_resolution",
    "markdown",
    "pgd",
    "region_average",
    "robust",
    "square",
    "suite_names",
    "write_report",
]
