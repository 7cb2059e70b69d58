"""The registry of backends: each states what it is, what it runs on and whether it continues a saved path;
``backend="auto"`` and ``ISVS_BACKEND`` pick from it here and nowhere else.

Every backend is called as ``solve(x, targets, config, channels, projection, noise=None, discrepancy=1.0)
-> [(out, SparsifyInfo)]`` with x (B, C, H, W) float in [0, 1], ``targets`` ascending, one result per target, and
``noise`` (B,) the noise level of each image for the noise stop (or None). The batched backends are the shared
driver of ``ops/lbi/path.py`` (which also continues a saved ``state=``) with their own ``advance`` (how a path moves)
and ``project`` (the regions' means):

- "reference": plain PyTorch, one image at a time, float64-capable: the oracle, slow.
- "torch": batched eager PyTorch, any device and dtype.
- "numba" (the CPU default for float32): compiled per-image loops over threads (``ops/lbi/numba_cpu.py``), a
  union-find projection (``ops/projection/numba_cpu.py``); a call's torch operations on the host run on one thread
  (``ops/parallel.cores_to_compiled_loops``: torch's idle OpenMP workers would spin on the loops' cores).
- "triton": the Split LBI kernels of ``ops/lbi/triton_fused.py`` (float32) on CUDA tensors, and on CPU tensors under
  TRITON_INTERPRET=1 (how the kernel tests run), with the block projection of ``ops/projection/triton_block.py``.
  Both integrators: the explicit one in ``triton_kernels.py``, the events one in ``triton_events.py`` (one program
  per image for its whole path) up to 64 px a side and ``triton_events_tiled.py`` (every pass over blocks of every
  image) above.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .config import INTEGRATORS
from .ops.lbi import path as lbi_path
from .ops.lbi import reference, torch_path
from .ops.projection import torch_path as projection_torch

ENV_VAR = "ISVS_BACKEND"
ANY = None  # a backend that runs on every device type / dtype


@dataclass(frozen=True)
class Backend:
    """One way to run the path. ``advance``/``project`` are set for the batched backends (those continue a saved
    ``PathState``), with the ``masks`` their driver forms; ``devices``, ``dtypes`` and ``integrators`` are what it
    accepts (ANY: every device / dtype); ``scope`` is entered around each call of ``solve`` (and should be around
    a caller's own sequence of ``advance`` and ``project`` calls)."""

    name: str
    solve: Callable
    devices: tuple[str, ...] | None = ANY
    dtypes: tuple[torch.dtype, ...] | None = ANY
    integrators: tuple[str, ...] = INTEGRATORS
    advance: Callable | None = None
    project: Callable | None = None
    masks: lbi_path.Masks = lbi_path.TORCH_MASKS
    scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    @property
    def can_continue(self) -> bool:
        return self.advance is not None

    def __call__(self, *args, **kwargs):
        with self.scope():
            return self.solve(*args, **kwargs)


def batched(
    name: str, advance: Callable, project: Callable, masks: lbi_path.Masks = lbi_path.TORCH_MASKS, **accepts
) -> Backend:
    solve = functools.partial(lbi_path.solve, advance_fn=advance, project_fn=project, masks=masks)
    return Backend(name, solve, advance=advance, project=project, masks=masks, **accepts)


REGISTRY: dict[str, Backend] = {
    "reference": Backend("reference", reference.solve),
    "torch": batched("torch", torch_path.advance, projection_torch.project),
}
UNAVAILABLE: dict[str, str] = {}  # name -> why it cannot be imported here
try:  # numba can fail to import (e.g. a numpy newer than it supports): the CPU then falls back to "torch"
    from .ops.lbi import numba_cpu
    from .ops.parallel import cores_to_compiled_loops
    from .ops.projection import numba_cpu as projection_numba

    REGISTRY["numba"] = batched(
        "numba",
        numba_cpu.advance,
        projection_numba.project,
        masks=numba_cpu.MASKS,
        devices=("cpu",),
        dtypes=(torch.float32,),
        scope=cores_to_compiled_loops,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    UNAVAILABLE["numba"] = f"needs the numba package, which cannot be imported here ({error})"
try:  # triton has no wheels for some platforms (macOS, Windows); the other backends do not need it
    from .ops.lbi import triton_fused
    from .ops.projection import triton_block

    REGISTRY["triton"] = batched(
        "triton",
        triton_fused.advance,
        triton_block.project,
        devices=("cuda",),
        dtypes=(torch.float32,),
    )
except ImportError as error:  # pragma: no cover - depends on the platform
    UNAVAILABLE["triton"] = f"needs the triton package, which cannot be imported here ({error})"

CONTINUING = tuple(name for name, backend in REGISTRY.items() if backend.can_continue)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def names() -> list[str]:
    return ["auto", *REGISTRY]


def check_name(name: object, where: str) -> str:
    if name in UNAVAILABLE:
        raise ValueError(f"backend {name!r} ({where}): {UNAVAILABLE[name]}")
    if name not in names():
        raise ValueError(f"unknown backend {name!r} ({where}); accepted: {names()}")
    return name  # type: ignore[return-value]


def auto_name(device: torch.device, dtype: torch.dtype, integrator: str = "explicit") -> str:
    """The backend "auto" picks for this device, dtype and integrator when ISVS_BACKEND does not name one: the first
    of triton, numba that accepts them (float32 on CUDA, float32 on the CPU), else torch."""
    for name in ("triton", "numba"):
        backend = REGISTRY.get(name)
        if (
            backend is not None
            and device.type in backend.devices
            and dtype in backend.dtypes
            and integrator in backend.integrators
        ):
            return name
    return "torch"


def resolve_name(name: str, device: torch.device, dtype: torch.dtype, integrator: str = "explicit") -> str:
    """The backend name ``name`` stands for: "auto" honours ISVS_BACKEND (unset or empty: not set), then picks by
    device, dtype and integrator."""
    if name == "auto":
        name = check_name(os.environ.get(ENV_VAR) or "auto", f"environment variable {ENV_VAR}")
    return auto_name(device, dtype, integrator) if name == "auto" else name


def resolve(name: str, device: torch.device, dtype: torch.dtype, integrator: str = "explicit") -> Backend:
    """The backend ``name`` stands for (``resolve_name``), refused where it cannot run this device, dtype and
    integrator."""
    backend = REGISTRY[resolve_name(name, device, dtype, integrator)]
    if integrator not in backend.integrators:
        capable = [n for n, b in REGISTRY.items() if integrator in b.integrators]
        raise ValueError(
            f"backend {backend.name!r} runs the integrators {list(backend.integrators)}, not "
            f"{integrator!r}: use one of {capable}"
        )
    on_device = backend.devices is ANY or device.type in backend.devices
    if backend.name == "triton" and device.type == "cpu" and _interpreting():
        on_device = True  # the kernel tests: Triton's interpreter runs the kernels on CPU tensors
    in_dtype = backend.dtypes is ANY or dtype in backend.dtypes
    if not (on_device and in_dtype):
        dtypes = "/".join(str(d).removeprefix("torch.") for d in backend.dtypes or ())
        devices = "/".join(d.upper() for d in backend.devices or ())
        hint = ", or set TRITON_INTERPRET=1 to run the kernels in Triton's interpreter" if not on_device else ""
        raise ValueError(
            f"backend {backend.name!r} computes in {dtypes or 'any dtype'} on {devices or 'any'} tensors (got "
            f"{dtype} math on {device.type}): use backend 'torch' (any device and dtype)"
            + (hint if backend.name == "triton" else "")
        )
    return backend
