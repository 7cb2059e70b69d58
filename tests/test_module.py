"""``SparsifyLayer`` (an nn.Module over the registered op ``isvs_triton::sparsify``) against ``sparsify``: eager and
under ``torch.compile(fullgraph=True)``, per-sample sparsities, pickling, state_dict, .to(), DataLoader workers and
the documented backward (the BPDA identity, or none)."""

import pickle

import numpy as np
import pytest
import torch

import isvs_triton as isvs
from isvs_triton import backends
from isvs_triton.samples import crops
from isvs_triton.testing import assert_close

CPU_BACKENDS = [name for name in ("reference", "torch", "numba") if name in backends.REGISTRY]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    "options",
    [{}, {"channels": "joint", "projection": "beta"}, {"noise": "auto"}],
    ids=["defaults", "joint-beta", "noise-stop"],
)
def test_the_module_equals_sparsify(backend, options):
    x = crops(16, 4, seed=2)
    layer = isvs.SparsifyLayer(0.6, backend=backend, **options)
    assert torch.equal(layer(x), isvs.sparsify(x, 0.6, backend=backend, **options))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_per_sample_sparsities(backend):
    x = crops(16, 3, seed=5)
    targets = torch.tensor([0.2, 0.6, 1.0])
    out = isvs.SparsifyLayer(backend=backend)(x, targets)
    for i, target in enumerate(targets.tolist()):
        assert_close(f"image {i}", out[i : i + 1], isvs.sparsify(x[i : i + 1], target, backend=backend), 0)
    assert torch.equal(out[2], x[2]), "a target of 1 returns the input"
    layer = isvs.SparsifyLayer(backend=backend)
    assert torch.equal(layer(x, 0.2), isvs.sparsify(x, 0.2, backend=backend)), "a number: every image's target"
    assert torch.equal(layer(x, np.float32(0.2)), layer(x, 0.2)), "any real number, as sparsify takes"
    with pytest.raises(TypeError, match="a number in \\(0, 1\\] or a \\(B,\\) tensor, got list"):
        layer(x, [0.2, 0.6, 1.0])
    with pytest.raises(ValueError, match=r"sparsity must lie in \(0.0, 1.0\]"):
        layer(x, 1.5)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        isvs.sparsify(x, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"in \(0.0, 1.0\] for every image"):
        isvs.sparsify(x, torch.tensor([0.5, 0.0, 0.5]))


def test_fullgraph_compile_has_no_graph_break_and_gives_the_eager_result():
    x = crops(16, 4, seed=1)
    model = torch.nn.Sequential(isvs.SparsifyLayer(0.6), torch.nn.Conv2d(3, 4, 3))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # fullgraph: a graph break is an error
    assert_close("compiled (aot_eager)", compiled(x), model(x), 0)
    targets = torch.tensor([0.3, 0.5, 0.7, 0.9])
    layer = isvs.SparsifyLayer()
    step = torch.compile(lambda x, s: layer(x, s), fullgraph=True, backend="aot_eager")
    assert_close("per-sample, compiled", step(x, targets), layer(x, targets), 0)


@pytest.mark.slow
def test_inductor_compiles_it_on_the_cpu():
    x = crops(16, 4, seed=1)
    model = torch.nn.Sequential(isvs.SparsifyLayer(0.6), torch.nn.Conv2d(3, 4, 3))
    assert_close("compiled (inductor)", torch.compile(model, fullgraph=True)(x), model(x), 1e-6)


def test_backward_is_the_bpda_identity_or_none_by_choice():
    x = crops(16, 2, seed=3).requires_grad_()
    weights = torch.rand_like(x)
    (isvs.SparsifyLayer(0.6)(x) * weights).sum().backward()
    assert torch.equal(x.grad, weights), "BPDA: the gradient passes through unchanged"
    out = isvs.SparsifyLayer(0.6, grad="none")(x)
    assert not out.requires_grad
    assert not isvs.sparsify(x, 0.6).requires_grad, "the function is never differentiable"


def test_pickling_state_dict_and_to():
    x = crops(16, 3, seed=4)
    layer = isvs.SparsifyLayer(0.4, channels="joint", noise=0.05, discrepancy=1.5)
    expected = layer(x)
    assert torch.equal(pickle.loads(pickle.dumps(layer))(x), expected)
    other = isvs.SparsifyLayer(0.9)
    other.load_state_dict(layer.state_dict())
    assert torch.equal(other(x), expected) and other.sparsity == 0.4 and "channels='joint'" in repr(other)
    moved = layer.to("cpu", torch.float64)  # nothing to move: it holds no tensors, and stays usable
    assert torch.equal(moved(x), expected)
    assert torch.equal(torch.nn.Sequential(layer)(x), expected)


class _Smoothed(torch.utils.data.Dataset):
    def __init__(self, images, layer):
        self.images, self.layer = images, layer

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.layer(self.images[i : i + 1])[0]


def test_in_dataloader_workers():
    x = crops(16, 6, seed=6)
    layer = isvs.SparsifyLayer(0.6)
    loader = torch.utils.data.DataLoader(_Smoothed(x, layer), batch_size=3, num_workers=2)
    assert_close("from workers", torch.cat(list(loader)), torch.cat([layer(x[i : i + 1]) for i in range(6)]), 0)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"grad": "straight"}, ValueError, "unknown grad 'straight'; accepted: ['bpda', 'none']"),
        ({"noise": torch.tensor([0.1])}, TypeError, "one sigma for every image"),
        ({"state": isvs.PathState.zeros(torch.rand(1, 3, 4, 4), True)}, TypeError, "no path state"),
        ({"kappas": 3}, TypeError, "unexpected keyword arguments ['kappas']"),
        ({"channels": "shared"}, ValueError, "accepted: ['independent', 'joint']"),
        ({"sparsity": 1.5}, ValueError, "sparsity must lie in (0.0, 1.0]"),
    ],
)
def test_bad_options_are_refused_at_construction(kwargs, error, message):
    with pytest.raises(error) as info:
        isvs.SparsifyLayer(**kwargs)
    assert message in str(info.value)


def test_the_module_takes_one_image_as_torch_nn_layers_do():
    """(C, H, W) was read as a batch of C images and refused with a sparsity-shape error the user never made."""
    x = crops(12, 2, seed=4)
    layer = isvs.SparsifyLayer(0.5)
    assert torch.equal(layer(x[1]), isvs.sparsify(x[1], 0.5))
    assert torch.equal(layer(x[1], torch.tensor(0.3, dtype=torch.float64)), isvs.sparsify(x[1], 0.3))
    with pytest.raises(ValueError, match=r"takes a \(B, C, H, W\) batch or a \(C, H, W\) image, got \(12, 12\)"):
        layer(x[0, 0])
