"""The procedure registry (train/procedures.py): one entry is all a new procedure needs."""

import pytest
import torch

import isvs_triton as isvs
from isvs_triton.config import FAST
from isvs_triton.rng import sample_uniform
from isvs_triton.train import augmix, parse_args, procedures
from isvs_triton.train.smoother import Smoother


@pytest.fixture
def inverted():
    """A toy baseline registered for one test: it trains on inverted images."""
    procedure = procedures.register(
        procedures.Procedure(
            "invert",
            "1 - x",
            smoothed_at_test=False,
            transform=lambda config, x, epoch, index: 1 - x,
        )
    )
    yield procedure
    del procedures.REGISTRY[procedure.name]


def test_one_entry_is_accepted_by_the_settings_and_applied_by_the_loop(inverted):
    config = parse_args(["--procedure", "invert", "--epochs", "2"])
    assert config.sparsity_at(0) is None and config.total_epochs == 2
    x = torch.rand(3, 3, 8, 8)
    out = Smoother(config, 3, 8).train_batch(x, 0, torch.arange(3))
    assert torch.equal(out, 1 - x)


def test_unknown_procedures_are_refused_with_the_registry_as_the_list():
    with pytest.raises(ValueError, match=r"unknown --procedure 'curriculum'; accepted: \['standard', 'fixed'"):
        parse_args(["--procedure", "curriculum"])


def test_the_registry_decides_schedules_and_epochs():
    iterative = parse_args(["--procedure", "iterative", "--epochs", "5", "--schedule", "0.2,0.4,0.6"])
    assert [iterative.sparsity_at(e) for e in range(5)] == [0.2, 0.2, 0.4, 0.4, 0.6]
    assert iterative.test_sparsity == 0.6
    finetune = parse_args(["--procedure", "finetune", "--epochs", "3", "--finetune-epochs", "2", "--sparsity", "0.5"])
    assert finetune.total_epochs == 5 and [finetune.sparsity_at(e) for e in range(5)] == [None] * 3 + [0.5] * 2
    assert procedures.get("finetune").epoch_split({"epochs": 12}) == {"epochs": 9, "finetune_epochs": 3}
    assert procedures.BASELINES == ("blur", "lowpass", "tv", "noise", "augmix", "photometric")
    assert all(not procedures.get(name).smoothed_at_test for name in procedures.BASELINES)
    with pytest.raises(ValueError, match="registered twice"):
        procedures.register(procedures.Procedure("fixed", "again"))


def test_isvs_augmentation_draws_each_images_sparsity_from_seed_epoch_and_index():
    """augment: every image has its own sparsity in [--sparsity-min, 1), the same in any batch composition, new each
    epoch, and the smoothing the loop applies is sparsify at exactly those sparsities."""
    config = parse_args(["--procedure", "augment", "--sparsity-min", "0.4", "--solver", "fast"])
    draw = procedures.get("augment").sparsity_per_image
    everyone = draw(config, 3, torch.arange(500))
    assert bool(((everyone >= 0.4) & (everyone < 1)).all()) and float(everyone.std()) > 0.1
    assert float(everyone.min()) < 0.45 and float(everyone.max()) > 0.95, "the whole range is drawn"
    assert torch.equal(draw(config, 3, torch.tensor([17, 2])), everyone[[17, 2]]), "batch composition free"
    assert not torch.equal(draw(config, 4, torch.arange(500)), everyone), "a new draw each epoch"
    x, index = torch.rand(4, 3, 16, 16), torch.tensor([5, 9, 1, 400])
    out = Smoother(config, 500, 16).train_batch(x, 3, index)
    expected = isvs.sparsify(x, everyone[index], **config.smoothing(0.5).kwargs())
    assert torch.equal(out, expected)
    assert not procedures.get("augment").baseline and "augment" in procedures.PROCEDURES


def test_sparsity_one_is_the_image_itself():
    """The top of augment's range leaves an image unchanged: sparsity 1 keeps every jump, per image too."""
    x = torch.rand(3, 3, 12, 12)
    assert torch.equal(isvs.sparsify(x, torch.tensor([1.0, 1.0, 1.0]), **FAST.kwargs()), x)
    out = isvs.sparsify(x, torch.tensor([1.0, 0.5, 1.0]))
    assert torch.equal(out[[0, 2]], x[[0, 2]]) and not torch.equal(out[1], x[1])


@pytest.mark.parametrize("isvs_procedure", ["fixed", "augment"])
@pytest.mark.parametrize("augmentation", ["noise", "photometric", "augmix"])
def test_isvs_with_an_augmentation_augments_first_then_smooths(isvs_procedure, augmentation):
    """fixed-noise, augment-augmix, ...: the baseline's transform, then the ISVS procedure's smoothing of the
    augmented batch, each with its own settings; --cache-smoothed (which would smooth before augmenting) refused."""
    name = f"{isvs_procedure}-{augmentation}"
    config = parse_args(["--procedure", name, "--solver", "fast"])
    x, index = torch.rand(3, 3, 16, 16), torch.arange(3)
    out = Smoother(config, 3, 16).train_batch(x, 1, index)
    augmented = procedures.get(augmentation).transform(config, x, 1, index)
    smoothing = procedures.get(isvs_procedure)
    sparsity = smoothing.sparsity_per_image(config, 1, index) if smoothing.sparsity_per_image else config.sparsity_at(1)
    assert torch.equal(out, isvs.sparsify(augmented, sparsity, **config.smoothing(0.5).kwargs()))
    assert name in procedures.PROCEDURES
    with pytest.raises(ValueError, match="--cache-smoothed does not apply"):
        parse_args(["--procedure", name, "--cache-smoothed"])


def test_photometric_augmentation_is_the_contrast_and_brightness_definitions():
    """photometric: per image, contrast scaled about the image's mean grey (ITU-R 601 weights, as kornia and
    ImageNet-C's contrast), then a brightness shift, clipped; written here from the definitions against the kornia
    operations the baseline calls, with factors drawn per image from (seed, epoch, index) within the strength."""
    config = parse_args(["--procedure", "photometric", "--photometric-strength", "0.5"])
    x, index = torch.rand(6, 3, 10, 10), torch.arange(6)
    out = procedures.get("photometric").transform(config, x, 2, index)
    u = 2 * sample_uniform(index, 2, config.seed + 7727, 2) - 1
    brightness, contrast = 0.5 * u[:, 0], 1 + 0.5 * u[:, 1]
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean((1, 2)).view(-1, 1, 1, 1)
    scaled = ((x - grey) * contrast.view(-1, 1, 1, 1) + grey).clamp(0, 1)
    expected = (scaled + brightness.view(-1, 1, 1, 1)).clamp(0, 1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert float(brightness.abs().max()) <= 0.5 and float((contrast - 1).abs().max()) <= 0.5
    again = procedures.get("photometric").transform(config, x[[3, 1]], 2, index[[3, 1]])
    assert torch.equal(again, out[[3, 1]]), "batch composition free"
    assert procedures.get("photometric").baseline


def _pil_operations(width: int):
    """AugMix's nine operations as the reference code writes them with PIL, on an 8-bit PIL image."""
    from PIL import Image, ImageOps

    def affine(image, matrix):
        return image.transform(image.size, Image.AFFINE, matrix, resample=Image.BILINEAR)

    return {
        "autocontrast": lambda p, level, sign: ImageOps.autocontrast(p),
        "equalize": lambda p, level, sign: ImageOps.equalize(p),
        "posterize": lambda p, level, sign: ImageOps.posterize(p, 4 - int(level * 4 / 10)),
        "rotate": lambda p, level, sign: p.rotate(sign * int(level * 30 / 10), resample=Image.BILINEAR),
        "solarize": lambda p, level, sign: ImageOps.solarize(p, 256 - int(level * 256 / 10)),
        "shear_x": lambda p, level, sign: affine(p, (1, sign * level * 0.3 / 10, 0, 0, 1, 0)),
        "shear_y": lambda p, level, sign: affine(p, (1, 0, 0, sign * level * 0.3 / 10, 1, 0)),
        "translate_x": lambda p, level, sign: affine(p, (1, 0, sign * int(level * width / 3 / 10), 0, 1, 0)),
        "translate_y": lambda p, level, sign: affine(p, (1, 0, 0, 0, 1, sign * int(level * width / 3 / 10))),
    }


def _eight_bit_batch():
    torch.manual_seed(0)
    x = (torch.rand(12, 3, 28, 28) * 255).round()
    x[:4] = (torch.rand(4, 1, 28, 28) * 40 + 100).round().expand(4, 3, 28, 28)  # low contrast, greyscale
    x[4:6] = 0
    x[4:6, :, 8:20, 10:22] = 200  # two values: equalize's and autocontrast's edge cases
    return x


@pytest.mark.parametrize("name", list(augmix.OPERATION_NAMES))
def test_each_augmix_operation_is_pils(name):
    """The batched operations against PIL's, image by image at random levels and signs: the lookup tables exactly,
    the bilinear resamplings within one 8-bit level (PIL rounds in integer arithmetic)."""
    import numpy as np
    from PIL import Image

    x = _eight_bit_batch()
    level, sign = 0.1 + 9.9 * torch.rand(len(x)), torch.where(torch.rand(len(x)) < 0.5, -1.0, 1.0)
    ours = augmix.apply_operation(x, [name] * len(x), level, sign)
    reference = _pil_operations(28)[name]
    for i in range(len(x)):
        image = Image.fromarray(x[i].to(torch.uint8).permute(1, 2, 0).numpy())
        theirs = torch.from_numpy(np.asarray(reference(image, float(level[i]), float(sign[i]))).copy())
        difference = (ours[i].permute(1, 2, 0) - theirs.double()).abs()
        assert float(difference.max()) <= (0 if name in augmix.LOOKUP else 1), (name, i)


def test_augmix_mixes_its_chains_as_the_paper_defines():
    """One operation per chain (depth draws of 0): the output is m x + (1 - m) sum_i w_i op_i(x) with PIL's
    operations, m and the Dirichlet weights from the draws; each image's result does not depend on its batch, and a
    greyscale image stays greyscale."""
    import numpy as np
    from PIL import Image

    x = _eight_bit_batch()
    u = torch.rand(len(x), augmix.DRAWS, dtype=torch.float64)
    per_chain = 1 + 3 * augmix.DEPTH
    for chain in range(augmix.WIDTH):
        u[:, 1 + chain * per_chain] = 0.0  # depth 1
    out = augmix.augmix(x / 255, u, severity=3)
    operations = _pil_operations(28)
    weights = -torch.log1p(-u[:, -augmix.WIDTH :])
    weights = weights / weights.sum(1, keepdim=True)
    for i in range(len(x)):
        image = Image.fromarray(x[i].to(torch.uint8).permute(1, 2, 0).numpy())
        mixed = torch.zeros(28, 28, 3, dtype=torch.float64)
        for chain in range(augmix.WIDTH):
            pick, level, sign = u[i, 2 + chain * per_chain : 5 + chain * per_chain].tolist()
            name = augmix.OPERATION_NAMES[int(pick * 9)]
            chained = operations[name](image, 0.1 + 2.9 * level, -1 if sign < 0.5 else 1)
            mixed += weights[i, chain] * torch.from_numpy(np.asarray(chained).copy()).double()
        expected = (u[i, 0] * x[i].permute(1, 2, 0) + (1 - u[i, 0]) * mixed) / 255
        assert float((out[i].permute(1, 2, 0) - expected).abs().max()) <= 1.01 / 255, i
    assert torch.equal(augmix.augmix(x[[7, 2]] / 255, u[[7, 2]]), out[[7, 2]]), "batch composition free"
    assert torch.equal(out[:4, 0], out[:4, 1]) and torch.equal(out[:4, 0], out[:4, 2]), "greyscale stays greyscale"
    assert procedures.get("augmix").baseline
