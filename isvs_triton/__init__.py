"""isvs_triton: robust image classifiers by inverse scale space sparsification (Split LBI), with fused kernels."""

from .api import estimate_noise, path, sparsify
from .config import DEFAULT, EVENTS, FAITHFUL, FAST, REFERENCE, SolverConfig
from .info import SparsifyInfo
from .ops.lbi.path import PathState, StateRecord
from .transforms import Sparsify, SparsifyLayer

__version__ = "0.1.0"
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
