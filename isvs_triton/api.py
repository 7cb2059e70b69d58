"""Public entry points: validate the input once, bring it to a float (B, C, H, W) batch in [0, 1], pick a backend,
and give the result back in the input's own type, shape, dtype and device. No numerics live here."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch

from . import backends
from .config import CHANNEL_MODES, DEFAULT, INTEGRATORS, NOISE_MODES, PRESETS, PROJECTIONS, SolverConfig
from .info import SparsifyInfo
from .ops import noise as ops_noise
from .ops.lbi.path import PathState, StateRecord, capturing, describe, fingerprint

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_ITER = 2**31 - 1  # the kernels count iterations in int32
_PIL_MODES = ("L", "LA", "RGB", "RGBA")


# --------------------------------------------------------------------------------------------------- options
def _real(name: str, value: object, low: float, high: float, low_open: bool, high_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return float(value)


def _check_sparsity(value: object, name: str = "sparsity") -> float:
    return _real(name, value, 0.0, 1.0, low_open=True, high_open=False)


SOLVER_OPTIONS = ("kappa", "nu", "step", "scale", "momentum", "max_iter", "integrator", "events", "tolerance")


def _solver_config(
    kappa=None,
    nu=None,
    step=None,
    scale=None,
    momentum=None,
    max_iter=None,
    integrator=None,
    events=None,
    tolerance=None,
) -> SolverConfig:
    """The SolverConfig of these options (None: the default's, ``DEFAULT`` = ``EVENTS``). An integrator alone takes
    its preset's constants: ``EVENTS`` for "events", ``FAST`` for "explicit"."""
    inf = math.inf
    if kappa is not None:
        _real("kappa", kappa, 0.0, inf, True, True)
    if nu is not None:
        _real("nu", nu, 0.0, inf, True, True)
    if scale is not None:
        _real("scale", scale, 0.0, inf, True, True)
    if step is not None:
        _real("step", step, 0.0, 1.0, True, False)
    if momentum is not None:
        _real("momentum", momentum, 0.0, 1.0, False, True)
    if integrator is not None:
        _check_choice("integrator", integrator, INTEGRATORS)
    if events is not None:
        _real("events", events, 0.0, 1.0, True, False)
    if tolerance is not None:
        _real("tolerance", tolerance, 0.0, 1.0, True, True)
    if max_iter is not None and (
        isinstance(max_iter, bool) or not isinstance(max_iter, Integral) or not 0 <= max_iter <= MAX_ITER
    ):
        raise ValueError(f"max_iter must be an integer in [0, {MAX_ITER}], got {max_iter!r}")
    # no integrator: the default preset's; an integrator alone: its preset (EVENTS, or FAST for "explicit"). FAST's
    # budget is sized for FAST's constants: other explicit constants get SolverConfig's generous one
    base = DEFAULT if integrator is None else PRESETS["events" if integrator == "events" else "fast"]
    if base.integrator == "explicit" and any(v is not None for v in (kappa, nu, step, scale, momentum)):
        base = base.replace(max_iter=SolverConfig.max_iter)
    config = base.replace(
        kappa=kappa,
        nu=nu,
        step=step,
        scale=scale,
        momentum=momentum,
        max_iter=max_iter,
        integrator=integrator,
        events=events,
        tolerance=tolerance,
    )
    if config.integrator == "events" and (momentum or step is not None):
        raise ValueError(
            "step= and momentum= apply to the explicit integrator only, not to integrator='events' (the default): "
            "pass integrator='explicit' too"
        )
    if config.integrator == "explicit" and (events is not None or tolerance is not None):
        raise ValueError("events= and tolerance= apply to the events integrator only: pass integrator='events' too")
    return config


def _check_choice(name: str, value: object, accepted: Sequence[str]) -> str:
    if value not in accepted:
        raise ValueError(f"unknown {name} {value!r}; accepted: {list(accepted)}")
    return value  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------- images
def _value_range(value_range, default: tuple[float, float]) -> tuple[float, float]:
    if value_range is None:
        return default
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise TypeError(f"value_range must be a pair (lo, hi), got {value_range!r}")
    lo = _real("value_range[0]", value_range[0], -math.inf, math.inf, True, True)
    hi = _real("value_range[1]", value_range[1], -math.inf, math.inf, True, True)
    if not lo < hi:
        raise ValueError(f"value_range must have lo < hi, got {value_range!r}")
    return lo, hi


def _tensor_batch(x: torch.Tensor, value_range) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], float]:
    """(C,H,W) or (B,C,H,W) uint8/float tensor -> float (B,C,H,W) in [0,1], the map back to x's form, and the
    width hi - lo of x's value range."""
    if x.dtype != torch.uint8 and x.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"unsupported dtype {x.dtype}; accepted: uint8 in [0, 255] or float16/bfloat16/float32/float64 in [0, 1]"
        )
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a (C, H, W) image or a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if x.device.type == "meta":
        raise ValueError("the images are on the meta device, which holds shapes but no values: nothing to smooth")
    if (x.dim() == 3 or x.shape[0] > 0) and min(x.shape[-3:]) == 0:
        raise ValueError(f"channels, height and width must be >= 1, got shape {tuple(x.shape)}")
    unbatched = x.dim() == 3
    x = x.detach()  # the smoothing is not differentiable: its output never requires grad (BPDA is the attacks' job)
    math_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    lo, hi = _value_range(value_range, (0.0, 255.0) if x.dtype == torch.uint8 else (0.0, 1.0))
    with np.errstate(over="ignore"):  # the width in the math's dtype (on the host: no device read), inf past it
        width = np.asarray(hi - lo, dtype=np.float64 if x.dtype == torch.float64 else np.float32)
    if not math.isfinite(width):
        raise ValueError(
            f"value_range must have a width hi - lo that is finite in {math_dtype} (the math's dtype), "
            f"got {value_range!r}"
        )
    xf = x.to(math_dtype)
    # whether the values lie in [lo, hi] already (then [0, 1] needs no clamp); unknown while capturing: clamped
    inside = not capturing(xf)
    if xf.numel() and not capturing(xf):
        # one pass for both checks: min and max propagate NaN and show an Inf (a separate isfinite pass is a
        # noticeable share of a small batch's call)
        low, high = (float(v) for v in torch.aminmax(xf))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("the images contain NaN or Inf values")
        tol = 4 * torch.finfo(x.dtype if x.is_floating_point() else math_dtype).eps
        low, high = (low - lo) / (hi - lo), (high - lo) / (hi - lo)
        inside = 0 <= low and high <= 1
        if low < -tol or high > 1 + tol:
            found_min, found_max = float(x.min()), float(x.max())  # as given, not as rescaled
            raise ValueError(
                f"values must lie in [{lo:g}, {hi:g}] (found min {found_min!r}, max {found_max!r});"
                " accepted: float in [0, 1], uint8 in [0, 255], or any range declared with value_range=(lo, hi)"
            )
    unit = (lo, hi) == (0.0, 1.0)
    if not unit:
        xf = ((xf - lo) / (hi - lo)).clamp_(0, 1)
    elif not inside:  # within the tolerance: a new tensor, x itself stays as given
        xf = xf.clamp(0, 1)
    # else float images in [0, 1]: the batch is x itself, which no backend writes to (no copy per call)

    def restore(y: torch.Tensor) -> torch.Tensor:
        y = y.clamp(0, 1) if unit else y.clamp(0, 1) * (hi - lo) + lo
        y = y.round().clamp_(0, 255) if x.dtype == torch.uint8 else y
        y = y.to(x.dtype)
        return y[0] if unbatched else y

    return (xf.unsqueeze(0) if unbatched else xf), restore, hi - lo


def _as_batch(x: Any, value_range) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any], bool, float]:
    """Any accepted image form -> (float batch (B,C,H,W) in [0,1], map back to the input's form, unbatched?,
    width hi - lo of the input's value range)."""
    if isinstance(x, torch.Tensor):
        batch, restore, width = _tensor_batch(x, value_range)
        return batch, restore, x.dim() == 3, width
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 and x.dtype not in (np.float16, np.float32, np.float64):
            raise TypeError(f"unsupported numpy dtype {x.dtype}; accepted: uint8 or float16/float32/float64")
        if x.ndim not in (2, 3, 4):
            raise ValueError(f"expected a numpy (H, W), (H, W, C) or (B, H, W, C) array, got shape {x.shape}")
        array = np.ascontiguousarray(x)
        t = torch.from_numpy(array if array.flags.writeable else array.copy())
        t = t[..., None] if x.ndim == 2 else t
        t = t.movedim(-1, -3)
        batch, restore_tensor, width = _tensor_batch(t, value_range)

        def restore_numpy(y: torch.Tensor) -> np.ndarray:
            out = restore_tensor(y).movedim(-3, -1).cpu().numpy()
            return out[..., 0] if x.ndim == 2 else out

        return batch, restore_numpy, x.ndim < 4, width
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(x, Image.Image):
        if x.mode not in _PIL_MODES:
            raise ValueError(f"unsupported PIL mode {x.mode!r}; accepted: {list(_PIL_MODES)} (use image.convert())")
        batch, restore_array, _, width = _as_batch(np.asarray(x), value_range)
        return batch, lambda y: Image.fromarray(restore_array(y), mode=x.mode), True, width
    raise TypeError(
        f"unsupported input type {type(x).__name__}; accepted: torch.Tensor (C,H,W)/(B,C,H,W), "
        "numpy array (H,W)/(H,W,C)/(B,H,W,C), or PIL.Image"
    )


def _per_image(
    value: torch.Tensor, name: str, what: str, batch: torch.Tensor, unbatched: bool, floating: bool
) -> torch.Tensor:
    """An option given as a tensor of one ``what`` per image: shape (B,) (or () for a single image), floating point
    (or, unless ``floating``, any real dtype); returned as float64 (B,) on the batch's device."""
    expected = () if unbatched else (batch.shape[0],)
    if value.device.type == "meta":
        raise ValueError(f"{name} as a tensor holds no values on the meta device: give it on the CPU or the batch's")
    kind_ok = value.is_floating_point() if floating else not (value.is_complex() or value.dtype == torch.bool)
    if tuple(value.shape) not in (expected, (batch.shape[0],)) or not kind_ok:
        kind = "floating point" if floating else "real"
        raise ValueError(
            f"{name} as a tensor must be {kind} with shape {expected} (one {what} per image), got "
            f"{value.dtype} of shape {tuple(value.shape)}"
        )
    return value.detach().to(batch.device, torch.float64).reshape(batch.shape[0])


def _per_image_sparsity(sparsity: torch.Tensor, batch: torch.Tensor, unbatched: bool) -> torch.Tensor:
    """``sparsity=`` as a tensor: one target per image, each in (0, 1]."""
    targets = _per_image(sparsity, "sparsity", "target", batch, unbatched, floating=True)
    if not capturing(targets) and not bool(((targets > 0) & (targets <= 1)).all()):  # NaN fails too
        raise ValueError(f"sparsity must lie in (0.0, 1.0] for every image, got {sparsity.tolist()}")
    return targets


# --------------------------------------------------------------------------------------------------- noise


def _noise_levels(noise, batch: torch.Tensor, unbatched: bool, width: float) -> torch.Tensor | None:
    """``noise=`` as the (B,) standard deviations of batch (in [0, 1] units; ``width`` = hi - lo of the input)."""
    if noise is None:
        return None
    if isinstance(noise, str):
        _check_choice("noise", noise, NOISE_MODES)
        return ops_noise.estimate(batch)
    # a standard deviation larger than the width of the value range cannot be the noise of images in that range
    accepted = f"a standard deviation in [0, {width:g}] (the input's units: at most the width of its value range)"
    if isinstance(noise, torch.Tensor):
        levels = _per_image(noise, "noise", "standard deviation", batch, unbatched, floating=False)
        if not capturing(levels) and not bool(((levels >= 0) & (levels <= width)).all()):  # NaN fails too
            raise ValueError(f"noise must be {accepted} for every image, got {noise.tolist()}")
        return (levels / width).to(batch.dtype)
    value = _real("noise", noise, 0.0, math.inf, False, True)
    if value > width:
        raise ValueError(f"noise must be {accepted}, got {noise!r}")
    return torch.full((batch.shape[0],), value / width, dtype=batch.dtype, device=batch.device)


def estimate_noise(x, *, per_channel: bool = False, value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """Noise standard deviation of each image, in the input's units (``noise="auto"`` of ``sparsify`` uses it).

    The median absolute response of Immerkær's Laplacian-difference mask, scaled to a Gaussian's sigma
    (``isvs_triton/ops/noise.py``): O(H W), on the input's device. Texture and edges bias it upward a little on
    clean images (docs/notes/calibration.md, "Noise estimate"); images smaller than 3x3 get 0.

    Args:
        x: any input ``sparsify`` accepts (tensor (C, H, W) / (B, C, H, W), numpy array, PIL image).
        per_channel: one estimate per channel instead of one per image.
        value_range: as in ``sparsify``.

    Returns:
        A float tensor on x's device (float64 for float64 input, else float32): shape (B,) (or (B, C)) for a
        batch, () (or (C,)) for a single image.

    Example:
        >>> sigma = isvs_triton.estimate_noise(x + 0.1 * torch.randn_like(x))   # about 0.1 per image
    """
    if not isinstance(per_channel, bool):
        raise TypeError(f"per_channel must be a bool, got {per_channel!r}")
    batch, _, unbatched, width = _as_batch(x, value_range)
    sigma = ops_noise.estimate(batch, per_channel) * width
    return sigma[0] if unbatched else sigma


# --------------------------------------------------------------------------------------------------- entry points
# the keyword options of sparsify / path / Sparsify and their defaults (None: the solver preset decides)
OPTIONS = dict(
    **dict.fromkeys(SOLVER_OPTIONS),
    projection="auto",
    channels="independent",
    backend="auto",
    value_range=None,
    noise=None,
    discrepancy=1.0,
    state=None,
)


def check_options(options: dict, where: str) -> dict:
    """``options`` completed with the defaults; unknown names are refused here, where the user passed them."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"{where} got unexpected keyword arguments {sorted(unknown)}; accepted: {list(OPTIONS)}")
    return {**OPTIONS, **options}


NEW_STATE = "start a new one with isvs_triton.PathState.zeros(x, momentum)"


def _check_state(state, batch: torch.Tensor, momentum: bool) -> None:
    """A ``PathState`` to continue must describe this batch, field by field, before any backend reads it: the same
    shape, device and math dtype, finite values, and iteration counts in [0, MAX_ITER]."""
    if not isinstance(state, PathState):
        raise TypeError(f"state must be an isvs_triton.PathState (PathState.zeros(x, momentum)), got {type(state)}")
    b, c, h, w = batch.shape
    shapes = {"beta": (b, c, h, w), "zh": (b, c, h, w - 1), "zv": (b, c, h - 1, w)}
    fields = {name: getattr(state, name) for name in shapes}
    if state.prev is not None:
        if not isinstance(state.prev, tuple) or len(state.prev) != 3:
            raise ValueError(
                f"state.prev must be None or a tuple (beta, zh, zv) of the previous iterate, got {describe(state.prev)}"
            )
        fields.update({f"prev[{i}]": t for i, t in enumerate(state.prev)})
        shapes.update({f"prev[{i}]": shape for i, shape in enumerate(list(shapes.values()))})
    elif momentum:
        raise ValueError(
            "this solver uses momentum: the state must keep the previous iterate (PathState.zeros(x, momentum=True))"
        )
    for name, t in fields.items():
        if (
            not isinstance(t, torch.Tensor)
            or tuple(t.shape) != shapes[name]
            or t.dtype != batch.dtype
            or (t.device != batch.device)
        ):
            raise ValueError(
                f"state.{name} must be {batch.dtype} of shape {shapes[name]} on {batch.device} (the batch's "
                f"float math), got {describe(t)}"
            )
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"state.{name} holds NaN or Inf values: {NEW_STATE}")
    iterations = state.iterations
    if (
        not isinstance(iterations, torch.Tensor)
        or tuple(iterations.shape) != (b,)
        or (iterations.dtype != torch.int64 or iterations.device != batch.device)
    ):
        raise ValueError(
            f"state.iterations must be torch.int64 of shape ({b},) on {batch.device} (one count per image), "
            f"got {describe(iterations)}"
        )
    if b and not (0 <= int(iterations.min()) and int(iterations.max()) <= MAX_ITER):
        raise ValueError(f"state.iterations must lie in [0, {MAX_ITER}], got {iterations.tolist()}")


def _state_record(state: PathState, batch: torch.Tensor, config: SolverConfig, channels: str, lowest) -> StateRecord:
    """The record of ``state`` checked against this call (``lowest``: each image's lowest target in it), refused
    when the state was built for other constants, another channel mode or other images, or has been advanced past
    a target of this call: continuing it would return the output of its own path, not of the one asked for."""
    b = batch.shape[0]
    record = state.record
    if record is None:  # built by hand: only a state at the path's start carries no history to check
        if bool(state.iterations.any()):
            raise ValueError(
                "state has advanced (iterations > 0) but carries no record (state.record) of what it was built "
                f"for, so it cannot be checked against this call: {NEW_STATE}"
            )
        record = StateRecord.blank(b, batch.device)
    if not isinstance(record, StateRecord):
        raise TypeError(f"state.record must be an isvs_triton StateRecord or None, got {describe(record)}")
    for name in ("fingerprints", "targets"):
        t, dtype = getattr(record, name), torch.int64 if name == "fingerprints" else torch.float64
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (b,) or t.dtype != dtype:
            raise ValueError(f"state.record.{name} must be {dtype} of shape ({b},), got {describe(t)}")
    if not bool(((record.targets >= 0) & (record.targets <= 1)).all()):  # NaN fails too
        raise ValueError(f"state.record.targets must lie in [0, 1], got {record.targets.tolist()}: {NEW_STATE}")
    solver = config.replace(max_iter=0)  # a budget does not change the path: continuing with another one is fine
    if record.solver is not None:
        built = {**record.solver.kwargs(), "channels": record.channels}
        asked = {**solver.kwargs(), "channels": channels}
        differences = [f"{k}={built.get(k)!r} (this call: {asked.get(k)!r})" for k in {**built, **asked}
                       if built.get(k) != asked.get(k)]  # fmt: skip
        if differences:
            raise ValueError(
                f"state was built for {', '.join(differences)}: continue it with its own settings, or {NEW_STATE}"
            )
    fingerprints, known = fingerprint(batch), record.targets.to(batch.device)
    other = ((known > 0) & (fingerprints != record.fingerprints.to(batch.device))).nonzero()[:, 0]
    if other.numel():
        raise ValueError(
            f"state was built for other images: image(s) {other.tolist()[:8]} of this batch differ from those "
            f"it has advanced: {NEW_STATE} for these images"
        )
    passed = (lowest < known).nonzero()[:, 0]
    if passed.numel():
        i = int(passed[0])
        raise ValueError(
            f"state has advanced image {i} to sparsity {float(known[i]):g}, past this call's target "
            f"{float(lowest[i]):g} (the path only moves forward; continuing would return the "
            f"{float(known[i]):g} output): {NEW_STATE} for a lower target"
        )
    return StateRecord(solver, channels, fingerprints, known.clone())


def _run(
    x, targets: list[float], *, projection, channels, backend, value_range, noise, discrepancy, state, **solver
) -> list[tuple[Any, Any]]:
    config = _solver_config(**solver)
    projection = _check_choice("projection", "auto" if projection is None else projection, PROJECTIONS)
    channels = _check_choice("channels", channels, CHANNEL_MODES)
    discrepancy = _real("discrepancy", discrepancy, 0.0, math.inf, True, True)
    backends.check_name(backend, "argument backend")
    batch, restore, unbatched, width = _as_batch(x, value_range)
    levels = _noise_levels(noise, batch, unbatched, width)
    targets = [_per_image_sparsity(t, batch, unbatched) if isinstance(t, torch.Tensor) else t for t in targets]
    order = sorted(range(len(targets)), key=targets.__getitem__)
    if batch.shape[0] == 0:
        results = [(batch, SparsifyInfo.empty(batch.device))] * len(targets)
    else:
        solve = backends.resolve(backend, batch.device, batch.dtype, config.integrator)
        extra = {} if levels is None else dict(noise=levels, discrepancy=discrepancy)
        if state is not None:
            if not isinstance(x, torch.Tensor) or x.dim() != 4:
                raise ValueError("state= continues the path of a (B, C, H, W) tensor batch, not of other input forms")
            _check_state(state, batch, config.momentum > 0)
            if not solve.can_continue:
                raise ValueError(
                    f"backend {solve.name!r} runs each image on its own and cannot continue a saved "
                    f"state: use one of {list(backends.CONTINUING)}"
                )
            asked = torch.stack([torch.as_tensor(t, dtype=torch.float64, device=batch.device).expand(len(batch))
                                 for t in targets])  # fmt: skip
            record = _state_record(state, batch, config, channels, asked.amin(0))
            reached = asked.masked_fill(asked >= 1, 0).amax(0)  # a target of 1 returns the input: the path stays
            extra["state"] = state
        ascending = solve(batch, [targets[i] for i in order], config, channels, projection, **extra)
        if state is not None:
            record.targets = torch.maximum(record.targets, reached.to(record.targets))
            state.record = record
        results = [None] * len(targets)
        for rank, i in enumerate(order):
            out, info = ascending[rank]
            info.noise = info.noise * width  # back to the input's units
            results[i] = (out, info)
    return [(restore(out), info.map(lambda t: t[0]) if unbatched else info) for out, info in results]


def sparsify(
    x,
    sparsity: float | torch.Tensor = 0.6,
    *,
    kappa: float | None = None,
    nu: float | None = None,
    step: float | None = None,
    scale: float | None = None,
    momentum: float | None = None,
    integrator: str | None = None,
    events: float | None = None,
    tolerance: float | None = None,
    projection: str = "auto",
    channels: str = "independent",
    max_iter: int | None = None,
    backend: str = "auto",
    value_range: tuple[float, float] | None = None,
    noise: float | str | torch.Tensor | None = None,
    discrepancy: float = 1.0,
    state: PathState | None = None,
    return_info: bool = False,
):
    """Smooth images along the inverse scale space path, each stopped at its own ``sparsity``, then project.

    Args:
        x: torch tensor (C, H, W) or (B, C, H, W), float in [0, 1] or uint8 in [0, 255]; a numpy array
            (H, W), (H, W, C) or (B, H, W, C) (uint8 or float); or a PIL image (L, LA, RGB, RGBA).
        sparsity: target fraction of the image's jumps (edges whose two pixels differ) that are active at the stop,
            in (0, 1], or a (B,) tensor of one target per image. Higher keeps finer detail; 1 returns the input.
        kappa, nu, step, scale, momentum: Split LBI constants (``isvs_triton.config``); None takes the preset's.
            step and momentum apply to the explicit integrator only (pass ``integrator="explicit"`` with them).
        integrator: "events" (the default: the path's large-kappa limit, stepped between batches of activation
            events, ``isvs_triton.EVENTS``) or "explicit" (the Split LBI iteration; alone it takes the
            ``isvs_triton.FAST`` constants); None takes the default's.
        events, tolerance: the events integrator's fraction of the image's jumps activated per step, and the
            relative residual of each step's solve (``isvs_triton.config``); None takes EVENTS'.
        projection: "input" (mean of x over each region), "beta" (mean of beta / scale), "none" (beta / scale), or
            "auto" (default): "input" for the images stopped by ``sparsity`` or ``max_iter``, "none" for those
            stopped by ``noise``, whose support has barely formed (projecting onto it would flatten the image).
        channels: "independent" (a segmentation per channel) or "joint" (one shared by all channels).
        max_iter: iteration budget per image, a safety net: an image that has stopped neither by ``sparsity`` nor
            by ``noise`` stops there (``info.stopped_by == "budget"``); the events integrator counts steps. None:
            EVENTS.max_iter (1,000) with the events integrator, FAST.max_iter (128) with ``integrator="explicit"``
            alone, SolverConfig.max_iter (200,000) with any other explicit constants.
        backend: "auto", "reference", "torch", "numba" or "triton"; "auto" honours the ISVS_BACKEND environment
            variable, then takes "triton" for float32 math on CUDA, "numba" for float32 math on the CPU, and "torch"
            otherwise (float64, other devices, or where numba / triton cannot be imported).
        value_range: (lo, hi) of the input values when they are not [0, 1] (float) or [0, 255] (uint8).
        state: a ``PathState`` of a (B, C, H, W) tensor batch to continue from (updated in place), instead of
            starting the path from a blank image: how ``iterative`` training advances each image's path stage after
            stage. ``PathState.zeros(x, momentum)`` is the start.
        noise: also stop each image at the first iteration at which the RMS of beta / scale - x falls to
            ``discrepancy * sigma`` (the discrepancy principle), if that comes before ``sparsity``. sigma is a
            number (every image), a (B,) tensor (one per image), or "auto" (``estimate_noise`` per image), in the
            input's units; None (default): no noise stop.
        discrepancy: the factor tau of that stop, > 0.
        return_info: also return a ``SparsifyInfo`` (iterations, sparsity, regions, reached, stopped_by, ...).

    Returns:
        The smoothed images in the input's type, shape, dtype and device (uint8 is rounded), and the info if asked.

    Example:
        >>> y, info = isvs_triton.sparsify(torch.rand(8, 3, 32, 32), sparsity=0.6, return_info=True)
    """
    if not isinstance(return_info, bool):
        raise TypeError(f"return_info must be a bool, got {return_info!r}")
    target = sparsity if isinstance(sparsity, torch.Tensor) else _check_sparsity(sparsity)
    ((out, info),) = _run(
        x,
        [target],
        kappa=kappa,
        nu=nu,
        step=step,
        scale=scale,
        momentum=momentum,
        integrator=integrator,
        events=events,
        tolerance=tolerance,
        max_iter=max_iter,
        projection=projection,
        channels=channels,
        backend=backend,
        value_range=value_range,
        noise=noise,
        discrepancy=discrepancy,
        state=state,
    )
    return (out, info) if return_info else out


def path(
    x,
    sparsities: Sequence[float] = (0.2, 0.4, 0.6),
    *,
    return_info: bool = False,
    **options,
):
    """Outputs at several sparsities from one run of the path; output i equals ``sparsify(x, sparsities[i], ...)``.

    Takes the same keyword options as ``sparsify`` (``noise`` included: an image that stops by its noise level
    keeps that output for every later sparsity). Returns a list of outputs in the order of ``sparsities`` (and a
    list of ``SparsifyInfo`` if ``return_info``).
    """
    if isinstance(sparsities, (str, bytes)) or not isinstance(sparsities, Sequence) or len(sparsities) == 0:
        raise TypeError(f"sparsities must be a non-empty sequence of numbers in (0, 1], got {sparsities!r}")
    options = check_options(options, "path()")
    targets = [_check_sparsity(s, f"sparsities[{i}]") for i, s in enumerate(sparsities)]
    results = _run(x, targets, **options)
    outs, infos = [r[0] for r in results], [r[1] for r in results]
    return (outs, infos) if return_info else outs
