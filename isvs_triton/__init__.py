"""isvs_triton: robust image classifiers by inverse scale space sparsification (Split LBI), with fused kernels."""

from .api import estimate_noise, path, sparsify
from .config import DEFAULT, EVENTS, FAITHFUL, FAST, REFERENCE, SolverConfig
from .info import SparsifyInfo
from .ops.lbi.path import PathState, StateRecord
from .transforms import Sparsify, SparsifyLayer

__version__ = "0.1.0"
SUBPACKAGES = ("data", "models", "robustness", "train")  # imported on first use: ``isvs_triton.train.load_run``


def __getattr__(name: str):
    if name in SUBPACKAGES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT",
    "EVENTS",
    "FAITHFUL",
    "FAST",
    "REFERENCE",
    "PathState",
    "SolverConfig",
    "Sparsify",
    "SparsifyLayer",
    "SparsifyInfo",
    "StateRecord",
    "estimate_noise",
    "path",
    "sparsify",
]
