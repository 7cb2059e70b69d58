"""L-infinity attacks on [0, 1] images, the pipeline they attack (a model, with test-time smoothing or not), and the
suite whose per-image worst case is the robust accuracy the evaluation reports.

Attacks run on the model in eval mode and in float32 (autocast off). When the pipeline smooths its input,
``sparsify`` has no useful gradient (an iterative solver stopped at a sparsity, then a projection onto regions), so a
gradient-based attack must see through it (BPDA, Athalye et al., 2018: the smoothing in the forward pass, a
surrogate in the backward pass). Three surrogates (``ATTACK_GRADS``):

- ``"bpda"``: the identity.
- ``"projection"``: the exact gradient almost everywhere. With the support held fixed the smoothing is the region
  mean, a symmetric projection P, so the gradient of the loss through it is P applied to the gradient at its output:
  one projection per step. The regions are read off the smoothed output (connected pixels of equal value, per
  channel), which is exact unless two adjacent regions have bit-identical means; an output that is not piecewise
  constant (``projection="none"``: beta / scale) has one-pixel regions, and P is then the identity.
- ``"naive"``: the gradient autograd gives (none, the smoothed images are detached): PGD with its random start only,
  the gradient-masking number a careless evaluation would report, kept only to show the difference.

The suite (``robust``) attacks each image with APGD (Croce & Hein, 2020: PGD whose step size starts at 2 eps and is
halved at checkpoints where the loss stopped rising, with momentum, from the best point so far) under every surrogate
the pipeline has, from ``restarts`` random starts alternating the cross-entropy and the DLR loss (the margin divided by
the spread of the top logits, so the step schedule does not depend on the logits' scale); the gradient-free Square
attack (Andriushchenko et al., 2020) on the images still standing; and APGD points crafted on the model without its
smoothing (transfer). An image counts as robust only if no attack fooled it. ``pgd`` (a fixed step of 2.5 eps /
steps, Madry et al.) stays for a first look; it left 1-12 % of the images standing at 32/255 through the smoothing
where APGD leaves none (docs/notes/results.md).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..rng import sample_uniform

ATTACK_GRADS = ("bpda", "projection", "naive")
LOSSES = ("ce", "margin", "dlr")
SUITE_LOSSES = ("ce", "dlr")  # the suite's restarts alternate these


class _RegionMean(torch.autograd.Function):
    """Forward: the smoothed images; backward: the gradient averaged over the regions of the smoothed output."""

    @staticmethod
    def forward(ctx, x, smoothed):
        ctx.save_for_backward(smoothed)
        return smoothed

    @staticmethod
    def backward(ctx, grad):
        (smoothed,) = ctx.saved_tensors
        return region_average(grad, smoothed), None


def region_average(values: torch.Tensor, smoothed: torch.Tensor) -> torch.Tensor:
    """``values`` (B, C, H, W) averaged over each region of ``smoothed``: 4-connected pixels of equal value, per
    channel (the projection P of the smoothing with its support fixed)."""
    from ..ops.projection.torch_path import project

    active_h = smoothed[..., :, 1:] != smoothed[..., :, :-1]
    active_v = smoothed[..., 1:, :] != smoothed[..., :-1, :]
    return project(values, active_h, active_v)[0]


class Pipeline(nn.Module):
    """``model(smooth(x))`` (or ``model(x)`` when ``smooth`` is None) with the chosen gradient through ``smooth``;
    a ``differentiable`` smoothing (a median filter) is differentiated as it is, exactly."""

    def __init__(
        self,
        model: nn.Module,
        smooth: Callable[[torch.Tensor], torch.Tensor] | None = None,
        grad: str = "bpda",
        differentiable: bool = False,
    ):
        super().__init__()
        if grad not in ATTACK_GRADS:
            raise ValueError(f"unknown attack gradient {grad!r}; accepted: {list(ATTACK_GRADS)}")
        self.model, self.smooth, self.grad, self.differentiable = model, smooth, grad, differentiable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.smooth is not None and self.differentiable:
            return self.model(self.smooth(x))
        if self.smooth is not None:
            with torch.no_grad():
                smoothed = self.smooth(x.detach())
            if self.grad == "bpda":
                x = x + (smoothed - x).detach()  # forward: smoothed; backward: identity
            elif self.grad == "projection":
                x = _RegionMean.apply(x, smoothed)
            else:
                x = smoothed
        return self.model(x)

    def with_grad(self, grad: str) -> Pipeline:
        """The same pipeline with another surrogate gradient through its smoothing."""
        return Pipeline(self.model, self.smooth, grad, self.differentiable)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: the true class's logit minus the largest other one (< 0: misclassified)."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return true - other


def loss_per_image(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The loss an attack ascends, per image: cross-entropy, minus the margin, or the DLR loss (minus the margin over
    the gap between the largest and third-largest logit, Croce & Hein, 2020; the smallest with two classes)."""
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        return -margin(logits, y)
    top = logits.topk(min(3, logits.shape[1]), dim=1).values
    return -margin(logits, y) / (top[:, 0] - top[:, -1] + 1e-12)


def _input_gradient(
    pipeline: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str = "ce"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradient of the loss (``loss_per_image``) with respect to the input, the logits and the loss per image."""
    x = x.detach().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        logits = pipeline(x).float()
        values = loss_per_image(logits, y, loss)
    (grad,) = torch.autograd.grad(values.sum(), x, allow_unused=True)
    return (torch.zeros_like(x) if grad is None else grad), logits.detach(), values.detach()


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """Eval mode for the attack, then every submodule back in its own previous mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _check(x: torch.Tensor, eps: float, step: float | None = None, steps: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor (B, C, H, W) in [0, 1], got {getattr(x, 'shape', type(x))}")
    if not 0 <= eps <= 1:
        raise ValueError(f"eps must be in [0, 1] (e.g. 8/255), got {eps}")
    if step is not None and not (step > 0 or step == eps == 0):
        raise ValueError(f"step must be > 0, got {step}")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be an int >= 1, got {steps}")


def fgsm(pipeline: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size ``eps`` (Goodfellow et al., 2015); returns the adversarial images."""
    _check(x, eps)
    with _eval_mode(pipeline):
        return (x + eps * _input_gradient(pipeline, x, y)[0].sign()).clamp(0, 1).detach()


def pgd(
    pipeline: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    step: float | None = None,
    steps: int = 20,
    random_start: bool = True,
    loss: str = "ce",
    seed: int = 0,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected gradient descent in the L-inf ball of radius ``eps`` (Madry et al., 2018): ``steps`` signed steps of
    ``step`` (default 2.5 eps / steps) from a uniform random start, each projected back into the ball and [0, 1],
    ascending ``loss`` (one of ``LOSSES``). The start of each image is a function of (``seed``, its ``index`` in the
    dataset, default 0..B-1, eps).

    Returns, per image, the first point found that the pipeline misclassifies (the clean image itself if it already
    is, then each iterate), else the last iterate: robust accuracy counts an image only if no point fooled it."""
    step = 2.5 * eps / steps if step is None else step
    _check(x, eps, step, steps)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; accepted: {list(LOSSES)}")
    with _eval_mode(pipeline):
        adversarial = x.detach().clone()
        if random_start:
            index = torch.arange(x.shape[0]) if index is None else index
            noise = sample_uniform(index, round(eps * 255_000), seed, x[0].numel()).view(x.shape) * 2 - 1
            adversarial = (adversarial + eps * noise.to(x)).clamp(0, 1)
        with torch.no_grad():
            fooled = pipeline(x).argmax(1) != y
        found = x.detach().clone()
        for iteration in range(steps + 1):
            grad, logits, _ = _input_gradient(pipeline, adversarial, y, loss)
            new = (logits.argmax(1) != y) & ~fooled
            found[new], fooled = adversarial[new], fooled | new
            if iteration == steps:
                break
            adversarial = adversarial + step * grad.sign()
            adversarial = torch.minimum(torch.maximum(adversarial, x - eps), x + eps).clamp(0, 1).detach()
    return torch.where(fooled.view(-1, 1, 1, 1), found, adversarial)


def apgd_checkpoints(steps: int) -> list[int]:
    """The iterations after which APGD may halve its step: p_0 = 0, p_1 = 0.22, p_j+1 = p_j + max(p_j - p_j-1 - 0.03,
    0.06), times ``steps``, rounded up (Croce & Hein, 2020)."""
    fractions = [0.0, 0.22]
    while fractions[-1] < 1:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(p * steps, 9)) for p in fractions[1:] if p <= 1} - {0})  # 0.7 * 10: 7


def apgd(
    pipeline: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 100,
    loss: str = "ce",
    rho: float = 0.75,
    seed: int = 0,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Auto-PGD in the L-inf ball of radius ``eps`` (Croce & Hein, 2020): signed steps from a uniform random start,
    the step size per image starting at 2 eps and halved at each of ``apgd_checkpoints`` where fewer than ``rho`` of
    the steps since the last one raised the loss, or where the best loss did not rise and the step was not halved at
    the last one (then the image restarts from its best point); momentum 0.25 on the previous step. ``loss``: one
    of ``LOSSES`` (the suite uses "ce" and "dlr"). The start of each image is a function of (``seed``, its
    ``index``, eps), so an image's attack does not depend on the rest of its batch.

    Returns, per image, the first point found that the pipeline misclassifies (the clean image itself if it already
    is, then each iterate), else the point of highest loss."""
    _check(x, eps, None, steps)
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; accepted: {list(LOSSES)}")
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    b = x.shape[0]
    index = torch.arange(b) if index is None else index.cpu()
    low, high = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)

    def into_ball(points: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(points, low), high)

    with _eval_mode(pipeline):
        noise = sample_uniform(index, round(eps * 255_000) + 3, seed, x[0].numel()).view(x.shape) * 2 - 1
        current = into_ball(x + eps * noise.to(x))
        with torch.no_grad():
            fooled = pipeline(x).argmax(1) != y
        found = x.detach().clone()

        def record(points: torch.Tensor, logits: torch.Tensor) -> None:
            nonlocal fooled
            new = (logits.argmax(1) != y) & ~fooled
            found[new], fooled = points[new], fooled | new

        grad, logits, value = _input_gradient(pipeline, current, y, loss)
        record(current, logits)
        best, best_grad, best_value = current.clone(), grad.clone(), value.clone()
        step = torch.full((b, 1, 1, 1), 2 * eps, dtype=x.dtype, device=x.device)
        previous = current
        rises = torch.zeros(b, device=x.device)
        best_at_checkpoint, halved = best_value.clone(), torch.ones(b, dtype=torch.bool, device=x.device)
        checkpoints, last = apgd_checkpoints(steps), 0
        for k in range(steps):
            z = into_ball(current + step * grad.sign())
            if k:  # momentum on the previous step (none on the first)
                z = into_ball(current + 0.75 * (z - current) + 0.25 * (current - previous))
            previous, current = current, z.detach()
            grad, logits, new_value = _input_gradient(pipeline, current, y, loss)
            record(current, logits)
            rises += new_value > value
            value = new_value
            better = value > best_value
            best[better], best_grad[better], best_value[better] = current[better], grad[better], value[better]
            if k + 1 in checkpoints:
                stalled = (rises < rho * (k + 1 - last)) | (~halved & (best_value <= best_at_checkpoint))
                step[stalled] /= 2
                current[stalled], grad[stalled], previous[stalled] = best[stalled], best_grad[stalled], best[stalled]
                value[stalled] = best_value[stalled]
                halved, best_at_checkpoint, last = stalled, best_value.clone(), k + 1
                rises.zero_()
    return torch.where(fooled.view(-1, 1, 1, 1), found, best).detach()


# the Square attack's schedule (Andriushchenko et al., 2020): the fraction of pixels a square covers is halved at these
# fractions of a 10,000-query budget, scaled to the budget given
_SQUARE_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square(
    pipeline: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    queries: int = 1000,
    p_init: float = 0.8,
    seed: int = 0,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """The L-inf Square attack (Andriushchenko et al., 2020): gradient-free, so no surrogate is needed. From vertical
    stripes of +-eps, each query sets one random square to +-eps per channel and keeps the change if it lowers the
    margin; the square covers ``p_init`` of the image (0.8, as AutoAttack runs it), halved on the paper's schedule.
    An image stops once misclassified; ``queries`` forward passes per image at most (the first is the start). Draws
    are functions of (``seed``, the image's ``index``, the query).

    Returns, per image, the first misclassified point found, else the point of lowest margin."""
    _check(x, eps)
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise ValueError(f"queries must be an int >= 1, got {queries!r}")
    b, c, h, w = x.shape
    index = torch.arange(b) if index is None else index.cpu()
    salt = 1_000_000 + round(eps * 255_000) * 1000

    def draws(query: int, count: int) -> torch.Tensor:
        return sample_uniform(index, salt + query, seed, count).to(x.device)

    with _eval_mode(pipeline), torch.no_grad():
        stripes = torch.where(draws(0, c * w).view(b, c, 1, w) < 0.5, -eps, eps).to(x.dtype)
        best = (x + stripes).clamp(0, 1)
        best_margin = margin(pipeline(best).float(), y)
        clean_fooled = pipeline(x).argmax(1) != y
        best = torch.where(clean_fooled.view(-1, 1, 1, 1), x, best)
        done = clean_fooled | (best_margin < 0)
        rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
        for query in range(1, queries):
            active = (~done).nonzero()[:, 0]
            if not active.numel():
                break
            p = p_init / 2 ** sum(query * 10_000 / queries > t for t in _SQUARE_HALVINGS)
            side = min(max(round(math.sqrt(p * h * w)), 1), h - 1, w - 1)
            u = draws(query, 2 + c)[active]
            top = (u[:, 0] * (h - side + 1)).long().view(-1, 1, 1, 1)
            left = (u[:, 1] * (w - side + 1)).long().view(-1, 1, 1, 1)
            inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
            signs = torch.where(u[:, 2:] < 0.5, -eps, eps).to(x.dtype).view(-1, c, 1, 1)
            delta = torch.where(inside, signs, best[active] - x[active])
            candidate = (x[active] + delta).clamp(0, 1)
            m = margin(pipeline(candidate).float(), y[active])
            better = m < best_margin[active]
            keep = active[better]
            best[keep], best_margin[keep] = candidate[better], m[better]
            done[active] = done[active] | (m < 0)
    return best.detach()


def suite_names(
    pipeline: Pipeline,
    *,
    restarts: int = 2,
    square_queries: int = 1000,
    transfer: bool = True,
    only: str | None = None,
) -> list:
    """The attacks ``robust`` runs on ``pipeline``, in order: FGSM, APGD per surrogate gradient and restart (losses
    alternating), Square, transfer; with ``only`` (one of ``ATTACK_GRADS``), APGD with that gradient alone."""
    smoothing = pipeline.smooth is not None and not pipeline.differentiable
    grads = (only,) if only else ("bpda", "projection") if smoothing else ("exact",)
    apgds = [f"apgd-{g}-{SUITE_LOSSES[r % 2]}-r{r}" for g in grads for r in range(restarts)]
    if only:
        return apgds
    names = ["fgsm", *apgds] + (["square"] if square_queries else [])
    return names + (["transfer"] if transfer and pipeline.smooth is not None else [])


def robust(
    pipeline: Pipeline,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 20,
    restarts: int = 2,
    square_queries: int = 1000,
    transfer: bool = True,
    only: str | None = None,
    seed: int = 0,
    index: torch.Tensor | None = None,
    worst_only: bool = False,
) -> dict[str, torch.Tensor]:
    """Per image, whether it is still classified correctly after each attack of ``suite_names`` (bool (B,) each),
    and ``"worst"``: after all of them (the robust accuracy). Square runs only on the images every gradient attack
    left standing (as AutoAttack does); transfer replays APGD points crafted on the model without its smoothing.

    ``worst_only``: every attack runs only on the images the earlier ones left standing, and only ``"worst"`` is
    returned. It is the same worst case (each attack treats each image on its own: its random start is a function of
    the image's index, the model is in eval mode), at a fraction of the cost where the first attacks break most
    images, as at a large epsilon."""
    if only is not None and only not in ATTACK_GRADS:
        raise ValueError(f"unknown attack gradient {only!r}; accepted: {list(ATTACK_GRADS)}")
    names = suite_names(pipeline, restarts=restarts, square_queries=square_queries, transfer=transfer, only=only)
    plain = Pipeline(pipeline.model).eval()
    survived, standing = {}, torch.ones_like(y, dtype=torch.bool)

    index = torch.arange(len(x)) if index is None else index.cpu()
    for name in names:
        # Square (and every attack with worst_only) runs on the images left standing only: its entry is the worst
        # case so far, itself included
        subset = worst_only or name == "square"
        rest = standing.nonzero()[:, 0] if subset else torch.arange(len(x), device=x.device)
        survived[name] = torch.zeros_like(standing)
        if not rest.numel():  # nothing left standing: no attack to run, and (with worst_only) none after it
            if worst_only:
                break
            continue
        xs, ys, at = x[rest], y[rest], index[rest.cpu()]
        if name == "fgsm":
            points = fgsm(pipeline, xs, ys, eps)
        elif name.startswith("apgd-"):
            _, grad, loss, restart = name.split("-")
            attacked = pipeline if grad == "exact" else pipeline.with_grad(grad)
            points = apgd(attacked, xs, ys, eps, steps=steps, loss=loss, seed=seed + int(restart[1:]), index=at)
        elif name == "square":
            points = square(pipeline, xs, ys, eps, queries=square_queries, seed=seed, index=at)
        else:
            points = apgd(plain, xs, ys, eps, steps=steps, seed=seed, index=at)
        with torch.no_grad(), _eval_mode(pipeline):
            survived[name][rest] = pipeline(points).argmax(1) == ys
        standing &= survived[name]
    if worst_only:
        return {"worst": standing}
    survived["worst"] = standing
    return survived
