"""Corruptions against their definitions (and scikit-image where it has the same operation), low resolution, the
attacks, and the evaluation of a briefly trained model: PGD falls with epsilon, and BPDA sees through the smoothing."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from isvs_triton.robustness import (
    ATTACK_GRADS,
    CONSTANTS,
    CORRUPTIONS,
    LOSSES,
    Pipeline,
    apgd,
    corrupt,
    evaluate_run,
    fgsm,
    low_resolution,
    pgd,
    region_average,
    robust,
    square,
    suite_names,
)
from isvs_triton.robustness.attacks import apgd_checkpoints
from isvs_triton.robustness.corruptions import constants_for
from isvs_triton.robustness.evaluate import per_image_counts
from isvs_triton.samples import crops

FLAT = torch.full((2, 3, 96, 96), 0.5)  # not an 8-bit value: the definitions are tested with quantize=False


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gaussian_noise_std_is_sigma(severity):
    sigma = CONSTANTS["cifar"]["gaussian_noise"][severity - 1]
    noise = corrupt(FLAT, "gaussian_noise", severity, constants="cifar", quantize=False) - 0.5
    assert noise.std().item() == pytest.approx(sigma, rel=0.03) and abs(noise.mean().item()) < 0.01


@pytest.mark.parametrize("severity", [1, 5])
def test_impulse_noise_flips_p_of_the_values_to_0_or_1(severity):
    p = CONSTANTS["imagenet"]["impulse_noise"][severity - 1]
    out = corrupt(FLAT, "impulse_noise", severity, constants="imagenet", quantize=False)
    changed = out != 0.5
    assert changed.double().mean().item() == pytest.approx(p, rel=0.08)
    assert set(out[changed].unique().tolist()) <= {0.0, 1.0}
    assert (out[changed] == 1).double().mean().item() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("severity", [1, 5])
def test_shot_noise_variance_is_x_over_lambda(severity):
    lam = CONSTANTS["cifar"]["shot_noise"][severity - 1]
    out = corrupt(FLAT, "shot_noise", severity, constants="cifar", quantize=False)
    assert out.var().item() == pytest.approx(0.5 / lam, rel=0.05) and out.mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.allclose(out * lam, (out * lam).round(), atol=1e-4), "Poisson counts / lambda"


def test_speckle_contrast_and_brightness_definitions():
    x = crops(32, 4, seed=1)
    speckle = corrupt(FLAT, "speckle_noise", 2, constants="cifar", quantize=False) - 0.5
    assert speckle.std().item() == pytest.approx(0.5 * CONSTANTS["cifar"]["speckle_noise"][1], rel=0.05)
    contrast = corrupt(x, "contrast", 3, quantize=False)
    mean = x.mean((2, 3), keepdim=True)
    torch.testing.assert_close(contrast, ((x - mean) * 0.4 + mean).clamp(0, 1))
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x.permute(0, 2, 3, 1).double().numpy(), channel_axis=-1)
    hsv[..., 2] = np.clip(hsv[..., 2] + 0.15, 0, 1)
    expected = torch.from_numpy(hsv2rgb(hsv, channel_axis=-1)).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(corrupt(x, "brightness", 3, quantize=False), expected, atol=1e-5, rtol=0)


def test_gaussian_blur_equals_scikit_image():
    from skimage.filters import gaussian

    x = crops(32, 2, seed=2)
    for severity, constants in ((1, "cifar"), (5, "cifar"), (2, "imagenet")):
        sigma = CONSTANTS[constants]["gaussian_blur"][severity - 1]
        expected = gaussian(x.permute(0, 2, 3, 1).double().numpy(), sigma=(0, sigma, sigma, 0), mode="nearest")
        out = corrupt(x, "gaussian_blur", severity, constants=constants, quantize=False)
        torch.testing.assert_close(out, torch.from_numpy(expected).permute(0, 3, 1, 2).float(), atol=1e-5, rtol=0)


def test_pixelate_and_jpeg_lose_detail_more_with_severity():
    x = crops(32, 8, seed=4)
    for name in ("pixelate", "jpeg_compression"):
        errors = [(corrupt(x, name, s) - x).abs().mean().item() for s in (1, 5)]
        assert 0 < errors[0] < errors[1], name


def test_every_corruption_keeps_shape_range_dtype_and_device():
    x = crops(32, 3, seed=5).double()
    for name in CORRUPTIONS:
        out = corrupt(x, name, 3)
        assert out.shape == x.shape and out.dtype == x.dtype and 0 <= out.min() and out.max() <= 1, name
        assert not torch.equal(out, x), name


def test_constants_by_size_and_by_name():
    assert constants_for(torch.zeros(1, 3, 32, 32)) == "cifar"
    assert constants_for(torch.zeros(1, 3, 64, 64)) == "tinyimagenet"
    assert constants_for(torch.zeros(1, 3, 224, 224)) == "imagenet"
    forced = corrupt(FLAT, "gaussian_noise", 1, constants="imagenet", quantize=False) - 0.5
    assert forced.std().item() == pytest.approx(0.08, rel=0.03)


def test_draws_depend_on_seed_index_and_severity_only():
    x = crops(32, 4, seed=6)
    a = corrupt(x, "gaussian_noise", 2, seed=1)
    assert torch.equal(a, corrupt(x, "gaussian_noise", 2, seed=1))
    assert not torch.equal(a, corrupt(x, "gaussian_noise", 2, seed=2))
    assert torch.equal(corrupt(x[2:], "gaussian_noise", 2, seed=1, index=torch.tensor([2, 3])), a[2:])
    noise_3 = corrupt(x, "gaussian_noise", 3, seed=1) - x
    assert not torch.allclose(noise_3 / 0.08, (a - x) / 0.06, atol=1e-3), "severities draw afresh"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: corrupt(FLAT, "spatter", 1), "accepted: ['gaussian_noise'"),
        (lambda: corrupt(FLAT, "gaussian_noise", 0), "severity must be an int in 1-5"),
        (lambda: corrupt(FLAT, "gaussian_noise", 6), "severity must be an int in 1-5"),
        (lambda: corrupt(FLAT, "gaussian_noise", True), "severity must be an int in 1-5"),
        (lambda: corrupt(FLAT * 3, "gaussian_noise", 1), "in [0, 1]"),
        (lambda: corrupt(FLAT[0], "gaussian_noise", 1), "(B, C, H, W)"),
        (
            lambda: corrupt(FLAT, "gaussian_noise", 1, constants="tiny", quantize=False),
            "accepted: ['auto', 'cifar', 'tinyimagenet'",
        ),
        (lambda: low_resolution(FLAT, 0), "factor must be an int >= 1"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_low_resolution_keeps_shape_and_removes_high_frequencies():
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    x = torch.stack([checker.float()] * 3)[None]
    ramp = torch.linspace(0, 1, 32)[None, None, None, :].expand(1, 3, 32, 32)
    for factor in (2, 4):
        out = low_resolution(x, factor)
        assert out.shape == x.shape
        assert (out - 0.5).abs().max() < 0.05, "the finest checkerboard averages out"
        assert (low_resolution(ramp, factor) - ramp)[..., 4:-4].abs().max() < 0.02, "a smooth ramp survives"
    assert torch.equal(low_resolution(x, 1), x)


# --------------------------------------------------------------------------------------------------------- attacks
class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_attacks_stay_in_the_ball_and_raise_the_loss():
    torch.manual_seed(0)
    model, x, y = _Linear(), torch.rand(16, 3, 8, 8), torch.randint(0, 2, (16,))
    loss = lambda z: torch.nn.functional.cross_entropy(model(z), y).item()  # noqa: E731
    attacks = (
        lambda: fgsm(model, x, y, 4 / 255),
        lambda: pgd(model, x, y, 4 / 255, steps=5, seed=3),
        *[lambda loss=loss: apgd(model, x, y, 4 / 255, steps=8, loss=loss, seed=3) for loss in LOSSES],
    )
    for attack in attacks:
        adversarial = attack()
        assert (adversarial - x).abs().max() <= 4 / 255 + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1
        assert loss(adversarial) > loss(x)
    assert torch.equal(pgd(model, x, y, 4 / 255, steps=2, seed=3), pgd(model, x, y, 4 / 255, steps=2, seed=3))
    assert torch.equal(apgd(model, x, y, 4 / 255, steps=3, seed=3), apgd(model, x, y, 4 / 255, steps=3, seed=3))


def test_apgd_checkpoints_and_its_attack_of_an_image_alone():
    """The step-halving checkpoints are the paper's (p_1 = 0.22, gaps shrinking by 0.03 to at least 0.06); an
    image's attack does not depend on the rest of its batch (its start is drawn from its index)."""
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]  # as torchattacks counts them
    assert apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9, 10] and apgd_checkpoints(1) == [1]
    torch.manual_seed(1)
    model, x, y = _Linear(), torch.rand(8, 3, 8, 8), torch.randint(0, 2, (8,))
    whole = apgd(model, x, y, 8 / 255, steps=6, loss="dlr", index=torch.arange(8))
    alone = apgd(model, x[5:6], y[5:6], 8 / 255, steps=6, loss="dlr", index=torch.tensor([5]))
    torch.testing.assert_close(alone, whole[5:6])


def test_attacks_leave_every_module_in_its_mode():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), _Linear()).eval()
    pipeline = Pipeline(model)  # a new module: training=True, while the model inside is in eval mode
    x, y = torch.rand(4, 3, 8, 8), torch.randint(0, 2, (4,))
    fgsm(pipeline, x, y, 2 / 255)
    pgd(pipeline, x, y, 2 / 255, steps=2)
    apgd(pipeline, x, y, 2 / 255, steps=2)
    assert pipeline.training and not any(m.training for m in model.modules())


def test_bpda_passes_gradients_and_naive_does_not():
    model, x, y = _Linear(), torch.rand(4, 3, 8, 8), torch.randint(0, 2, (4,))
    smooth = lambda z: z.round()  # noqa: E731  any smoothing without a useful gradient
    with pytest.raises(ValueError, match="accepted: \\['bpda', 'projection', 'naive'\\]"):
        Pipeline(model, smooth, "straight")
    assert torch.equal(Pipeline(model, smooth)(x), model(x.round()))
    naive = fgsm(Pipeline(model, smooth, "naive"), x, y, 8 / 255)
    assert torch.equal(naive, x), "no gradient: FGSM does not move"
    assert not torch.equal(fgsm(Pipeline(model, smooth, "bpda"), x, y, 8 / 255), x)


def test_median_filter_is_scipys_and_attacks_see_through_it():
    from scipy.ndimage import median_filter as scipy_median

    from isvs_triton.filters import median_filter

    x = torch.rand(2, 3, 9, 11, dtype=torch.float64)
    for size in (3, 5):
        expected = scipy_median(x.numpy(), size=(1, 1, size, size), mode="mirror")
        assert np.allclose(median_filter(x, size).numpy(), expected), size
    assert torch.equal(median_filter(x, 1), x)
    with pytest.raises(ValueError, match="odd integer"):
        median_filter(x, 4)
    # the exact gradient: each output pixel's gradient lands on one input pixel of its window
    model, y = _Linear(), torch.randint(0, 2, (4,))
    images = torch.rand(4, 3, 8, 8)
    pipeline = Pipeline(model, median_filter, differentiable=True)
    assert torch.equal(pipeline(images), model(median_filter(images)))
    assert not torch.equal(fgsm(pipeline, images, y, 8 / 255), images), "FGSM moves through the median"


def test_projection_gradient_is_the_exact_gradient_with_the_support_fixed():
    """P . grad against autograd through the region mean itself (``project`` with the support held fixed)."""
    from isvs_triton.ops.projection.torch_path import project

    torch.manual_seed(1)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    active_h, active_v = torch.rand(3, 3, 8, 7) < 0.3, torch.rand(3, 3, 7, 8) < 0.3
    smoothed = project(x, active_h, active_v)[0]
    weights = torch.randn_like(x)
    torch.testing.assert_close(region_average(weights, smoothed), project(weights, active_h, active_v)[0])
    model = _Linear().double()
    y = torch.randint(0, 2, (3,))
    exact = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(project(exact, active_h, active_v)[0]), y).backward()
    surrogate = x.clone().requires_grad_(True)
    pipeline = Pipeline(model, lambda z: project(z, active_h, active_v)[0], "projection")
    torch.nn.functional.cross_entropy(pipeline(surrogate), y).backward()
    torch.testing.assert_close(surrogate.grad, exact.grad)
    assert exact.grad.abs().sum() > 0, "a real gradient"
    bpda = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(Pipeline(model, lambda z: project(z, active_h, active_v)[0])(bpda), y).backward()
    assert not torch.allclose(bpda.grad, exact.grad), "the identity is another gradient"


def test_square_attack_fools_a_linear_model_inside_the_ball():
    torch.manual_seed(2)
    model, x = _Linear(), torch.rand(16, 3, 8, 8)
    y = model(x).argmax(1)  # every image correct at the start
    adversarial = square(model, x, y, 16 / 255, queries=300, seed=1)
    assert (adversarial - x).abs().max() <= 16 / 255 + 1e-6 and adversarial.min() >= 0 and adversarial.max() <= 1
    fooled = (model(adversarial).argmax(1) != y).float().mean()
    assert fooled > 0.5, fooled
    assert torch.equal(adversarial, square(model, x, y, 16 / 255, queries=300, seed=1)), "draws fixed by the seed"
    assert torch.equal(square(model, x[4:], y[4:], 16 / 255, queries=300, seed=1, index=torch.arange(4, 16)),
                       adversarial[4:])  # fmt: skip


def test_the_suite_counts_an_image_only_if_no_attack_fooled_it():
    torch.manual_seed(3)
    model, x = _Linear(), torch.rand(12, 3, 8, 8)
    y = torch.randint(0, 2, (12,))
    smoothed = Pipeline(model, lambda z: (z * 4).round() / 4)
    names = suite_names(smoothed, restarts=2, square_queries=20)
    assert names == ["fgsm", "apgd-bpda-ce-r0", "apgd-bpda-dlr-r1", "apgd-projection-ce-r0",
                     "apgd-projection-dlr-r1", "square", "transfer"]  # fmt: skip
    assert suite_names(Pipeline(model), square_queries=0) == ["fgsm", "apgd-exact-ce-r0", "apgd-exact-dlr-r1"]
    survived = robust(smoothed, x, y, 8 / 255, steps=3, square_queries=20)
    assert list(survived) == [*names, "worst"]
    assert torch.equal(survived["worst"], torch.stack([survived[n] for n in names]).all(0))


@pytest.mark.parametrize("eps", [4 / 255, 64 / 255])  # few images broken by the first attacks, then most
def test_the_suite_on_the_images_left_standing_finds_the_same_worst_case(eps):
    """worst_only runs each attack only on the survivors of the earlier ones (the sanity check at a large epsilon):
    the same worst case as the whole suite, since each image's attack depends on that image (and its index) alone."""
    torch.manual_seed(4)
    model, x = _Linear(), torch.rand(24, 3, 8, 8)
    y = model(x).argmax(1)
    y[:6] = 1 - y[:6]  # a quarter wrong from the start
    smoothed = Pipeline(model, lambda z: (z * 4).round() / 4)
    index = torch.arange(100, 124)
    whole = robust(smoothed, x, y, eps, steps=3, square_queries=20, index=index)
    standing = robust(smoothed, x, y, eps, steps=3, square_queries=20, index=index, worst_only=True)
    assert list(standing) == ["worst"] and torch.equal(standing["worst"], whole["worst"])
    assert 0 < whole["fgsm"].sum() < 18 if eps < 0.05 else whole["fgsm"].sum() < 6, "the sweep covers both cases"


@pytest.mark.slow
def test_pgd_apgd_and_square_agree_with_torchattacks(trained_run):
    """A cross-check of the attacks on the plain model against torchattacks' PGD, APGD and Square (independent
    code)."""
    import torchattacks  # installed with --no-deps by `make install`

    from isvs_triton.data import Images, load_data
    from isvs_triton.train import load_run

    model, info = load_run(trained_run, torch.device("cpu"))
    data = load_data("photo-patches", limit_train=1, limit_test=128)
    x = torch.stack([Images(data.test, info.image_size)[i][1] for i in range(128)]).float() / 255
    y = torch.tensor([Images(data.test, info.image_size)[i][2] for i in range(128)])
    model.eval()

    def accuracy(points):
        with torch.no_grad():
            return (model(points).argmax(1) == y).float().mean().item()

    eps = 2 / 255
    ours = accuracy(pgd(model, x, y, eps, steps=10, seed=0))
    theirs = accuracy(torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 10, steps=10, random_start=True)(x, y))
    assert abs(ours - theirs) <= 0.05, (ours, theirs)
    for loss in ("ce", "dlr"):
        ours = accuracy(apgd(model, x, y, eps, steps=10, loss=loss, seed=0))
        theirs = accuracy(torchattacks.APGD(model, eps=eps, steps=10, loss=loss, seed=0)(x, y))
        assert abs(ours - theirs) <= 0.05, (loss, ours, theirs)
    ours = accuracy(square(model, x, y, eps, queries=200, seed=0))
    theirs = accuracy(torchattacks.Square(model, eps=eps, n_queries=200, seed=0)(x, y))
    assert abs(ours - theirs) <= 0.08, (ours, theirs)


@pytest.mark.slow
def test_the_smoothed_pipeline_passes_the_sanity_checks(trained_run):
    """Accuracy under the suite falls with eps, reaches ~0 at 32/255, and beats random noise of the same norm."""
    results = evaluate_run(trained_run, limit_test=64, corruptions=(), resolutions=(), epsilons=[2 / 255, 8 / 255],
                           pgd_steps=10, square_queries=100, pipelines=("smoothed",), progress=False)  # fmt: skip
    smoothed = results["pipelines"]["smoothed"]
    assert smoothed["clean"] > smoothed["robust"]["2/255"] >= smoothed["robust"]["8/255"]
    assert smoothed["sanity"]["apgd 32/255"] == 0
    assert all(smoothed["robust"][e] < smoothed["sanity"]["random"][e] for e in smoothed["robust"])


# ------------------------------------------------------------------------------------------- a trained model, evaluated
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from isvs_triton.train import parse_args, train

    folder = tmp_path_factory.mktemp("robust") / "run"
    flags = ["--model", "resnet8", "--epochs", "3", "-b", "64", "--lr", "0.05", "--procedure", "standard",
             "--no-progress", "--log-with", "none", "--output", str(folder)]  # fmt: skip
    return train(parse_args(flags))


@pytest.mark.slow
def test_apgd_falls_with_epsilon_and_undercuts_fgsm(trained_run, tmp_path):
    results = evaluate_run(trained_run, limit_test=128, corruptions=("gaussian_noise", "contrast"), severities=(1, 5),
                           epsilons=[1 / 255, 4 / 255, 16 / 255], pgd_steps=10, square_queries=100,
                           pipelines=("plain",), output=tmp_path / "eval", progress=False)  # fmt: skip
    plain = results["pipelines"]["plain"]
    assert plain["clean"] > 0.4, "the briefly trained model learned something"
    pgd_acc, fgsm_acc = list(plain["attacks"]["apgd-exact-ce-r0"].values()), list(plain["attacks"]["fgsm"].values())
    worst = list(plain["robust"].values())
    assert plain["clean"] > pgd_acc[0] >= pgd_acc[1] >= pgd_acc[2]
    assert pgd_acc[-1] <= 0.05, "a large epsilon breaks an undefended model"
    assert all(p <= f + 1 / 128 for p, f in zip(pgd_acc, fgsm_acc))
    assert all(w <= min(a[e] for a in plain["attacks"].values()) for w, e in zip(worst, plain["robust"]))
    assert plain["sanity"]["apgd 32/255"] == 0
    assert all(w < plain["sanity"]["random"][e] for w, e in zip(worst, plain["robust"])), "beats random noise"
    assert plain["corruptions"]["gaussian_noise"][4] < plain["corruptions"]["gaussian_noise"][0]
    # the per-image counts the comparison's paired test reads: their means are the table's figures
    per_image = {m: per_image_counts(entry) for m, entry in plain["per_image"].items()}
    assert len(per_image["clean"]) == 128 and per_image["clean"].mean() == pytest.approx(plain["clean"])
    assert plain["per_image"]["corruption_15"]["conditions"] == 4  # two corruptions x two severities
    assert per_image["corruption_15"].mean() == pytest.approx(plain["mean_corruption"])
    assert per_image["corruption_10"].mean() == pytest.approx(plain["mean_corruption_10"])
    for name in ("results.json", "results.csv", "results.md", "corruptions.png", "adversarial.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0, name
    assert "| plain |" in (tmp_path / "eval" / "results.md").read_text()


@pytest.mark.slow
def test_bpda_attack_beats_naive_attack_through_smoothing(trained_run):
    common = dict(limit_test=128, corruptions=(), resolutions=(), epsilons=[4 / 255], pgd_steps=10, restarts=1,
                  pipelines=("smoothed",), sanity=False, progress=False)  # fmt: skip
    runs = {grad: evaluate_run(trained_run, attack=grad, **common)["pipelines"]["smoothed"] for grad in ATTACK_GRADS}
    assert runs["bpda"]["clean"] == runs["naive"]["clean"] == runs["projection"]["clean"]
    for grad in ("bpda", "projection"):
        assert runs[grad]["robust"]["4/255"] < runs["naive"]["robust"]["4/255"] - 0.1, runs


@pytest.mark.slow
def test_evaluate_tool_writes_its_report(trained_run, tmp_path, capsys):
    from tools import evaluate

    evaluate.main([str(trained_run), "--limit-test", "32", "--corruptions", "shot_noise", "--severities", "3",
                   "--epsilons", "2", "--pgd-steps", "2", "--square-queries", "10", "--resolutions", "2",
                   "--output", str(tmp_path / "e"),
                   "--pipelines", "plain,smoothed,median", "--no-progress"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "| smoothed |" in printed and "robust 2/255" in printed and "shot_noise" in printed
    assert "| smoothed | apgd-projection-dlr-r1 |" in printed and "| smoothed | transfer" in printed
    assert "| median |" in printed
    assert json.loads((tmp_path / "e" / "results.json").read_text())["median_size"] == 3
    with pytest.raises(SystemExit):
        evaluate.main([str(trained_run), "--pipelines", "median", "--median-size", "4", "--no-progress"])
    assert "--median-size must be an odd integer >= 1, got 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main([str(tmp_path), "--no-progress"])
    assert "holds no finished run" in capsys.readouterr().err


def _leaves(tree, prefix=""):
    """Flatten nested results to {"pipeline/metric/...": accuracy}."""
    if isinstance(tree, (dict, list)):
        items = tree.items() if isinstance(tree, dict) else enumerate(tree)
        return {k: v for key, sub in items for k, v in _leaves(sub, f"{prefix}/{key}").items()}
    return {prefix: tree}


@pytest.mark.slow
def test_evaluation_over_two_processes_matches_one(trained_run, tmp_path):
    """Two processes (as ``accelerate launch`` starts them) share the test images and gather one table: the same
    images counted once each. 50 images in batches of 8 leave a last batch that the processes pad, and the padding
    must not be counted."""
    tool = Path(__file__).resolve().parents[1] / "tools" / "evaluate.py"
    flags = [str(trained_run), "--limit-test", "50", "-b", "8", "--corruptions", "shot_noise", "--severities", "3",
             "--epsilons", "4", "--pgd-steps", "2", "--square-queries", "10", "--resolutions", "2",
             "--no-progress"]  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}  # two CPU processes, as in CI
    two = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(tool)]
    launchers = {"one": [sys.executable, str(tool)], "two": two}
    results = {}
    for name, launcher in launchers.items():
        done = subprocess.run(
            [*launcher, *flags, "--output", str(tmp_path / name)], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert results["one"]["test_images"] == results["two"]["test_images"] == 50
    # the per-image counts in the data's order: the same images, each counted once, in either launch
    for pipeline, entry in results["one"]["pipelines"].items():
        theirs = results["two"]["pipelines"][pipeline].pop("per_image")
        for measure, counts in entry.pop("per_image").items():
            ours, other = per_image_counts(counts), per_image_counts(theirs[measure])
            assert len(ours) == len(other) == 50 and (ours != other).sum() <= 1, (pipeline, measure)
    one, two = _leaves(results["one"]["pipelines"]), _leaves(results["two"]["pipelines"])
    assert one.keys() == two.keys() and all((one[k] is None) == (two[k] is None) for k in one)  # severities not run
    one, two = ({k: v for k, v in table.items() if v is not None} for table in (one, two))
    assert len(one) >= 2 * 5  # clean, shot noise, low resolution, FGSM, PGD (and their means) per pipeline
    # the images meet the model in other batch compositions only in the padded last batch: at most one answer
    # may differ there by rounding
    assert all(abs(one[k] - two[k]) <= 1 / 50 + 1e-9 for k in one), {k: (one[k], two[k]) for k in one}


def test_the_corruption_cache_returns_what_corrupt_returns():
    from isvs_triton.robustness import evaluate

    x, index = crops(32, 4, seed=21), torch.arange(10, 14)
    evaluate._corrupted.clear()
    for _ in range(2):  # made, then read back from the cache
        cached = evaluate._corrupt_cached(x, index, "fingerprint", "snow", 2, "auto", 0)
        torch.testing.assert_close(cached, corrupt(x, "snow", 2, index=index), atol=0, rtol=0)
    assert len(evaluate._corrupted) == 1
    other = evaluate._corrupt_cached(x, index + 1, "fingerprint", "snow", 2, "auto", 0)
    assert len(evaluate._corrupted) == 2 and not torch.equal(other, cached), "other images, other entry"
