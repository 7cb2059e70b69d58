"""Solver constants of the Split LBI path and the presets the project ships.

The path is computed on ``scale * x`` with

    alpha = step * nu / (kappa * (1 + nu + 8))        (stable for 0 < step <= 1, since ||D||^2 < 8)

``REFERENCE`` is the definition of the path (ops/lbi/README.md): every faster configuration is judged by how close its
output stays to the reference output at the same sparsity.

Two integrators move along it (``INTEGRATORS``): ``"explicit"``, the Split LBI iteration itself (the reference's),
and ``"events"``, the path's limit for large kappa (Split inverse scale space) stepped from one batch of activation
events to the next: between events beta solves a linear system and z grows linearly, so each step is one solve
and a closed-form advance (ops/lbi/README.md, "Events integrator").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

CHANNEL_MODES = ("independent", "joint")
# what an image's output is at its stop: "input" (the mean of x over each region), "beta" (the mean of beta / scale),
# "none" (beta / scale itself), or "auto" (the default): "input" for an image stopped by its sparsity target or the
# budget, "none" for one stopped by its noise level, where the support has barely formed (docs/notes/calibration.md)
PROJECTIONS = ("auto", "input", "beta", "none")
# why an image stopped (SparsifyInfo.stopped_by): its target sparsity, its noise level, or the iteration budget
STOP_RULES = ("sparsity", "noise", "budget")
# how the path is integrated: the Split LBI step (the definition), or its large-kappa limit between activation events
INTEGRATORS = ("explicit", "events")
# the named values of ``noise=`` besides None, a number and a (B,) tensor: "auto", each image's estimated sigma
NOISE_MODES = ("auto",)


def chebyshev_bounds(nu: float) -> tuple[float, float, float]:
    """The spectrum of I + D^T W D / nu for any edge weights W in [0, 1], [1, 1 + 8/nu] (constant images give 1, and
    ||D||^2 < 8 on the grid), as the Chebyshev iteration reads it: its centre theta, half-width delta, and sigma =
    theta / delta."""
    lo, hi = 1.0, 1.0 + 8.0 / nu
    theta, delta = (hi + lo) / 2, (hi - lo) / 2
    return theta, delta, theta / delta


@dataclass(frozen=True)
class SolverConfig:
    kappa: float = 10.0  # damping of the inverse scale space; iterations grow with it
    nu: float = 1.0  # coupling of beta and its sparse edge variable gamma
    step: float = 1.0  # fraction of the largest stable step
    scale: float = 1.0  # intensity scale: the path runs on scale * x; iterations grow with 1 / scale
    momentum: float = 0.0  # Nesterov extrapolation weight; 0 is plain Split LBI
    max_iter: int = 200_000  # budget per image (iterations, or steps of "events"); an image stops here at the latest
    integrator: str = "explicit"  # "explicit" (the Split LBI step) or "events" (its large-kappa limit, event steps)
    events: float = 0.045  # "events" only: fraction of the image's jumps that one step activates
    tolerance: float = 1e-2  # "events" only: error reduction each step's solve guarantees (sets solve_iterations)

    @property
    def alpha(self) -> float:
        return self.step * self.nu / (self.kappa * (1.0 + self.nu + 8.0))

    @property
    def solve_iterations(self) -> int:
        """``"events"`` only: Chebyshev iterations per solve of (I + D^T W D / nu) beta = s x, the fewest whose bound
        on the error's shrinkage, 1 / T_K(sigma) over the operator's spectrum (``chebyshev_bounds``), is at most
        ``tolerance``: a fixed count, so a solve needs no reduction and no decision on the host."""
        sigma = chebyshev_bounds(self.nu)[2]
        return max(1, math.ceil(math.acosh(1.0 / self.tolerance) / math.acosh(sigma) - 1e-9))

    def replace(self, **changes) -> SolverConfig:
        """A copy with the given fields changed; None leaves a field as it is."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def kwargs(self) -> dict:
        """As keyword arguments of ``sparsify``/``path``/``Sparsify``: ``sparsify(x, **FAITHFUL.kwargs())``; the
        fields of the other integrator are left out (``sparsify`` refuses them)."""
        unused = ("step", "momentum") if self.integrator == "events" else ("events", "tolerance")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in unused}


# The definition of the path: faithful by construction, but ~20,000 iterations per 32x32 image (docs/performance.md).
REFERENCE = SolverConfig()
# The fastest explicit preset (tools/calibrate.py; docs/solver.md has its iterations and its distance to the
# reference output). Since a path with (kappa, scale) equals the path with (kappa / scale, scale 1), a large scale is
# a small effective kappa: fast, and further from the reference path.
FAST = SolverConfig(kappa=10.0, nu=3.0, step=1.0, scale=400.0, momentum=0.9, max_iter=128)
# Closer to the reference than FAST, at several times its iterations (docs/solver.md).
FAITHFUL = SolverConfig(kappa=10.0, nu=1.0, step=1.0, scale=30.0, momentum=0.9, max_iter=2000)
# The path's large-kappa limit in steps that each activate 4.5% of an image's jumps (kappa only sizes z on the active
# edges, scale only sets the time axis, step and momentum do not apply): the closest preset to the reference path,
# in the same number of steps for (almost) every image; why it is the default, and what it costs against FAST, is in
# docs/solver.md.
EVENTS = SolverConfig(nu=1.0, integrator="events", events=0.045, tolerance=1e-2, max_iter=1000)
# What sparsify / Sparsify / training use when no solver option is given.
DEFAULT = EVENTS
# the presets by name (training and evaluation settings name them); DEFAULT_PRESET is DEFAULT's name among them
PRESETS = {"events": EVENTS, "fast": FAST, "faithful": FAITHFUL}
DEFAULT_PRESET = next(name for name, preset in PRESETS.items() if preset is DEFAULT)
# What training smooths with unless told otherwise: the cheapest preset on the devices training runs on, among those
# that train models as robust as the default's (FAST: no significant difference to EVENTS on Fashion-MNIST, a third
# of its CPU time, and the GPU kernels that have been measured; docs/solver.md). sparsify keeps DEFAULT, the faithful
# path; training moves to it once a GPU measurement puts it within 1.5x of FAST at the recipes' sizes.
TRAINING_PRESET = "fast"
# Older saved runs name their solver "default", which meant FAST's constants: they load as "fast" (CHANGELOG.md).
LEGACY_PRESETS = {"default": "fast"}


def saved_preset(name: str) -> str:
    """The preset a saved run's solver name means today (``LEGACY_PRESETS`` translated; other names unchanged)."""
    return LEGACY_PRESETS.get(name, name)


def required_active(target: float, edges):
    """Smallest number of active edges whose fraction of ``edges`` (an int, or an int64 tensor of counts per image)
    is >= ``target``.

    The 1e-9 guards against products such as 0.3 * 10 = 3.0000000000000004 asking for one edge too many.
    """
    if isinstance(edges, torch.Tensor):
        return torch.ceil(target * edges.double() - 1e-9).clamp_(min=0).long()
    return max(0, math.ceil(target * edges - 1e-9))


def edge_count(height: int, width: int) -> int:
    """Edges of the 4-neighbour grid of one channel: horizontal H(W-1) plus vertical (H-1)W."""
    return height * (width - 1) + (height - 1) * width
