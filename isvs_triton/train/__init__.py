"""Training with inverse scale space smoothing: ``python -m isvs_triton.train --help`` or the files in ``recipes/``."""

from __future__ import annotations

import sys

from accelerate import PartialState

from ..data import DataError
from .config import PROCEDURES, TrainConfig, parse_args
from .loop import evaluate, train
from .run_folder import RunInfo, SmoothingSpec, load_run

__all__ = [
    "PROCEDURES",
    "RunInfo",
    "SmoothingSpec",
    "TrainConfig",
    "evaluate",
    "load_run",
    "main",
    "parse_args",
    "train",
]


def main(defaults: dict | None = None, argv: list[str] | None = None, prog: str | None = None) -> None:
    """Command-line entry of the recipes: ``defaults`` (the recipe's settings) < ``-c`` YAML < flags; ``prog`` names
    the command in ``--help`` (default: the script's file name).

    Bad settings and unusable data end the process with a one-line error (exit status 2), not a traceback."""
    try:
        config = parse_args(argv, defaults, prog)
        run = train(config)
    except (ValueError, DataError, FileNotFoundError) as error:
        if PartialState().is_main_process:  # once, not once per process of `accelerate launch`
            print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if PartialState().is_main_process:
        print(f"run folder: {run}")
