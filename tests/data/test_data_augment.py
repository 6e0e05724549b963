"""Each batched augmentation does what it says, checked against the random draws it made."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import BatchAugment
from cnnlab.data.augment import (
    cutout,
    gaussian_noise,
    random_affine,
    random_crop,
    random_crop_flip,
    random_flip,
)
from cnnlab.errors import ConfigError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flip_equals_torch_flip(fmnist_test):
    x = fmnist_test.images[:8]
    assert torch.equal(random_flip(x, _gen(), p=1.0), torch.flip(x, dims=[3]))
    assert torch.equal(random_flip(x, _gen(), p=0.0), x)
    g = _gen(3)
    mask = torch.rand(8, generator=_gen(3)) < 0.5
    out = random_flip(x, g)
    for i in range(8):
        assert torch.equal(out[i], x[i].flip(2) if mask[i] else x[i])
    assert out.dtype == torch.uint8


def test_crop_with_padding_keeps_shape_and_shifts_content(fmnist_test):
    x = fmnist_test.images[:16]
    pad = 4
    out = random_crop(x, pad, _gen(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    g = _gen(1)
    oy = torch.randint(0, 2 * pad + 1, (16,), generator=g)
    ox = torch.randint(0, 2 * pad + 1, (16,), generator=g)
    xp = F.pad(x, (pad,) * 4)
    for i in range(16):
        assert torch.equal(out[i], xp[i, :, oy[i]:oy[i] + 28, ox[i]:ox[i] + 28])
    # an offset of (pad, pad) is the identity; other offsets move the content by (oy - pad, ox - pad)
    assert ((oy != pad) | (ox != pad)).any()


def test_fused_crop_flip_equals_sequential(fmnist_test):
    x = fmnist_test.images[:32]
    g = _gen(5)
    seq = random_flip(random_crop(x, 3, g), g)
    assert torch.equal(random_crop_flip(x, 3, _gen(5)), seq)
    assert torch.equal(random_crop_flip(x.float(), 3, _gen(5)), seq.float())


def _moments(img):
    h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    m = img.double()
    tot = m.sum()
    cy, cx = (m * ys).sum() / tot, (m * xs).sum() / tot
    myy, mxx, mxy = (m * (ys - cy) ** 2).sum(), (m * (xs - cx) ** 2).sum(), (m * (ys - cy) * (xs - cx)).sum()
    return cy.item(), cx.item(), 0.5 * math.atan2(2 * mxy.item(), (mxx - myy).item())


def test_translate_moves_centroid_by_drawn_shift():
    x = torch.zeros(6, 1, 32, 32, dtype=torch.uint8)
    x[:, :, 12:20, 12:20] = 255
    out = random_affine(x, translate=0.15, degrees=0.0, generator=_gen(2))
    g = _gen(2)
    torch.rand(6, generator=g)  # the angle draw
    shift = (torch.rand(6, 2, generator=g) * 2 - 1) * 0.3
    for i in range(6):
        cy, cx, _ = _moments(out[i, 0])
        # affine_grid samples input at (output + t): content moves by -t, and t=1 is half the width.
        assert cx == pytest.approx(15.5 - shift[i, 0].item() * 16, abs=0.3)
        assert cy == pytest.approx(15.5 - shift[i, 1].item() * 16, abs=0.3)


def test_rotate_turns_a_bar_by_drawn_angle():
    x = torch.zeros(6, 1, 33, 33)
    x[:, :, 15:18, 4:29] = 255.0  # a horizontal bar
    out = random_affine(x, translate=0.0, degrees=30.0, generator=_gen(4))
    angles = (torch.rand(6, generator=_gen(4)) * 2 - 1) * math.radians(30)
    for i in range(6):
        _, _, theta = _moments(out[i, 0])
        assert abs(theta) == pytest.approx(abs(angles[i].item()), abs=0.05)
    assert (angles.abs() > 0.1).any()
    ident = random_affine(x, 0.0, 0.0, _gen())
    assert torch.allclose(ident, x, atol=1e-3)


def test_cutout_zeroes_the_drawn_square():
    x = torch.ones(10, 2, 20, 20)
    out = cutout(x, 6, _gen(7))
    g = _gen(7)
    cy, cx = torch.randint(0, 20, (10,), generator=g), torch.randint(0, 20, (10,), generator=g)
    for i in range(10):
        exp = torch.ones(20, 20)
        exp[max(cy[i] - 3, 0):cy[i] + 3, max(cx[i] - 3, 0):cx[i] + 3] = 0
        assert torch.equal(out[i, 0], exp) and torch.equal(out[i, 1], exp)


def test_noise_has_the_stated_std():
    x = torch.zeros(64, 1, 28, 28)
    d = gaussian_noise(x, 0.2, _gen())
    assert d.mean().item() == pytest.approx(0.0, abs=0.01) and d.std().item() == pytest.approx(0.2, rel=0.03)


def test_from_spec_parsing_and_values():
    a = BatchAugment.from_spec("crop,flip")
    assert a.crop == 4 and a.flip and a.rotate is None and a.active
    b = BatchAugment.from_spec("crop:2, rotate:10,cutout:8,noise:0.05,translate")
    assert (b.crop, b.rotate, b.cutout, b.noise, b.translate) == (2, 10.0, 8, 0.05, 0.1)
    assert BatchAugment.from_spec("crop,flip", pad=2).crop == 2
    assert not BatchAugment.from_spec("none").active and not BatchAugment.from_spec("").active
    assert BatchAugment.from_spec(b.spec) == b
    with pytest.raises(ConfigError, match="unknown augmentation 'mixup'"):
        BatchAugment.from_spec("crop,mixup")
    with pytest.raises(ConfigError, match="not a number"):
        BatchAugment.from_spec("rotate:lots")


def test_flip_refused_for_digits_unless_forced(fmnist_test):
    with pytest.raises(ConfigError, match="mirrored digit"):
        BatchAugment.from_spec("crop,flip", dataset="mnist")
    with pytest.raises(ConfigError, match="flip:force"):
        BatchAugment.from_spec("flip", dataset="kmnist-train")
    assert BatchAugment.from_spec("flip:force", dataset="mnist").flip
    assert BatchAugment.from_spec("crop", dataset="mnist").crop == 4
    assert BatchAugment.from_spec("flip", dataset=fmnist_test).flip  # clothes are mirror-symmetric classes


def test_same_generator_same_batch():
    aug = BatchAugment.from_spec("crop,flip,rotate,cutout,noise")
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    a, b = aug(x, _gen(9)), aug(x, _gen(9))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == torch.float32
    assert not torch.equal(a, aug(x, _gen(10)))
