"""L-infinity FGSM and PGD on [0, 1] images, and the pipeline they attack (a model, with test-time smoothing or not).

Attacks run on the model in eval mode and in float32 (autocast off). When the pipeline smooths its input,
``sparsify`` has no useful gradient (an iterative solver stopped at a sparsity, then a projection onto regions), so
a gradient-based attack must see through it: BPDA (Athalye et al., 2018) uses the smoothing in the forward pass and
the identity in the backward pass. ``grad="naive"`` takes the gradient autograd gives — none, the smoothed images are
detached — which leaves PGD with its random start only: the gradient-masking number a careless evaluation would
report, kept here only to show the difference.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import sample_uniform

ATTACK_GRADS = ("bpda", "naive")


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
            x = (
                x + (smoothed - x).detach() if self.grad == "bpda" else smoothed
            )  # BPDA: forward smooth, backward identity
        return self.model(x)


def _input_gradient(pipeline: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of the loss with respect to the input, and the logits at x."""
    x = x.detach().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        logits = pipeline(x).float()
        loss = F.cross_entropy(logits, y)
    (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    return (torch.zeros_like(x) if grad is None else grad), logits.detach()


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
    if step is not None and not step > 0:
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
    step: float = 2 / 255,
    steps: int = 20,
    random_start: bool = True,
    seed: int = 0,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected gradient descent in the L-inf ball of radius ``eps`` (Madry et al., 2018): ``steps`` signed steps of
    ``step`` from a uniform random start, each projected back into the ball and [0, 1]. The start of each image is a
    function of (``seed``, its ``index`` in the dataset, default 0..B-1, eps).

    Returns, per image, the first point found that the pipeline misclassifies (the clean image itself if it already
    is, then each iterate), else the last iterate: robust accuracy counts an image only if no point fooled it."""
    _check(x, eps, step, steps)
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
            grad, logits = _input_gradient(pipeline, adversarial, y)
            new = (logits.argmax(1) != y) & ~fooled
            found[new], fooled = adversarial[new], fooled | new
            if iteration == steps:
                break
            adversarial = adversarial + step * grad.sign()
            adversarial = torch.minimum(torch.maximum(adversarial, x - eps), x + eps).clamp(0, 1).detach()
    return torch.where(fooled.view(-1, 1, 1, 1), found, adversarial)
