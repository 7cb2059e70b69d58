"""The public API: input forms and their round trips, bad input, the transform, the backend switch."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import isvs_triton as isvs
from isvs_triton import backends
from isvs_triton.config import PRESETS
from isvs_triton.testing import SHORT, assert_close

FASTKW = SHORT.kwargs()


def photo_uint8(height=24, width=20) -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut()[100 : 100 + height, 200 : 200 + width])


# ------------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_float_tensor_keeps_dtype_shape_and_matches_float64(dtype):
    x = torch.rand(2, 3, 12, 10, dtype=torch.float64)
    y = isvs.sparsify(x.to(dtype), 0.5, **FASTKW)
    assert y.dtype == dtype and y.shape == x.shape and y.device == x.device
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    expected = isvs.sparsify(x.to(dtype).double(), 0.5, **FASTKW)
    tolerance = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 1e-5, torch.float64: 0}[dtype]
    assert_close(str(dtype), y, expected, tolerance)


def test_single_image_and_batch_agree():
    x = torch.rand(3, 3, 9, 11)
    y, info = isvs.sparsify(x[1], 0.4, return_info=True, **FASTKW)
    yb, info_b = isvs.sparsify(x, 0.4, return_info=True, **FASTKW)
    assert y.shape == (3, 9, 11) and info.iterations.shape == ()
    assert torch.equal(y, yb[1]) and int(info["iterations"]) == int(info_b["iterations"][1])
    assert set(info.keys()) == {"iterations", "sparsity", "regions", "reached", "stop", "active_fraction", "noise"}


def test_uint8_tensor_is_rounded_not_truncated():
    x = torch.from_numpy(photo_uint8()).permute(2, 0, 1).contiguous()
    y = isvs.sparsify(x, 0.5, **FASTKW)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    exact = isvs.sparsify(x.float() / 255, 0.5, **FASTKW) * 255  # uint8 in: float32 math
    assert torch.equal(y, exact.round().to(torch.uint8))
    assert not torch.equal(y, exact.floor().to(torch.uint8)), "some values round up"
    assert float((y.float() - exact).abs().max()) <= 0.5 + 1e-4


@pytest.mark.parametrize("shape", [(24, 20), (24, 20, 3), (2, 24, 20, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_numpy_round_trip(shape, dtype):
    base = photo_uint8()
    array = {2: base[..., 0], 3: base, 4: np.stack([base, base[::-1]])}[len(shape)]
    array = array.astype(np.float32) / 255 if dtype == np.float32 else array
    y = isvs.sparsify(array, 0.5, **FASTKW)
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == shape
    batch = torch.from_numpy(array.reshape(-1, *shape[-2:], 1) if len(shape) == 2 else array.reshape(-1, *shape[-3:]))
    expected = isvs.sparsify(batch.permute(0, 3, 1, 2), 0.5, **FASTKW).permute(0, 2, 3, 1).reshape(shape).numpy()
    assert np.array_equal(y, expected)
    assert not np.array_equal(y, array), "the image was smoothed"


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_pil_round_trip(mode):
    image = Image.fromarray(photo_uint8()).convert(mode)
    y = isvs.sparsify(image, 0.5, **FASTKW)
    assert isinstance(y, Image.Image) and y.mode == mode and y.size == image.size
    array = np.asarray(image)
    array = array[..., None] if array.ndim == 2 else array
    expected = isvs.sparsify(torch.from_numpy(array.copy()).permute(2, 0, 1), 0.5, **FASTKW)
    assert np.array_equal(np.asarray(y).reshape(array.shape), expected.permute(1, 2, 0).numpy())


def test_value_range_for_normalised_tensors():
    x = torch.rand(2, 3, 10, 10)
    mean, std = 0.45, 0.25
    normalised = (x - mean) / std
    lo, hi = (0 - mean) / std, (1 - mean) / std
    y = isvs.sparsify(normalised, 0.5, value_range=(lo, hi), **FASTKW)
    assert_close("normalised round trip", y * std + mean, isvs.sparsify(x, 0.5, **FASTKW), 1e-5)


def test_empty_batch_returns_empty_batch():
    for x in (torch.rand(0, 3, 8, 8), torch.zeros(0, 3, 8, 8, dtype=torch.uint8)):
        y, info = isvs.sparsify(x, return_info=True)
        assert y.shape == x.shape and y.dtype == x.dtype and info.iterations.shape == (0,)
    outs = isvs.path(torch.rand(0, 1, 4, 4), [0.2, 0.4])
    assert [o.shape for o in outs] == [(0, 1, 4, 4)] * 2


def test_empty_batch_with_the_noise_estimate_returns_empty():
    """noise="auto" on an empty batch raised "cannot reshape tensor of 0 elements" in every entry point."""
    x = torch.rand(0, 3, 8, 8)
    assert isvs.sparsify(x, 0.5, noise="auto").shape == x.shape
    assert isvs.path(x, [0.3, 0.6], noise="auto")[1].shape == x.shape
    assert isvs.SparsifyLayer(0.5, noise="auto")(x).shape == x.shape
    assert isvs.estimate_noise(x).shape == (0,) and isvs.estimate_noise(x, per_channel=True).shape == (0, 3)


def test_meta_tensors_are_refused_by_name():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="sparsity as a tensor holds no values on the meta device"):
        isvs.sparsify(x, torch.full((2,), 0.5, dtype=torch.float64, device="meta"))
    with pytest.raises(ValueError, match="noise as a tensor holds no values on the meta device"):
        isvs.sparsify(x, 0.5, noise=torch.full((2,), 0.1, device="meta"))
    with pytest.raises(ValueError, match="the images are on the meta device"):
        isvs.sparsify(x.to("meta"), 0.5)


CPU_BACKENDS = [name for name in ("reference", "torch", "numba") if name in backends.REGISTRY]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("projection", ["auto", "input", "beta", "none"])
def test_the_input_is_neither_written_nor_returned(backend, projection):
    """A float batch in [0, 1] is smoothed without a copy of its own (the backends read it): whatever runs, the
    caller's tensor keeps its values and no output shares its memory, also where the output is the input's values."""
    x = torch.rand(3, 3, 10, 9)
    x[2] = 0.5  # no jump: returned as it is
    given = x.clone()
    outs = isvs.path(x, [0.3, 1.0], backend=backend, projection=projection, noise=0.02, **FASTKW)
    assert torch.equal(x, given)
    assert torch.equal(outs[1], x) and torch.equal(outs[0][2], x[2])
    assert all(not out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for out in outs)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_images_without_edges_come_back_unchanged(backend):
    x = torch.rand(5, 3, 1, 1)
    y, info = isvs.sparsify(x, 0.6, backend=backend, return_info=True)
    assert torch.equal(y, x)
    assert info.iterations.tolist() == [0] * 5 and bool(info.reached.all())
    assert info.sparsity.tolist() == [1.0] * 5 and info.regions.tolist() == [3] * 5


def test_constant_image_is_a_fixed_point():
    """No variation, no jump: sparsity counts jumps, so every target is met at iteration 0 and the output is the image
    itself (tests/test_stopping.py sweeps the backends and projections)."""
    x = torch.full((2, 3, 6, 6), 0.3)
    y, info = isvs.sparsify(x, 0.5, return_info=True, **{**FASTKW, "max_iter": 50})
    assert torch.equal(y, x)
    assert bool(info.reached.all()) and info.regions.tolist() == [3, 3] and info.iterations.tolist() == [0, 0]


# ------------------------------------------------------------------------------------------------ bad input
BAD_INPUTS = [
    ("nan", lambda: torch.full((3, 4, 4), float("nan")), {}, ValueError, "NaN"),
    ("inf", lambda: torch.tensor([[[0.5, float("inf")]]]), {}, ValueError, "NaN or Inf"),
    ("one-nan", lambda: torch.tensor([[[0.5, float("nan"), 0.2]]]), {}, ValueError, "NaN or Inf"),
    ("minus-inf-float64", lambda: torch.tensor([[[0.5, -float("inf")]]]).double(), {}, ValueError, "NaN or Inf"),
    ("rank-2", lambda: torch.rand(4, 4), {}, ValueError, "(C, H, W)"),
    ("rank-5", lambda: torch.rand(1, 1, 1, 4, 4), {}, ValueError, "(B, C, H, W)"),
    ("zero-width", lambda: torch.rand(1, 3, 4, 0), {}, ValueError, ">= 1"),
    ("above-one", lambda: torch.rand(3, 4, 4) + 1.5, {}, ValueError, "value_range"),
    ("below-zero", lambda: torch.rand(3, 4, 4) - 1.0, {}, ValueError, "[0, 1]"),
    ("outside-value-range", lambda: torch.rand(3, 4, 4) * 10, {"value_range": (0, 5)}, ValueError, "[0, 5]"),
    ("bad-value-range", lambda: torch.rand(3, 4, 4), {"value_range": (1, 0)}, ValueError, "lo < hi"),
    ("int64", lambda: torch.randint(0, 255, (3, 4, 4)), {}, TypeError, "uint8"),
    ("bool", lambda: torch.rand(3, 4, 4) > 0.5, {}, TypeError, "uint8"),
    ("numpy-int32", lambda: np.zeros((4, 4, 3), np.int32), {}, TypeError, "numpy dtype"),
    ("numpy-rank-5", lambda: np.zeros((1, 1, 4, 4, 3), np.uint8), {}, ValueError, "(H, W, C)"),
    ("pil-mode-I", lambda: Image.new("I", (4, 4)), {}, ValueError, "PIL mode"),
    ("list", lambda: [[0.5]], {}, TypeError, "PIL.Image"),
    ("sparsity-0", lambda: torch.rand(3, 4, 4), {"sparsity": 0.0}, ValueError, "(0.0, 1.0]"),
    ("sparsity-1.5", lambda: torch.rand(3, 4, 4), {"sparsity": 1.5}, ValueError, "sparsity"),
    ("sparsity-nan", lambda: torch.rand(3, 4, 4), {"sparsity": float("nan")}, ValueError, "finite"),
    ("sparsity-str", lambda: torch.rand(3, 4, 4), {"sparsity": "0.5"}, TypeError, "real number"),
    ("kappa-0", lambda: torch.rand(3, 4, 4), {"kappa": 0}, ValueError, "kappa"),
    ("nu-negative", lambda: torch.rand(3, 4, 4), {"nu": -1.0}, ValueError, "nu"),
    ("scale-0", lambda: torch.rand(3, 4, 4), {"scale": 0.0}, ValueError, "scale"),
    ("step-0", lambda: torch.rand(3, 4, 4), {"step": 0.0}, ValueError, "step"),
    ("step-above-1", lambda: torch.rand(3, 4, 4), {"step": 1.01}, ValueError, "step"),
    ("momentum-1", lambda: torch.rand(3, 4, 4), {"momentum": 1.0}, ValueError, "momentum"),
    ("momentum-negative", lambda: torch.rand(3, 4, 4), {"momentum": -0.1}, ValueError, "momentum"),
    ("max-iter-negative", lambda: torch.rand(3, 4, 4), {"max_iter": -1}, ValueError, "max_iter"),
    ("max-iter-float", lambda: torch.rand(3, 4, 4), {"max_iter": 10.5}, ValueError, "max_iter"),
    ("max-iter-2**63", lambda: torch.rand(3, 4, 4), {"max_iter": 2**63}, ValueError, "[0, 2147483647]"),
    ("max-iter-1e30", lambda: torch.rand(3, 4, 4), {"max_iter": 10**30}, ValueError, "[0, 2147483647]"),
    (
        "value-range-overflow",
        lambda: torch.rand(3, 4, 4),
        {"value_range": (-3e38, 3e38)},
        ValueError,
        "finite in torch.float32",
    ),
    ("above-1-float32", lambda: torch.tensor([[[0.5, 1.000001]]]), {}, ValueError, "max 1.0000009536743164"),
    ("projection", lambda: torch.rand(3, 4, 4), {"projection": "mean"}, ValueError, "'input', 'beta', 'none'"),
    ("channels", lambda: torch.rand(3, 4, 4), {"channels": "shared"}, ValueError, "'independent', 'joint'"),
    ("backend", lambda: torch.rand(3, 4, 4), {"backend": "cuda"}, ValueError, "'reference', 'torch'"),
    ("return-info", lambda: torch.rand(3, 4, 4), {"return_info": "yes"}, TypeError, "return_info"),
]


@pytest.mark.parametrize("make,kwargs,error,message", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_clear_error(make, kwargs, error, message):
    with pytest.raises(error) as excinfo:
        isvs.sparsify(make(), **kwargs)
    assert message in str(excinfo.value)


# Every input form crossed with every kind of target, on each CPU backend: the single rows above say what each error
# reads; this grid says that no combination of them gets past the boundary into a crash deep inside (an
# AttributeError, IndexError, RuntimeError...) or out as non-finite values.
GRID_INPUTS = {
    "batch": lambda: torch.rand(2, 3, 6, 6),
    "image": lambda: torch.rand(3, 6, 6),
    "one-pixel": lambda: torch.rand(1, 3, 1, 1),
    "one-row": lambda: torch.rand(1, 1, 1, 40),
    "empty": lambda: torch.rand(0, 3, 6, 6),
    "uint8": lambda: torch.randint(0, 256, (2, 1, 6, 6), dtype=torch.uint8),
    "half": lambda: torch.rand(2, 3, 6, 6).half(),
    "complex": lambda: torch.rand(2, 3, 6, 6, dtype=torch.complex64),
    "channels-last": lambda: torch.rand(2, 3, 6, 6).to(memory_format=torch.channels_last),
    "expanded": lambda: torch.rand(1, 3, 1, 1).expand(2, 3, 6, 6),
    "four-channels": lambda: torch.rand(2, 4, 6, 6),
    "numpy": lambda: np.random.default_rng(0).random((6, 6, 3)).astype(np.float32),
    "string": lambda: "image.png",
    "none": lambda: None,
}
GRID_TARGETS = [0.5, 1, True, -0.1, float("inf"), "0.5", None, [0.5, 0.5], torch.tensor(0.5),
                torch.tensor([0.5, 0.6]), torch.tensor([[0.5, 0.6]]), torch.tensor([float("nan"), 0.5]),
                torch.tensor([0.5, 0.6], dtype=torch.int64)]  # fmt: skip


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_no_combination_of_input_and_target_crashes_inside(backend):
    crashed, layer = [], isvs.SparsifyLayer(backend=backend, **FASTKW)
    calls = {"sparsify": lambda x, t: isvs.sparsify(x, t, backend=backend, **FASTKW), "SparsifyLayer": layer}
    for (form, make), target, (function, call) in (
        (item, t, c) for item in GRID_INPUTS.items() for t in GRID_TARGETS for c in calls.items()
    ):
        name = f"{function}({form})"
        try:
            y = call(make(), target)
        except (ValueError, TypeError) as error:
            if len(str(error)) < 20:
                crashed.append(f"{name}, {target!r}: a terse {type(error).__name__}: {error}")
            continue
        except Exception as error:  # anything else is a crash past the boundary
            crashed.append(f"{name}, {target!r}: {type(error).__name__}: {error}")
            continue
        if isinstance(y, torch.Tensor) and y.is_floating_point() and not bool(torch.isfinite(y).all()):
            crashed.append(f"{name}, {target!r}: non-finite output")
    assert not crashed, "\n".join(crashed)


def test_bad_path_arguments():
    x = torch.rand(3, 4, 4)
    with pytest.raises(TypeError, match="non-empty sequence"):
        isvs.path(x, [])
    with pytest.raises(ValueError, match=r"sparsities\[1\]"):
        isvs.path(x, [0.2, 2.0])
    with pytest.raises(TypeError, match="unexpected keyword"):
        isvs.path(x, [0.2], sparsity=0.3)


GRAD_CASES = [
    ("reference", torch.float64),
    ("torch", torch.float64),
    ("torch", torch.float32),
    ("numba", torch.float32),
]


@pytest.mark.parametrize("backend,dtype", [c for c in GRAD_CASES if c[0] in backends.REGISTRY], ids=str)
def test_inputs_that_require_grad_are_smoothed_without_autograd(backend, dtype):
    """Defined result: the smoothing is not differentiable; the input is read detached and the output never
    requires grad (attacks differentiate through it by BPDA, isvs_triton.robustness.attacks)."""
    x = torch.rand(2, 3, 8, 8, dtype=dtype, requires_grad=True)
    y = isvs.sparsify(x, 0.5, backend=backend)
    assert not y.requires_grad and y.grad_fn is None
    assert torch.equal(y, isvs.sparsify(x.detach(), 0.5, backend=backend)) and x.grad is None


# ------------------------------------------------------------------------------------------------ transform
def test_transform_is_picklable_and_readable():
    t = isvs.Sparsify(0.4, projection="beta", **FASTKW)
    assert "sparsity=0.4" in repr(t) and "projection='beta'" in repr(t)
    x = torch.rand(3, 8, 8)
    clone = pickle.loads(pickle.dumps(t))
    assert torch.equal(clone(x), isvs.sparsify(x, 0.4, projection="beta", **FASTKW))


def test_transform_validates_at_construction():
    with pytest.raises(ValueError, match="projection"):
        isvs.Sparsify(0.4, projection="mean")
    with pytest.raises(ValueError, match="sparsity"):
        isvs.Sparsify(1.2)


def test_transform_on_lists_batches_and_falls_back():
    t = isvs.Sparsify(0.5, **FASTKW)
    same = [torch.rand(3, 8, 8) for _ in range(3)]
    assert all(torch.equal(a, isvs.sparsify(b, 0.5, **FASTKW)) for a, b in zip(t(same), same))
    mixed = [torch.rand(3, 8, 8), torch.rand(1, 5, 7)]
    assert [y.shape for y in t(mixed)] == [(3, 8, 8), (1, 5, 7)]


def test_transform_with_datasets():
    from datasets import Dataset

    images = [Image.fromarray(photo_uint8(16, 16 + i)) for i in range(4)]
    ds = Dataset.from_dict({"img": images, "label": [0, 1, 0, 1]})
    with pytest.raises(KeyError, match="img"):
        ds.with_transform(isvs.Sparsify(0.5, **FASTKW))[0]
    out = ds.with_transform(isvs.Sparsify(0.5, key="img", **FASTKW))[:2]
    assert out["label"] == [0, 1]
    for y, x in zip(out["img"], images):
        assert isinstance(y, Image.Image) and y.size == x.size
        assert np.array_equal(np.asarray(y), np.asarray(isvs.sparsify(x, 0.5, **FASTKW)))


# ------------------------------------------------------------------------------------------ continuing a path
@pytest.mark.parametrize("preset", ["events", "fast"])
def test_state_continues_a_path_exactly(preset):
    solver = PRESETS[preset].kwargs()
    x = torch.rand(3, 3, 12, 10)
    state = isvs.PathState.zeros(x, momentum=PRESETS[preset].momentum > 0)
    first, info_first = isvs.sparsify(x, 0.4, state=state, return_info=True, **solver)
    second, info = isvs.sparsify(x, 0.7, state=state, return_info=True, **solver)
    assert torch.equal(first, isvs.sparsify(x, 0.4, **solver)) and torch.equal(second, isvs.sparsify(x, 0.7, **solver))
    assert (info.iterations >= info_first.iterations).all()
    if preset == "events":  # the target is read off a shorter last step that leaves the state on the step grid
        assert ((info.iterations - state.iterations) <= 1).all() and (
            state.iterations >= info_first.iterations - 1
        ).all()
    else:
        assert torch.equal(state.iterations, info.iterations)


@pytest.mark.parametrize(
    "make_state,options,error,match",
    [
        (lambda x: isvs.PathState.zeros(x[:2], True), {}, ValueError, r"state.beta must be torch.float32 of shape"),
        (lambda x: isvs.PathState.zeros(x.double(), True), {}, ValueError, "state.beta must be torch.float32"),
        (lambda x: isvs.PathState.zeros(x, False), {"integrator": "explicit"}, ValueError, "keep the previous iterate"),
        (lambda x: isvs.PathState.zeros(x, True), {"backend": "reference"}, ValueError, "cannot continue"),
        (lambda x: {"beta": x}, {}, TypeError, "state must be an isvs_triton.PathState"),
    ],
    ids=["shape", "dtype", "no-momentum-state", "reference", "not-a-state"],
)
def test_bad_states_are_refused(make_state, options, error, match):
    x = torch.rand(3, 3, 8, 8)
    with pytest.raises(error, match=match):
        isvs.sparsify(x, 0.5, state=make_state(x), **options)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) tensor batch"):
        isvs.sparsify(x[0], 0.5, state=isvs.PathState.zeros(x[:1], True))


def test_the_subpackages_are_reachable_after_import_isvs_triton():
    """``isvs_triton.train.load_run(...)`` after ``import isvs_triton`` raised AttributeError (a fresh process: in
    this one the test suite has imported them already)."""
    import subprocess
    import sys

    code = "import isvs_triton; print(isvs_triton.train.load_run.__name__, isvs_triton.robustness.corrupt.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["load_run", "corrupt"], done.stderr


def test_transform_takes_what_datasets_hands_it_array_columns_and_numpy_format():
    """An Array3D column arrives as nested lists ("unsupported input type list" before); the numpy format as arrays."""
    from datasets import Array3D, Dataset, Features

    floats = [np.random.default_rng(i).random((8, 9, 3), dtype=np.float32) for i in range(3)]
    ds = Dataset.from_dict({"img": floats}, features=Features({"img": Array3D((8, 9, 3), "float32")}))
    out = ds.with_transform(isvs.Sparsify(0.5, key="img", **FASTKW))[:2]["img"]
    for y, x in zip(out, floats):
        assert y.dtype == np.float32 and np.array_equal(y, isvs.sparsify(x, 0.5, **FASTKW))
    assert isvs.Sparsify(0.5, **FASTKW)(ds[0]["img"]).shape == (8, 9, 3)  # one example's cell
    batch = isvs.Sparsify(0.5, key="img", **FASTKW)(ds.with_format("numpy")[:3])["img"]
    assert batch.shape == (3, 8, 9, 3) and np.array_equal(batch[1], isvs.sparsify(floats[1], 0.5, **FASTKW))
    grey = Dataset.from_dict(
        {"img": [np.full((6, 6, 1), 7, np.uint8)]}, features=Features({"img": Array3D((6, 6, 1), "uint8")})
    )
    assert grey.with_transform(isvs.Sparsify(0.5, key="img"))[:1]["img"][0].dtype == np.uint8
    with pytest.raises(ValueError, match=r"must lie in \[0, 255\]"):
        isvs.Sparsify(0.5)([[[300, 2], [3, 4]]])
