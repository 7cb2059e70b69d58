"""Solver constants of the Split LBI path and the presets the project ships.

The path is computed on ``scale * x`` with

    alpha = step * nu / (kappa * (1 + nu + 8))        (stable for 0 < step <= 1, since ||D||^2 < 8)

``REFERENCE`` is the definition of the path (DESIGN.md §1): every faster configuration is judged by how close its
output stays to the reference output at the same sparsity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

CHANNEL_MODES = ("independent", "joint")
PROJECTIONS = ("input", "beta", "none")


@dataclass(frozen=True)
class SolverConfig:
    kappa: float = 10.0  # damping of the inverse scale space; iterations grow with it
    nu: float = 1.0  # coupling of beta and its sparse edge variable gamma
    step: float = 1.0  # fraction of the largest stable step
    scale: float = 1.0  # intensity scale: the path runs on scale * x; iterations grow with 1 / scale
    momentum: float = 0.0  # Nesterov extrapolation weight; 0 is plain Split LBI
    max_iter: int = 200_000  # budget per image; an image that has not reached its target stops here

    @property
    def alpha(self) -> float:
        return self.step * self.nu / (self.kappa * (1.0 + self.nu + 8.0))

    def replace(self, **changes) -> "SolverConfig":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


REFERENCE = SolverConfig()
# Until the calibration of the fast path lands, the default path *is* the reference path.
DEFAULT = REFERENCE


def required_active(target: float, edges: int) -> int:
    """Smallest number of active edges whose fraction of ``edges`` is >= ``target``.

    The 1e-9 guards against products such as 0.3 * 10 = 3.0000000000000004 asking for one edge too many.
    """
    return max(0, math.ceil(target * edges - 1e-9))


def edge_count(height: int, width: int) -> int:
    """Edges of the 4-neighbour grid of one channel: horizontal H(W-1) plus vertical (H-1)W."""
    return height * (width - 1) + (height - 1) * width
