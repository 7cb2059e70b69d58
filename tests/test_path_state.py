"""``PathState``: a saved path is continued only along the path it was built for, and no field a user can set reaches
a kernel unchecked (isvs_triton/api.py ``_check_state`` / ``_state_record``, ops/lbi/path.py ``StateRecord``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import isvs_triton as isvs
from isvs_triton.config import PRESETS
from isvs_triton.ops.lbi.path import fingerprint

ROOT = Path(__file__).resolve().parents[1]
CONTINUING = ("torch", "numba", "triton")  # the backends that continue a state (triton: interpreted on the CPU)


def _momentum(integrator: str) -> bool:
    return integrator == "explicit"  # FAST, what integrator="explicit" alone takes, has momentum


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_a_previous_iterate_for_a_smaller_batch_is_refused_not_a_crash(backend):
    """The reproducer of the reliability review: with numba this killed the process (exit 139)."""
    x = torch.rand(4, 3, 12, 12)
    state = isvs.PathState.zeros(x, True)
    state.prev = tuple(t[:2].clone() for t in state.prev)
    with pytest.raises(ValueError, match=r"state.prev\[0\] must be torch.float32 of shape \(4, 3, 12, 12\)"):
        isvs.sparsify(x, 0.5, state=state, integrator="explicit", backend=backend)


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda s: setattr(s, "iterations", s.iterations[:3]), r"state.iterations must be torch.int64 of shape \(4,\)"),
        (lambda s: setattr(s, "iterations", s.iterations.int()), "state.iterations must be torch.int64"),
        (lambda s: s.iterations.fill_(-1), r"state.iterations must lie in \[0, 2147483647\]"),
        (lambda s: setattr(s, "prev", s.prev[:2]), "state.prev must be None or a tuple"),
        (lambda s: setattr(s, "prev", (s.beta, s.zh, None)), r"state.prev\[2\] must be torch.float32"),
        (lambda s: s.beta.fill_(float("nan")), "state.beta holds NaN or Inf values"),
        (lambda s: setattr(s, "zv", s.zv.double()), "state.zv must be torch.float32"),
        (lambda s: setattr(s, "record", "mine"), "state.record must be an isvs_triton StateRecord or None"),
        (lambda s: setattr(s.record, "targets", s.record.targets[:1]), r"state.record.targets must be torch.float64"),
        (lambda s: s.record.targets.fill_(float("nan")), r"state.record.targets must lie in \[0, 1\]"),
    ],
    ids=[
        "iterations-short",
        "iterations-int32",
        "iterations-negative",
        "prev-pair",
        "prev-none",
        "beta-nan",
        "zv-float64",
        "record-string",
        "record-targets-short",
        "record-targets-nan",
    ],  # fmt: skip
)
def test_every_field_of_a_state_is_checked_before_a_backend_reads_it(damage, match):
    x = torch.rand(4, 3, 12, 12)
    state = isvs.PathState.zeros(x, True)
    damage(state)
    with pytest.raises((ValueError, TypeError), match=match):
        isvs.sparsify(x, 0.5, state=state, integrator="explicit")


def test_a_state_refuses_a_lower_target_than_it_has_reached():
    """The review's silent misuse: 0.7 then 0.3 returned the 0.7 output with info.reached true."""
    x = torch.rand(4, 3, 12, 12)
    state = isvs.PathState.zeros(x, False)
    isvs.sparsify(x, 0.7, state=state)
    assert state.record.targets.tolist() == [0.7] * 4
    with pytest.raises(ValueError, match=r"advanced image 0 to sparsity 0.7, past this call's target 0.3.*zeros"):
        isvs.sparsify(x, 0.3, state=state)
    # per image: only the images asked to go back are refused
    with pytest.raises(ValueError, match="advanced image 2 to sparsity 0.7, past this call's target 0.5"):
        isvs.sparsify(x, torch.tensor([0.8, 0.9, 0.5, 0.8], dtype=torch.float64), state=state)
    again = isvs.sparsify(x, 0.7, state=state)  # the same target: the same output
    assert torch.equal(again, isvs.sparsify(x, 0.7))
    isvs.sparsify(x, 1.0, state=state)  # a target of 1 returns the input and leaves the path where it was
    assert state.record.targets.tolist() == [0.7] * 4


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda x: (x.flip(0), {}), r"built for other images: image\(s\) \[0, 1, 2, 3\]"),
        (lambda x: (x, {"channels": "joint"}), "built for channels='independent' \\(this call: 'joint'\\)"),
        (lambda x: (x, {"scale": 2.0}), r"built for scale=1.0 \(this call: 2.0\)"),
        (lambda x: (x, {"integrator": "explicit"}), r"integrator='events' \(this call: 'explicit'\)"),
    ],
    ids=["other-images", "channels", "scale", "integrator"],
)
def test_a_state_refuses_other_images_and_other_settings(change, match):
    x = torch.rand(4, 3, 12, 12)
    state = isvs.PathState.zeros(x, True)
    isvs.sparsify(x, 0.4, state=state)
    images, options = change(x)
    with pytest.raises(ValueError, match=match):
        isvs.sparsify(images, 0.6, state=state, **options)


def test_a_state_accepts_another_budget_and_continues_exactly():
    x = torch.rand(3, 3, 10, 9)
    state = isvs.PathState.zeros(x, False)
    isvs.sparsify(x, 0.3, state=state, max_iter=500)
    assert torch.equal(isvs.sparsify(x, 0.6, state=state), isvs.sparsify(x, 0.6))


def test_a_hand_made_state_that_has_advanced_needs_its_record():
    x = torch.rand(2, 1, 8, 8)
    state = isvs.PathState.zeros(x, False)
    isvs.sparsify(x, 0.4, state=state)
    bare = isvs.PathState(state.beta, state.zh, state.zv, None, state.iterations)
    with pytest.raises(ValueError, match=r"advanced \(iterations > 0\) but carries no record"):
        isvs.sparsify(x, 0.6, state=bare)
    fresh = isvs.PathState(*(torch.zeros_like(t) for t in (state.beta, state.zh, state.zv)), None,
                           torch.zeros_like(state.iterations))  # fmt: skip
    assert torch.equal(isvs.sparsify(x, 0.4, state=fresh), isvs.sparsify(x, 0.4))  # at the start: nothing to check


def test_fingerprints_know_an_image_in_any_batch_and_tell_images_apart():
    x = torch.rand(6, 3, 16, 16)
    prints = fingerprint(x)
    assert torch.equal(fingerprint(x[[4, 1]]), prints[[4, 1]])
    assert torch.equal(fingerprint(x.to(torch.float64)), prints)
    assert len(set(prints.tolist())) == 6
    nudged = x.clone()
    nudged[2, 1, 5, 7] += 1 / 255
    swapped = x.clone()
    swapped[3, :, 0, 0], swapped[3, :, 0, 1] = x[3, :, 0, 1], x[3, :, 0, 0]
    assert fingerprint(nudged)[2] != prints[2] and fingerprint(swapped)[3] != prints[3]


def test_zeros_takes_the_math_dtype_of_any_input():
    """uint8 and half inputs are smoothed in float32: their state is float32 too (it was uint8 and refused)."""
    x = (torch.rand(2, 3, 8, 8) * 255).to(torch.uint8)
    state = isvs.PathState.zeros(x, False)
    assert state.beta.dtype == torch.float32
    isvs.sparsify(x, 0.5, state=state)
    with pytest.raises(ValueError, match=r"takes a \(B, C, H, W\) tensor"):
        isvs.PathState.zeros(x[0], False)


def test_the_path_cache_of_training_keeps_each_images_record():
    from isvs_triton.train.smoother import PathCache

    x = torch.rand(6, 3, 8, 8)
    cache = PathCache(10, (3, 8, 8), momentum=False)
    index = torch.tensor([7, 2, 5, 0, 9, 3])
    for sparsity in (0.3, 0.6):
        for part in (index[:4], index[4:]):
            state = cache.take(part, x.device)
            rows = (index[:, None] == part).nonzero()[:, 0]
            isvs.sparsify(x[rows], sparsity, state=state)
            cache.put(part, state)
    assert cache.record.targets[index].tolist() == [0.6] * 6 and cache.record.targets[[1, 4, 6, 8]].eq(0).all()
    state = cache.take(index[[1, 0]], x.device)  # rows in another order than the images: refused
    with pytest.raises(ValueError, match="built for other images"):
        isvs.sparsify(x[[0, 1]], 0.8, state=state)


# ------------------------------------------------------------------------------------------------ fuzz
DTYPES = (torch.float32, torch.float64, torch.float16, torch.int64, torch.bool)


def _damaged_tensor(t: torch.Tensor, kind: int, randint) -> torch.Tensor:
    """One of six damages (5: none): another size along one dimension, another dtype, Inf (or a huge count), other
    strides or dimensions."""
    if kind == 0:
        shape = list(t.shape)
        shape[randint(0, len(shape))] += randint(-1, 2)
        return torch.zeros([max(s, 0) for s in shape], dtype=t.dtype)
    if kind == 1:
        return t.to(DTYPES[randint(0, len(DTYPES))])
    if kind == 2:
        return t.fill_(float("inf")) if t.is_floating_point() else t.fill_(2**40)
    if kind == 3:
        return t.mT if t.dim() > 1 else t.flip(0)
    if kind == 4:
        return t[None]
    return t


def _damaged_prev(prev: tuple, kind: int, randint):
    """None, too few tensors, a list of float64 ones, one size short, other strides (accepted), or intact."""
    if kind == 0:
        return None
    if kind == 1:
        return prev[: randint(0, 3)]
    if kind == 2:
        return [t.double() for t in prev]
    if kind == 3:
        return tuple(t[:, :, :-1] for t in prev)
    if kind == 4:
        return tuple(t.mT.contiguous().mT for t in prev)
    return prev


def fuzz(backend: str, cases: int, seed: int) -> None:
    """Random damage to every field of a state and random inputs: each call returns a batch of the input's shape or
    raises ValueError / TypeError. Run in a child process by the test, so that a crash fails it instead of pytest."""
    generator = torch.Generator().manual_seed(seed)

    def randint(low, high):
        return int(torch.randint(low, high, (), generator=generator))

    ran = 0
    for case in range(cases):
        b, c, h, w = randint(1, 4), randint(1, 3), randint(1, 9), randint(1, 9)
        x = torch.rand(b, c, h, w, generator=generator)
        integrator = ("explicit", "events")[case % 2]
        state = isvs.PathState.zeros(x, _momentum(integrator))
        names = ["beta", "zh", "zv", "iterations", "prev", "record", "input"]
        name = names[randint(0, len(names))]
        kind = randint(0, 6)
        if name == "input":
            x = torch.rand(randint(1, 4), randint(1, 3), randint(1, 9), randint(1, 9), generator=generator)
        elif name == "prev":
            state.prev = _damaged_prev(isvs.PathState.zeros(x, True).prev, kind, randint)
        elif name == "record":
            state.record.targets = _damaged_tensor(state.record.targets, kind, randint)
        else:
            setattr(state, name, _damaged_tensor(getattr(state, name), kind, randint))
        try:
            out = isvs.sparsify(x, 0.5, state=state, integrator=integrator, backend=backend, max_iter=40)
        except (ValueError, TypeError):
            continue
        assert out.shape == x.shape and bool(torch.isfinite(out).all()), (case, name, kind)
        ran += 1
    assert ran >= cases // 5, f"only {ran} of {cases} calls reached the backend: the fuzz tests the checks alone"


@pytest.mark.slow
@pytest.mark.parametrize("backend", CONTINUING)
def test_no_damaged_state_or_input_crashes_the_process(backend):
    cases = 40 if backend == "triton" else 300  # the interpreter runs a kernel ~1000x slower
    code = f"from tests.test_path_state import fuzz; fuzz({backend!r}, {cases}, seed=7)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_state_continued_to_higher_targets_equals_a_fresh_run(preset):
    x = torch.rand(3, 2, 9, 10)
    state = isvs.PathState.zeros(x, PRESETS[preset].momentum > 0)
    for sparsity in (0.2, 0.5):
        continued = isvs.sparsify(x, sparsity, state=state, **PRESETS[preset].kwargs())
        assert torch.equal(continued, isvs.sparsify(x, sparsity, **PRESETS[preset].kwargs())), sparsity
