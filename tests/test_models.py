"""Every registered model: shapes at CIFAR and ImageNet sizes, normalisation inside, gradients, clear errors."""

import pytest
import torch

from isvs_triton.models import IMAGENET_MEAN, Normalize, create_model, for_inference, list_models
from isvs_triton.testing import with_trained_like_batch_norm


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


@pytest.mark.parametrize("name", ["resnet8", "resnet50", "vit_tiny"])
def test_for_inference_is_the_same_function(name):
    """The folded copy computes the eval-mode model's logits and input gradient: exactly in float64 (where rounding
    cannot hide a wrong fold), to float32 rounding in float32; no batch norm is left after a conv, and the original is
    untouched."""
    model = with_trained_like_batch_norm(create_model(name, num_classes=5, image_size=32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = for_inference(model)
    assert not folded.training and all(not m.training for m in folded.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "the original is not changed"
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64)

    def logits_and_gradient(m, x):
        x = x.clone().requires_grad_()
        logits = m(x)
        return logits.detach(), torch.autograd.grad(logits.logsumexp(1).sum(), x)[0]

    double = model.double()
    (expected, expected_grad), (logits, grad) = (logits_and_gradient(m, x) for m in (double, for_inference(double)))
    assert (logits - expected).abs().max() <= 1e-10 * expected.abs().max()
    assert (grad - expected_grad).norm() <= 1e-10 * expected_grad.norm()
    with torch.no_grad():
        single = folded(x.float())
    assert (single - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_for_inference_keeps_a_batch_norm_it_cannot_fold():
    """A batch norm not right after a conv (here: first in its Sequential) stays, and the function is unchanged."""
    model = with_trained_like_batch_norm(torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 3)))
    folded = for_inference(model)
    assert isinstance(folded[0], torch.nn.BatchNorm2d) and isinstance(folded[1], torch.nn.Conv2d)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(folded(x), model(x), atol=1e-6)
