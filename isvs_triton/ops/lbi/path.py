"""The batched Split LBI driver that the torch, numba and Triton backends share: the path state, the stopping rules,
and one run of the path through several stops (README.md beside this file states the equations and the rules).

A batched backend supplies only ``advance(state, xs, rule, cfg, joint)``: run every image of ``state`` until its
``rule`` says stop, updating the state in place, images already stopped not moving; it returns None, or the state
the outputs are read from when that is not the one the path goes on from (the events integrator's last step).
Everything else (where each image stops, the projection, what ``SparsifyInfo`` reports) is decided here, once for
every backend. A backend may also form the edge masks the driver reads (``Masks``: the input's jumps, a state's
support, each with its counts) in its own loops; the torch versions here serve the others.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch

from ...config import STOP_RULES, SolverConfig, edge_count, required_active
from ...info import SparsifyInfo

NO_LIMIT = -1.0  # residual limit of an image without a noise stop: a sum of squares is never below it


@dataclass
class StateRecord:
    """What a ``PathState`` was built for, so that it is continued only along the same path: the solver constants
    (its iteration budget aside), the channel mode, each image's ``fingerprint`` and the highest sparsity each image
    has been advanced to (0: not yet). ``sparsify(..., state=)`` fills it at the first call and refuses, at every
    later one, other constants, another channel mode, other images or a lower target. ``solver`` and ``channels``
    are None until the first call."""

    solver: SolverConfig | None  # with max_iter = 0: a budget does not change the path
    channels: str | None
    fingerprints: torch.Tensor  # (B,) int64
    targets: torch.Tensor  # (B,) float64

    @staticmethod
    def blank(batch: int, device: torch.device) -> StateRecord:
        return StateRecord(
            None,
            None,
            torch.zeros(batch, dtype=torch.int64, device=device),
            torch.zeros(batch, dtype=torch.float64, device=device),
        )


@dataclass
class PathState:
    """Split LBI state of a batch; z is split into horizontal (B, C, H, W-1) and vertical (B, C, H-1, W) edges.

    ``record`` says what the state was built for (``StateRecord``); the backends' internal copies carry None."""

    beta: torch.Tensor  # (B, C, H, W), on the scaled image scale * x
    zh: torch.Tensor
    zv: torch.Tensor
    prev: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # (beta, zh, zv) one iteration back, momentum only
    iterations: torch.Tensor  # (B,) int64
    record: StateRecord | None = field(default=None, compare=False)

    @staticmethod
    def zeros(x: torch.Tensor, momentum: bool) -> PathState:
        """The path's start for the (B, C, H, W) batch x (a blank image); ``momentum``: keep the previous iterate
        too, as the explicit presets with momentum (``FAST``, ``FAITHFUL``) need."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError(f"PathState.zeros takes a (B, C, H, W) tensor, got {describe(x)}")
        if not isinstance(momentum, bool):
            raise TypeError(f"momentum must be a bool, got {momentum!r}")
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32  # the math's dtype (float32 for uint8 and half)
        b, c, h, w = x.shape
        shapes = (b, c, h, w), (b, c, h, w - 1), (b, c, h - 1, w)
        beta, zh, zv = (torch.zeros(shape, dtype=dtype, device=x.device) for shape in shapes)
        prev = tuple(torch.zeros_like(t) for t in (beta, zh, zv)) if momentum else None  # zeros: cheaper than clones
        iterations = torch.zeros(b, dtype=torch.int64, device=x.device)
        return PathState(beta, zh, zv, prev, iterations, StateRecord.blank(b, x.device))

    def tensors(self) -> list[torch.Tensor]:
        return [self.beta, self.zh, self.zv, *(self.prev or ())]


def describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} of shape {tuple(value.shape)} on {value.device}"
    return type(value).__name__


FINGERPRINT_LEVELS = 4095  # 12 bits per pixel value: every uint8 value apart, float images to ~1e-4


def fingerprint(x: torch.Tensor) -> torch.Tensor:
    """(B,) int64: a weighted sum of each image's values quantised to 12 bits, summed in integers, so that the same
    image gives the same number in any batch and on any device. What a ``StateRecord`` knows its images by."""
    flat = x.reshape(x.shape[0], -1)
    levels = (flat * FINGERPRINT_LEVELS).round_().to(torch.int32)
    weights = _fingerprint_weights(flat.shape[1], str(flat.device))
    return (levels * weights).sum(1, dtype=torch.int64)  # < 2^28 per product: no int32 overflow before the sum


@functools.lru_cache(maxsize=8)
def _fingerprint_weights(n: int, device: str) -> torch.Tensor:
    # a fixed pseudo-random weight in [1, 65521] per position (Knuth's multiplicative hash): a permutation of the
    # pixels, or a change that keeps the sum, changes the fingerprint
    return ((torch.arange(n, dtype=torch.int64) * 2654435761) % 65521 + 1).to(device, torch.int32)


@dataclass
class StopRule:
    """Where each image of a batch stops: at the first iteration at which its active jumps reach ``need`` or its
    residual sum of squares sum((beta - s x)^2) falls to ``limit``, and at ``max_iter`` at the latest."""

    need: torch.Tensor  # (B,) int64: active jumps at which the image stops
    limit: torch.Tensor  # (B,) float64: residual sum of squares at which it stops; NO_LIMIT without a noise stop
    jumps_h: torch.Tensor  # (B, C or 1, H, W-1) bool: edges whose input difference is non-zero (joint: any channel)
    jumps_v: torch.Tensor  # (B, C or 1, H-1, W) bool
    jump_count: torch.Tensor  # (B,) int64: the jumps of each image
    # whether a noise stop was asked for (the backends then track the residual too): known on the host, so that no
    # backend reads ``limit`` back from the device to decide it
    has_noise: bool = False
    target: float | None = None  # the target sparsity when one number (None: one per image), known on the host

    def take(self, index: torch.Tensor) -> StopRule:
        return replace(self, **{k: v.index_select(0, index) for k, v in vars(self).items() if torch.is_tensor(v)})


def jumps(xs: torch.Tensor, joint: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges whose two pixels differ in ``xs`` (joint: in any channel): the edges that sparsity counts."""
    dh, dv = xs[..., :, 1:] != xs[..., :, :-1], xs[..., 1:, :] != xs[..., :-1, :]
    return (dh.any(1, keepdim=True), dv.any(1, keepdim=True)) if joint else (dh, dv)


def capturing(t: torch.Tensor) -> bool:
    """Whether ``t``'s device is being captured into a CUDA graph. Reading a tensor's values on the host is then an
    error (a synchronisation): ``sparsify`` leaves out its checks of values (NaN, ranges) while capturing, as for any
    op captured in a graph, and keeps the checks of types, shapes and settings (run the call once outside the
    capture, the warm-up a capture needs anyway, to have its values checked); the Triton backend's launches that
    a host check drives run a count known on the host instead."""
    return t.is_cuda and torch.cuda.is_current_stream_capturing()


def support(zh: torch.Tensor, zv: torch.Tensor, joint: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Active edges (gamma != 0): (B, C or 1, H, W-1) and (B, C or 1, H-1, W) bool."""
    if joint:
        return zh.square().sum(1, keepdim=True) > 1, zv.square().sum(1, keepdim=True) > 1
    return zh.abs() > 1, zv.abs() > 1


def count_support(active_h: torch.Tensor, active_v: torch.Tensor) -> torch.Tensor:
    """Edges per image (B,) int64 of a support (or of any edge mask)."""
    return _count(active_h) + _count(active_v)


def _count(mask: torch.Tensor) -> torch.Tensor:
    # summing the bytes into int32 is ~6x faster than a bool sum on the CPU (which widens every element to int64)
    return mask.flatten(1).view(torch.uint8).sum(1, dtype=torch.int32).long()


class Support(NamedTuple):
    """A state's active edges, (B, C or 1, H, W-1) and (B, C or 1, H-1, W) bool, and their counts per image (B,)
    int64: over the rule's jumps (what sparsity counts) and over all edges (``info.active_fraction``)."""

    h: torch.Tensor
    v: torch.Tensor
    jumps: torch.Tensor
    edges: torch.Tensor


@dataclass(frozen=True)
class Masks:
    """How a backend forms the edge masks the driver reads, with their counts. The torch versions (``TORCH_MASKS``)
    serve every backend; the numba backend forms them in its compiled loops, where the torch passes over these masks
    took a quarter of its call at 32x32 (docs/performance.md)."""

    jumps: Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # (xs, joint) -> jh, jv, J
    support: Callable[[torch.Tensor, torch.Tensor, StopRule, bool], Support]  # (zh, zv, rule, joint)


def jumps_counted(xs: torch.Tensor, joint: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``jumps`` and the jumps per image (B,) int64."""
    jumps_h, jumps_v = jumps(xs, joint)
    return jumps_h, jumps_v, count_support(jumps_h, jumps_v)


def support_counted(zh: torch.Tensor, zv: torch.Tensor, rule: StopRule, joint: bool) -> Support:
    """``support`` with its counts over the rule's jumps and over all edges."""
    active_h, active_v = support(zh, zv, joint)
    active_jumps = count_support(active_h & rule.jumps_h, active_v & rule.jumps_v)
    return Support(active_h, active_v, active_jumps, count_support(active_h, active_v))


TORCH_MASKS = Masks(jumps_counted, support_counted)


def count_active(zh: torch.Tensor, zv: torch.Tensor, rule: StopRule, joint: bool) -> torch.Tensor:
    """Active jumps per image (B,): the count the sparsity stop compares with ``rule.need``."""
    active_h, active_v = support(zh, zv, joint)
    return count_support(active_h & rule.jumps_h, active_v & rule.jumps_v)


def residual(beta: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """sum((beta - s x)^2) per image (B,), accumulated in float64: the quantity the noise stop compares."""
    return (beta - xs).double().square().flatten(1).sum(1)


def running(state: PathState, xs: torch.Tensor, rule: StopRule, cfg: SolverConfig, joint: bool):
    """Where each image of ``state`` stands before an advance: ((B,) bool, the images that have not stopped yet;
    (B,) their active jumps; (B,) their residual sums of squares, or None without a noise stop)."""
    active = count_active(state.zh, state.zv, rule, joint)
    go = (active < rule.need) & (state.iterations < cfg.max_iter)
    squares = residual(state.beta, xs) if rule.has_noise else None
    if squares is not None:
        go &= squares > rule.limit
    return go, active, squares


def stop_rule(
    xs: torch.Tensor, target: float, joint: bool, limit: torch.Tensor | None, masks: Masks = TORCH_MASKS
) -> StopRule:
    """The rule for one target sparsity: ``need`` = ceil(target * jumps) per image; ``limit`` (B,) or None."""
    jumps_h, jumps_v, jump_count = masks.jumps(xs, joint)
    noise = limit is not None
    if limit is None:
        limit = torch.full((xs.shape[0],), NO_LIMIT, dtype=torch.float64, device=xs.device)
    return StopRule(required_active(target, jump_count), limit, jumps_h, jumps_v, jump_count, noise)


def residual_limit(noise: torch.Tensor, discrepancy: float, x: torch.Tensor, scale: float) -> torch.Tensor:
    """The discrepancy principle in the state's units: RMS(beta / s - x) <= discrepancy * sigma, per image, is
    sum((beta - s x)^2) <= (discrepancy * sigma * s)^2 * C * H * W."""
    return (discrepancy * noise.double() * scale).square() * x[0].numel()


Advance = Callable[[PathState, torch.Tensor, StopRule, SolverConfig, bool], "PathState | None"]
Project = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def stops(
    x: torch.Tensor,
    targets: list[float | torch.Tensor],
    config: SolverConfig,
    joint: bool,
    advance_fn: Advance,
    state: PathState | None = None,
    limit: torch.Tensor | None = None,
    masks: Masks = TORCH_MASKS,
) -> Iterator[tuple[PathState, Support, StopRule]]:
    """Advance one path through ``targets`` (ascending; a target may be a (B,) tensor, one per image); yield
    (state, its support, rule) at each stop.

    ``state``: continue this path (updated in place) instead of starting from zero; images already past a target do
    not move. ``limit``: (B,) residual limits of a noise stop (``residual_limit``). A target of 1 does not advance:
    its output is the input."""
    if state is None:
        state = PathState.zeros(x, momentum=config.momentum > 0)
    xs = x * config.scale
    first = stop_rule(xs, 0.0, joint, limit, masks)  # the jumps, once for every target
    for target in targets:
        passthrough = input_returned(target, x)
        # a target of 1 is the input itself: nothing to run for it
        need = torch.where(passthrough, 0, required_active(target, first.jump_count))
        rule = replace(first, need=need, target=None if torch.is_tensor(target) else float(target))
        # an advance may return the state the outputs are read from, when it is not the one the path goes on from
        # (the events integrator's last step to a target); None: the path's state itself
        # (a target of 1 for every image is known on the host; per-image targets advance, those of 1 with need 0)
        view = None if returns_input(target) else advance_fn(state, xs, rule, config, joint)
        view = state if view is None else view
        yield view, masks.support(view.zh, view.zv, rule, joint), rule


def input_returned(target: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the images whose target (a number, or one per image) is 1, for which the output is the input."""
    if torch.is_tensor(target):
        return (target.to(x.device) >= 1).expand(x.shape[0])
    return torch.full((x.shape[0],), target >= 1, dtype=torch.bool, device=x.device)


def returns_input(target: float | torch.Tensor) -> bool:
    """Whether a target returns the input for every image, decided on the host: a number of 1 (a tensor of targets,
    one per image, is not read back to decide it: its images of 1 take the per-image branch)."""
    return not torch.is_tensor(target) and target >= 1


def may_return_input(target: float | torch.Tensor) -> bool:
    """Whether any image's target may be 1, decided on the host (a tensor of targets may hold one)."""
    return torch.is_tensor(target) or target >= 1


def solve(
    x: torch.Tensor,
    targets: list[float | torch.Tensor],
    config: SolverConfig,
    channels: str,
    projection: str,
    advance_fn: Advance,
    project_fn: Project,
    state: PathState | None = None,
    noise: torch.Tensor | None = None,
    discrepancy: float = 1.0,
    masks: Masks = TORCH_MASKS,
) -> list[tuple[torch.Tensor, SparsifyInfo]]:
    """Backend entry: x (B, C, H, W) in [0, 1]; ``targets`` ascending. Returns [(out, SparsifyInfo)] per target.

    ``state`` (optional) is a ``PathState`` of x to continue, updated in place: how training continues each image's
    path between stages. ``noise`` (B,): the noise standard deviation of each image (x's units) for the noise stop."""
    joint = channels == "joint"
    batch, c, h, w = x.shape
    limit = None if noise is None else residual_limit(noise, discrepancy, x, config.scale)
    results = []
    for target, (stop, active, rule) in zip(targets, stops(x, targets, config, joint, advance_fn, state, limit, masks)):
        passthrough = input_returned(target, x)
        jump_count = rule.jump_count
        if may_return_input(target):  # the input unchanged: every jump kept, the regions are the runs of equal pixels
            image = passthrough.view(-1, 1, 1, 1)
            active = Support(
                torch.where(image, rule.jumps_h, active.h),
                torch.where(image, rule.jumps_v, active.v),
                torch.where(passthrough, jump_count, active.jumps),
                torch.where(passthrough, jump_count, active.edges),  # its active edges are its jumps
            )
        iterations = torch.where(passthrough, 0, stop.iterations)
        reached = active.jumps >= rule.need
        stopped_by = _stopped_by(reached, iterations, config.max_iter, stop.beta, x, config.scale, rule)
        beta = stop.beta / config.scale
        projected, regions = project_fn(x if projection in ("input", "auto") else beta, active.h, active.v)
        out = beta if projection == "none" else projected
        # (each choice below by a select over the batch, not by reading which images it concerns: no host read)
        if projection == "auto" and rule.has_noise:  # beta / scale itself for the images stopped by noise
            out = torch.where((stopped_by == STOP_RULES.index("noise")).view(-1, 1, 1, 1), beta, out)
        # an image without jumps (constant, or 1x1) and a target of 1 return the input itself
        out = torch.where(((jump_count == 0) | passthrough).view(-1, 1, 1, 1), x, out)
        edges = edge_count(h, w) * (1 if joint else c)
        ones = torch.ones(batch, dtype=torch.float64, device=x.device)
        info = SparsifyInfo(
            iterations=iterations,
            sparsity=torch.where(jump_count > 0, active.jumps.double() / jump_count.clamp(min=1), ones),
            regions=regions,
            reached=reached,
            stop=stopped_by,
            active_fraction=active.edges.double() / edges if edges else ones,
            noise=torch.full_like(ones, float("nan")) if noise is None else noise.double().clone(),
        )
        results.append((out, info))
    return results


def _stopped_by(reached, iterations, max_iter, beta, x, scale, rule: StopRule) -> torch.Tensor:
    """(B,) int8 index into STOP_RULES: the sparsity target, else the noise level (the only other reason to stop
    before the budget; at the budget the residual decides), else the budget."""
    noise = ~reached & (iterations < max_iter)
    at_budget = ~reached & ~noise
    if rule.has_noise:  # an image at its budget that also reached its noise level
        noise |= at_budget & (residual(beta, x * scale) <= rule.limit)
    code = torch.full_like(iterations, STOP_RULES.index("budget"), dtype=torch.int8)
    code[noise] = STOP_RULES.index("noise")
    code[reached] = STOP_RULES.index("sparsity")
    return code
