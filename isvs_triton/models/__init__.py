"""Classifiers by name, timm-style: ``create_model("resnet18", num_classes=10, image_size=32)``.

Every model takes images in [0, 1] and normalises them itself (its ``mean`` / ``std`` buffers), so corruptions,
attacks and the sparsifier all act on the images a person would see.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, *, num_classes: int, image_size: int, **kwargs) -> nn.Module:
    """A fresh model ``name`` (see ``list_models()``) for ``num_classes`` and square inputs of ``image_size``."""
    key = name.replace("-", "_") if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; accepted: {list_models()}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an int >= 8, got {image_size!r}")
    return _REGISTRY[key](num_classes=num_classes, image_size=image_size, **kwargs)


def for_inference(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for evaluation, in eval mode: every BatchNorm2d that follows a Conv2d in a Sequential folded
    into that conv (``torch.nn.utils.fusion.fuse_conv_bn_eval``), weights in channels_last. The same function as
    ``model.eval()``, exactly up to float rounding (the tests compare logits and input gradients in float64), so
    attacks see through it as through the original; ``model`` is left as it is. Why: in eval mode batch norm is an
    affine map per channel, a pass of its own forward and backward that the conv's weights and bias can absorb.
    ResNet-8 at 28x28, batch 128, 2 CPU cores: forward 1.3x, input gradient 1.8x (``tools/bench_inference.py``)."""
    folded = copy.deepcopy(model).eval()  # fuse_conv_bn_eval takes eval-mode modules
    for sequence in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(sequence) - 1):
            conv, norm = sequence[i], sequence[i + 1]
            if type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.running_mean is not None:
                sequence[i], sequence[i + 1] = fuse_conv_bn_eval(conv, norm), nn.Identity()
    return folded.eval().to(memory_format=torch.channels_last)  # again: the fused modules start in training mode


class Normalize(nn.Module):
    """(x - mean) / std per channel; first layer of every model, so that models take [0, 1] images."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


from . import resnet, vit  # noqa: E402,F401  (registers the models)
