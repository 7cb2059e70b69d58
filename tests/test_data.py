"""The embedded data, the images-to-tensors path and the on-device augmentation."""

import numpy as np
import pytest
import torch

from isvs_triton.data import AUGMENT_DRAWS, augment, load_data, photo_patches, sample_uniform, to_tensor


def test_embedded_data_is_real_disjoint_and_deterministic():
    data = load_data()
    assert (data.num_classes, data.image_size) == (10, 32)
    assert len(data.train) >= 2000 and len(data.test) >= 500
    assert np.bincount(data.train["label"]).min() == len(data.train) // 10
    first = np.asarray(data.train[0]["image"])
    assert first.shape == (32, 32, 3) and first.std() / 255 >= 0.02
    assert np.array_equal(np.asarray(photo_patches.__wrapped__()["train"][0]["image"]), first), "same on every build"
    train = {np.asarray(r["image"]).tobytes() for r in data.train}
    assert not any(np.asarray(r["image"]).tobytes() in train for r in data.test), "test patches never seen in training"


def test_to_tensor_resizes_the_shorter_side_and_centre_crops():
    from PIL import Image

    wide = Image.fromarray(np.tile(np.arange(80, dtype=np.uint8)[None, :, None], (40, 1, 3)))
    out = to_tensor(wide, 20)
    assert out.shape == (3, 20, 20) and out.dtype == torch.uint8
    assert 18 <= out[0, 10, 0] <= 24 and 56 <= out[0, 10, -1] <= 62, "the centre half of the ramp 0..79 is kept"
    grey = Image.fromarray(np.full((8, 8), 7, dtype=np.uint8))
    assert torch.equal(to_tensor(grey, 8), torch.full((3, 8, 8), 7, dtype=torch.uint8))


def test_draws_depend_on_seed_epoch_and_index_only():
    u = sample_uniform(torch.arange(1000), epoch=2, seed=0, count=AUGMENT_DRAWS)
    assert u.shape == (1000, AUGMENT_DRAWS) and 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02 and abs(u.std() - 12**-0.5) < 0.02
    assert torch.equal(sample_uniform(torch.tensor([7, 3]), 2, 0, AUGMENT_DRAWS), u[[7, 3]]), "batch layout free"
    assert not torch.equal(sample_uniform(torch.arange(5), 3, 0, AUGMENT_DRAWS), u[:5])
    assert not torch.equal(sample_uniform(torch.arange(5), 2, 1, AUGMENT_DRAWS), u[:5])


def _draws(b, **columns):
    u = torch.full((b, AUGMENT_DRAWS), 0.5)
    for i, v in columns.items():
        u[:, int(i[1:])] = v
    return u


def test_crop_and_flip_at_cifar_size():
    x = torch.rand(2, 3, 32, 32)
    centre = _draws(2, u0=0.9, u1=4.5 / 9, u2=4.5 / 9)  # no flip, offset 4 of the 4-pixel padding: the image itself
    assert torch.equal(augment(x, centre), x)
    assert torch.equal(augment(x, _draws(2, u0=0.1, u1=4.5 / 9, u2=4.5 / 9)), x.flip(-1))
    shifted = augment(x, _draws(2, u0=0.9, u1=0.0, u2=8.5 / 9))  # 4 rows up (reflected), 4 columns left
    assert torch.equal(shifted[..., 4:, :-4], x[..., :-4, 4:])
    random = augment(x, sample_uniform(torch.arange(2), 0, 0, AUGMENT_DRAWS))
    assert random.shape == x.shape and random.is_contiguous()


def test_random_resized_crop_at_imagenet_size():
    x = torch.rand(2, 3, 96, 96)
    whole = _draws(2, u0=0.9, u1=1.0, u2=0.5)  # area 1, aspect 1, centred: the identity
    torch.testing.assert_close(augment(x, whole), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(augment(x, _draws(2, u0=0.1, u1=1.0, u2=0.5)), x.flip(-1), atol=1e-5, rtol=0)
    zoom = augment(x, _draws(2, u0=0.9, u1=0.0, u2=0.5))  # 8 % of the area, upsampled: smoother than the input
    assert zoom.shape == x.shape and zoom.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()


@pytest.mark.parametrize("size", [32, 224])
def test_load_data_image_sizes(size):
    assert load_data(image_size=size, limit_train=4, limit_test=4).image_size == size
