"""Every registered model: shapes at CIFAR and ImageNet sizes, normalisation inside, gradients, clear errors."""

import pytest
import torch

from isvs_triton.models import IMAGENET_MEAN, Normalize, create_model, list_models


def test_registry_lists_the_issue_models():
    assert {"resnet18", "resnet50", "vit_tiny", "vit_small"} <= set(list_models())


# every model at 32 px; at 224 px one of each stem / patch size (the others share their code)
SHAPES = [(name, 32) for name in list_models()] + [("resnet8", 224), ("resnet50", 224), ("vit_small", 224)]


@pytest.mark.parametrize("name, size", SHAPES, ids=[f"{n}-{s}px" for n, s in SHAPES])
def test_forward_backward_shapes(name, size):
    model = create_model(name.replace("_", "-"), num_classes=7, image_size=size)
    x = torch.rand(2, 3, size, size, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert x.grad.abs().sum() > 0, "gradients reach the [0, 1] input (what the attacks need)"
    assert any(isinstance(m, Normalize) for m in model.modules()), "normalisation lives inside the model"


def test_normalize_maps_the_mean_image_to_zero():
    x = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert Normalize()(x).abs().max() < 1e-6


def test_same_seed_same_weights():
    torch.manual_seed(5)
    a = create_model("resnet8", num_classes=3, image_size=32).state_dict()
    torch.manual_seed(5)
    b = create_model("resnet8", num_classes=3, image_size=32).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="resnet19", num_classes=3, image_size=32), "accepted: ['resnet18'"),
        (dict(name="resnet18", num_classes=1, image_size=32), "num_classes must be an int >= 2"),
        (dict(name="vit_tiny", num_classes=3, image_size=30), "not a multiple of the patch size 4"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        create_model(kwargs.pop("name"), **kwargs)
