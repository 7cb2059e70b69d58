"""``Sparsify``: ``sparsify`` as a picklable transform for torchvision-style pipelines and ``datasets``."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import numpy as np
import torch

from .api import OPTIONS, SOLVER_OPTIONS, _check_sparsity, _solver_config, check_options, path, sparsify


class Sparsify:
    """Callable ``sparsify(image, sparsity, **options)``, validated once at construction.

    Accepts what ``sparsify`` accepts, a list of images (same-shaped ones are smoothed as one batch), or a
    ``datasets`` example/batch dict, whose ``key`` column is replaced (``Dataset.with_transform(Sparsify(...))``).
    An image given as nested lists (an ``Array2D`` / ``Array3D`` column of ``datasets``) is read as a numpy (H, W) /
    (H, W, C) array: float32 for floats, uint8 for integers (which must lie in [0, 255]); it comes back as one.

    Example:
        >>> ds = ds.with_transform(Sparsify(0.6, key="img"))
    """

    def __init__(self, sparsity: float = 0.6, *, key: str = "image", **options: Any):
        self.sparsity = _check_sparsity(sparsity)
        self.key = key
        self.options = options
        # validate every option now, on a 1x1 image, rather than inside a data-loader worker later
        path(torch.zeros(1, 1, 1), [self.sparsity], **options)

    def __call__(self, x: Any) -> Any:
        if isinstance(x, Mapping):
            if self.key not in x:
                raise KeyError(f"Sparsify(key={self.key!r}): no such column; columns are {list(x)}")
            return {**x, self.key: self(x[self.key])}
        if isinstance(x, (list, tuple)):
            if _depth(x) in (2, 3) and all(isinstance(v, (int, float, list, tuple)) for v in x):
                return sparsify(_nested_image(x), self.sparsity, **self.options)  # one image as nested lists
            return type(x)(self._many(list(x)))
        return sparsify(x, self.sparsity, **self.options)

    def _many(self, images: list) -> list:
        if not images:
            return []
        images = [_nested_image(i) if isinstance(i, (list, tuple)) else i for i in images]
        first = images[0]
        same = all(type(i) is type(first) for i in images)
        if same and isinstance(first, torch.Tensor) and first.dim() == 3:
            if all(i.shape == first.shape and i.dtype == first.dtype and i.device == first.device for i in images):
                return list(sparsify(torch.stack(images), self.sparsity, **self.options).unbind(0))
        if same and isinstance(first, np.ndarray) and first.ndim in (2, 3):
            if all(i.shape == first.shape and i.dtype == first.dtype for i in images):
                return list(sparsify(np.stack(images), self.sparsity, **self.options))
        return [sparsify(i, self.sparsity, **self.options) for i in images]

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        key = f", key={self.key!r}" if self.key != "image" else ""
        return f"Sparsify(sparsity={self.sparsity}{extra}{key})"


def _depth(x) -> int:
    depth = 0
    while isinstance(x, (list, tuple)) and x:
        x, depth = x[0], depth + 1
    return depth


def _nested_image(x) -> np.ndarray:
    """An image as nested lists of numbers (a ``datasets`` Array2D / Array3D cell) as a numpy array: float32 for
    floats, uint8 for integers in [0, 255]."""
    array = np.asarray(x)
    if array.dtype.kind == "f":
        return array.astype(np.float32)
    if array.dtype.kind in "iu" and array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"an image of integers must lie in [0, 255] (uint8), got min {array.min()}, max {array.max()}")
    if array.dtype.kind in "iub":
        return array.astype(np.uint8)
    raise TypeError(f"an image as nested lists must hold numbers, got {array.dtype} values")


# ------------------------------------------------------------------------------------------ the op and the module
# the numeric solver options the op passes, per integrator (SolverConfig.kwargs() without integrator and max_iter)
_SOLVER_NUMBERS = {
    "explicit": ("kappa", "nu", "step", "scale", "momentum"),
    "events": ("kappa", "nu", "scale", "events", "tolerance"),
}


# sparsify as a registered PyTorch op: torch.compile sees one opaque call (its fake implementation gives the output's
# shape) instead of breaking the graph at Python code it cannot trace. Non-tensor options travel as plain values.
@torch.library.custom_op("isvs_triton::sparsify", mutates_args=())
def sparsify_op(
    x: torch.Tensor,
    sparsity: torch.Tensor,
    solver: list[float],
    integrator: str,
    max_iter: int,
    projection: str,
    channels: str,
    backend: str,
    noise_mode: str,
    noise: float,
    discrepancy: float,
) -> torch.Tensor:
    """``sparsify`` of a float (B, C, H, W) batch in [0, 1] with one target per image, ``sparsity`` (B,) float64.

    ``solver`` is the numbers of ``SolverConfig.kwargs()`` in order (``_SOLVER_NUMBERS`` of the integrator);
    ``noise_mode`` is "none", "auto" or "value" (then ``noise`` is sigma)."""
    numbers = dict(zip(_SOLVER_NUMBERS[integrator], solver))
    out = sparsify(
        x,
        sparsity,
        **numbers,
        integrator=integrator,
        max_iter=max_iter,
        projection=projection,
        channels=channels,
        backend=backend,
        noise={"none": None, "auto": "auto", "value": noise}[noise_mode],
        discrepancy=discrepancy,
    )
    return out.clone() if out.data_ptr() == x.data_ptr() else out  # an op's output never aliases its input


@sparsify_op.register_fake
def _(x, sparsity, solver, integrator, max_iter, projection, channels, backend, noise_mode, noise, discrepancy):
    return torch.empty_like(x)


def _bpda_backward(ctx, grad):
    # BPDA (the identity), by choice: the smoothing is piecewise constant in x, so its true gradient is the region
    # averaging (or zero through the support); the identity is what adaptive attacks differentiate through
    return grad, *([None] * 10)


sparsify_op.register_autograd(_bpda_backward)
GRADS = ("bpda", "none")  # what SparsifyLayer's backward is: the identity, or no gradient at all


class SparsifyLayer(torch.nn.Module):
    """``sparsify`` as an ``nn.Module`` on float (B, C, H, W) device batches in [0, 1], for ``nn.Sequential`` and
    torchvision-v2 / kornia-style GPU pipelines; compiles with ``torch.compile(fullgraph=True)`` (a registered op).

    Args:
        sparsity: the target of every image; ``forward(x, sparsity)`` takes a (B,) tensor of one target per image.
        grad: "bpda" (default): the backward is the identity (straight-through, what adaptive attacks use);
            "none": the output does not require grad.
        **options: the keyword options of ``sparsify`` (solver constants, projection, channels, backend, noise,
            discrepancy), validated here. They and ``sparsity`` are part of ``state_dict``.

    Example:
        >>> pipeline = torch.nn.Sequential(SparsifyLayer(0.6), model).cuda()
    """

    def __init__(self, sparsity: float = 0.6, *, grad: str = "bpda", **options: Any):
        super().__init__()
        if grad not in GRADS:
            raise ValueError(f"unknown grad {grad!r}; accepted: {list(GRADS)}")
        if options.get("state") is not None or options.get("value_range") is not None:
            raise TypeError("SparsifyLayer takes float batches in [0, 1] and no path state: use sparsify() for those")
        self.sparsity, self.grad, self.options = (
            _check_sparsity(sparsity),
            grad,
            check_options(options, "SparsifyLayer"),
        )
        noise = self.options["noise"]
        if isinstance(noise, torch.Tensor):
            raise TypeError("SparsifyLayer takes noise=None, 'auto' or a number (one sigma for every image)")
        path(torch.zeros(1, 1, 1), [self.sparsity], **options)  # every option validated now, not in forward
        config = _solver_config(**{k: self.options[k] for k in SOLVER_OPTIONS})
        self._integrator = config.integrator
        self._solver = [float(getattr(config, k)) for k in _SOLVER_NUMBERS[config.integrator]]
        self._max_iter = config.max_iter

    def forward(self, x: torch.Tensor, sparsity: torch.Tensor | None = None) -> torch.Tensor:
        """x: a float (B, C, H, W) batch in [0, 1], or one (C, H, W) image (as torch.nn's layers take); sparsity: a
        (B,) tensor of one target per image (() or (1,) for one image), a number for every image, None: the layer's."""
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"SparsifyLayer takes a (B, C, H, W) batch or a (C, H, W) image, got {shape}")
        if x.dim() == 3:  # one image: the batch of it, back to (C, H, W) after
            if isinstance(sparsity, torch.Tensor) and sparsity.dim() == 0:
                sparsity = sparsity.reshape(1)
            return self.forward(x.unsqueeze(0), sparsity)[0]
        if sparsity is None or isinstance(sparsity, Real):  # a number is checked as sparsify checks it (bool refused)
            target = self.sparsity if sparsity is None else _check_sparsity(sparsity)
            sparsity = torch.full((x.shape[0],), target, dtype=torch.float64, device=x.device)
        elif not isinstance(sparsity, torch.Tensor):
            raise TypeError(
                f"SparsifyLayer.forward takes sparsity as None, a number in (0, 1] or a (B,) tensor, "
                f"got {type(sparsity).__name__}"
            )
        noise = self.options["noise"]
        mode = "none" if noise is None else "auto" if noise == "auto" else "value"
        out = sparsify_op(
            x if self.grad == "bpda" else x.detach(),
            sparsity.to(torch.float64),
            self._solver,
            self._integrator,
            self._max_iter,
            self.options["projection"] or "auto",
            self.options["channels"],
            self.options["backend"],
            mode,
            float(noise) if mode == "value" else 0.0,
            float(self.options["discrepancy"]),
        )
        return out

    def get_extra_state(self) -> dict:
        return {"sparsity": self.sparsity, "grad": self.grad, "options": self.options}

    def set_extra_state(self, state: dict) -> None:
        restored = SparsifyLayer(state["sparsity"], grad=state["grad"], **state["options"])
        self.__dict__.update(
            {k: restored.__dict__[k] for k in ("sparsity", "grad", "options", "_solver", "_integrator", "_max_iter")}
        )

    def extra_repr(self) -> str:
        changed = {k: v for k, v in self.options.items() if v != OPTIONS[k]}
        return ", ".join(
            [f"sparsity={self.sparsity}", *(f"{k}={v!r}" for k, v in changed.items())]
            + ([f"grad={self.grad!r}"] if self.grad != "bpda" else [])
        )
