"""One table from backend name to implementation; ``backend="auto"`` and ``ISVS_BACKEND`` pick from it.

Every backend has the signature ``solve(x, targets, config, channels, projection, noise=None, discrepancy=1.0)
-> [(out, SparsifyInfo)]`` with x (B, C, H, W) float in [0, 1], ``targets`` ascending, one result per target, and
``noise`` (B,) the noise level of each image for the noise stop (or None). The batched backends share the driver of
``ops/lbi/path.py`` (which also continues a saved ``state=``) and differ only in how a path advances and how it is
projected.

"numba" (the CPU default for float32) runs each image's iterations in compiled loops while its state stays in cache,
images over threads (``ops/lbi/numba_cpu.py``), with a union-find projection (``ops/projection/numba_cpu.py``).

"triton" runs the Split LBI kernels of ``ops/lbi/triton_fused.py`` (float32 math) on CUDA tensors, and on CPU tensors
under TRITON_INTERPRET=1 (how the kernel tests run), with the block projection of ``ops/projection/triton_block.py``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import torch

from .ops.lbi import path as lbi_path
from .ops.lbi import reference, torch_path
from .ops.projection import torch_path as projection_torch

ENV_VAR = "ISVS_BACKEND"

# the batched backends share lbi_path.solve and differ in how a path advances and how it is projected
PATH_PARTS: dict[str, tuple[Callable, Callable]] = {"torch": (torch_path.advance, projection_torch.project)}
try:  # numba can fail to import (e.g. a numpy newer than it supports): the CPU then falls back to "torch"
    from .ops.lbi import numba_cpu
    from .ops.projection import numba_cpu as projection_numba

    PATH_PARTS["numba"] = (numba_cpu.advance, projection_numba.project)
except ImportError:  # pragma: no cover - depends on the environment
    pass
try:  # triton has no wheels for some platforms (macOS, Windows); the other backends do not need it
    from .ops.lbi import triton_fused
    from .ops.projection import triton_block

    PATH_PARTS["triton"] = (triton_fused.advance, triton_block.project)
except ImportError:  # pragma: no cover - depends on the platform
    pass

BACKENDS: dict[str, Callable] = {
    "reference": reference.solve,  # plain and float64-capable: the oracle, slow
    **{
        name: functools.partial(lbi_path.solve, advance_fn=advance, project_fn=project)
        for name, (advance, project) in PATH_PARTS.items()
    },
}


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def names() -> list[str]:
    return ["auto", *BACKENDS]


def check_name(name: object, where: str) -> str:
    if name in ("triton", "numba") and name not in BACKENDS:
        raise ValueError(f"backend {name!r} ({where}) needs the {name} package, which cannot be imported here")
    if name not in names():
        raise ValueError(f"unknown backend {name!r} ({where}); accepted: {names()}")
    return name  # type: ignore[return-value]


def auto_name(device: torch.device, dtype: torch.dtype) -> str:
    """The backend "auto" picks for this device and dtype when ISVS_BACKEND does not name one."""
    if dtype == torch.float32 and device.type == "cuda" and "triton" in BACKENDS:
        return "triton"
    if dtype == torch.float32 and device.type == "cpu" and "numba" in BACKENDS:
        return "numba"
    return "torch"


# the backends that continue a saved PathState (the batched driver); "reference" runs each image alone
CONTINUING = tuple(PATH_PARTS)


def resolve_name(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """The backend name ``name`` stands for: "auto" honours ISVS_BACKEND (unset or empty: not set), then picks by
    device and dtype."""
    if name == "auto":
        name = check_name(os.environ.get(ENV_VAR) or "auto", f"environment variable {ENV_VAR}")
    return auto_name(device, dtype) if name == "auto" else name


def resolve(name: str, device: torch.device, dtype: torch.dtype) -> Callable:
    """The implementation for ``name`` (``resolve_name``), refused where it cannot run this device and dtype."""
    name = resolve_name(name, device, dtype)
    if name == "numba" and (device.type != "cpu" or dtype != torch.float32):
        raise ValueError(
            f"backend 'numba' computes in float32 on CPU tensors (got {dtype} math on {device.type}): "
            "use backend 'torch' (any device and dtype) or 'triton' (CUDA)"
        )
    if name == "triton":
        if device.type != "cuda" and not _interpreting():
            raise ValueError(
                f"backend 'triton' needs CUDA tensors (got {device.type}); on the CPU use backend 'torch', "
                "or set TRITON_INTERPRET=1 to run the kernels in Triton's interpreter"
            )
        if dtype != torch.float32:
            raise ValueError(f"backend 'triton' computes in float32 (got {dtype} math): use backend 'torch'")
    return BACKENDS[name]
