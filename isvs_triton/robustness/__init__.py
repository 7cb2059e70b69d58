"""Robustness evaluation: common corruptions, low resolution, adaptive L-inf attacks, and the report of a run."""

from .attacks import ATTACK_GRADS, Pipeline, fgsm, pgd
from .corruptions import BENCHMARK, CONSTANTS, CORRUPTIONS, EXTRAS, GROUPS, corrupt, low_resolution
from .evaluate import DEFAULT_PIPELINES, PIPELINES, SPLITS, default_epsilons, evaluate_run, markdown, write_report

__all__ = [
    "ATTACK_GRADS",
    "CONSTANTS",
    "CORRUPTIONS",
    "BENCHMARK",
    "EXTRAS",
    "GROUPS",
    "DEFAULT_PIPELINES",
    "PIPELINES",
    "SPLITS",
    "Pipeline",
    "corrupt",
    "default_epsilons",
    "evaluate_run",
    "fgsm",
    "low_resolution",
    "markdown",
    "pgd",
    "write_report",
]
