"""DenseDataset + DenseLoader: values, joint augmentation alignment, exact resume, sharding, errors."""

import pytest
import torch

from cnnlab.data import DenseAugment, DenseDataset, DenseLoader, build_dense_loader, make_scenes, random_split
from cnnlab.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes("train", 40, size=64, scale=(1.0, 1.5), data_dir=tmp_path_factory.mktemp("dl"))


def _same(a, b):
    (xa, ta), (xb, tb) = a, b
    return (torch.equal(xa, xb) and torch.equal(ta["mask"], tb["mask"]) and torch.equal(ta["index"], tb["index"])
            and all(torch.equal(p, q) for p, q in zip(ta["boxes"], tb["boxes"]))
            and all(torch.equal(p, q) for p, q in zip(ta["labels"], tb["labels"])))


def test_batches_are_normalised_slices_with_targets(scenes):
    loader = build_dense_loader(scenes, batch_size=16, shuffle=False)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape[0] for b in batches] == [16, 16, 8]
    x, t = batches[1]
    assert x.dtype == torch.float32 and x.shape == (16, 1, 64, 64)
    expect = (scenes.images[16:32].float() / 255 - scenes.mean[0]) / scenes.std[0]
    assert torch.allclose(x, expect, atol=1e-5)
    assert t["mask"].dtype == torch.int64 and torch.equal(t["mask"], scenes.masks[16:32].long())
    assert torch.equal(t["index"], torch.arange(16, 32))
    assert all(torch.equal(b, scenes.boxes[16 + k]) for k, b in enumerate(t["boxes"]))
    assert all(torch.equal(lb, scenes.labels[16 + k]) for k, lb in enumerate(t["labels"]))


def _aligned(x, mask, boxes, labels, tol):
    """Each class's mask pixels lie within (tol px of) the union of its boxes; every box holds some of them."""
    for i in range(x.shape[0]):
        m = mask[i]
        for b, c in zip(boxes[i].tolist(), labels[i].tolist()):
            x0, y0, x1, y1 = (round(v) for v in b)
            assert (m[max(y0 - tol, 0):y1 + tol, max(x0 - tol, 0):x1 + tol] == c).any(), (i, b, c)
        for c in set(m.unique().tolist()) - {0, 255}:
            cover = torch.zeros_like(m, dtype=torch.bool)
            for b in boxes[i][labels[i] == c].tolist():
                x0, y0, x1, y1 = (round(v) for v in b)
                cover[max(y0 - tol, 0):y1 + tol, max(x0 - tol, 0):x1 + tol] = True
            assert not ((m == c) & ~cover).any(), (i, c)
        # the image moved with the mask: item pixels (> threshold) sit on (within tol px of) labelled pixels
        labelled = torch.nn.functional.max_pool2d((m != 0).float()[None], 2 * tol + 1, 1, tol)[0] > 0
        assert not ((x[i, 0] > 40) & ~labelled).any(), i


def test_crop_and_flip_keep_image_mask_boxes_aligned(scenes):
    aug = DenseAugment.from_spec("crop:24,flip")
    x, m, b, lb = aug(scenes.images, scenes.masks, scenes.boxes, scenes.labels, torch.Generator().manual_seed(0))
    assert x.dtype == torch.uint8 and m.dtype == torch.uint8 and x.shape == scenes.images.shape
    _aligned(x, m, b, lb, tol=0)
    assert (m == 255).any()  # padding is ignore in the mask ...
    assert not torch.equal(m, scenes.masks)
    moved = sum(not torch.equal(p, q) for p, q in zip(b, scenes.boxes))
    assert moved > 30
    # ... and crops move boxes by whole pixels: widths are unchanged unless a box was clipped by the border
    inside = [(p[:, 0] > 0) & (p[:, 2] < 64) & (p[:, 1] > 0) & (p[:, 3] < 64) for p in b]
    assert all(q.shape[0] >= p.shape[0] for p, q in zip(b, scenes.boxes))
    n_same = sum(int(k.sum()) for k in inside)
    assert n_same > 20


def test_scale_keeps_alignment_within_a_pixel(scenes):
    aug = DenseAugment.from_spec("scale:0.6-1.6,crop:8,flip")
    x, m, b, lb = aug(scenes.images, scenes.masks, scenes.boxes, scenes.labels, torch.Generator().manual_seed(1))
    _aligned(x, m, b, lb, tol=1)
    assert x.dtype == torch.uint8 and (m == 255).any()
    # boxes scale with the content: total box area changes, the boxes follow the image
    area = lambda bs: sum(float(((q[:, 2] - q[:, 0]) * (q[:, 3] - q[:, 1])).sum()) for q in bs)  # noqa: E731
    assert abs(area(b) / area(scenes.boxes) - 1) > 0.02


def test_flip_twice_is_identity_and_flip_mirrors_boxes(scenes):
    aug = DenseAugment.from_spec("flip")
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    once = aug(scenes.images, scenes.masks, scenes.boxes, scenes.labels, g())
    twice = aug(*once, g())
    assert torch.equal(twice[0], scenes.images) and torch.equal(twice[1], scenes.masks)
    assert all(torch.equal(p, q) for p, q in zip(twice[2], scenes.boxes))
    flipped = [i for i in range(len(scenes)) if not torch.equal(once[0][i], scenes.images[i])]
    assert 8 < len(flipped) < 32
    i = flipped[0]
    assert torch.equal(once[0][i], scenes.images[i].flip(-1)) and torch.equal(once[1][i], scenes.masks[i].flip(-1))
    b, ref = once[2][i], scenes.boxes[i]
    assert torch.equal(b[:, [0, 2]], 64 - ref[:, [2, 0]]) and torch.equal(b[:, [1, 3]], ref[:, [1, 3]])


def test_boxes_pushed_out_are_dropped():
    b = 64
    img = torch.zeros(b, 1, 32, 32, dtype=torch.uint8)
    mask = torch.zeros(b, 32, 32, dtype=torch.uint8)
    mask[:, 0:3, 0:3] = 1
    mask[:, 10:20, 10:20] = 2
    boxes = [torch.tensor([[0.0, 0.0, 3.0, 3.0], [10.0, 10.0, 20.0, 20.0]])] * b
    labels = [torch.tensor([1, 2])] * b
    _, m, bx, lb = DenseAugment(crop=8)(img, mask, boxes, labels, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)  # the same draws: row offsets, then column offsets
    oy, ox = torch.randint(0, 17, (b,), generator=g), torch.randint(0, 17, (b,), generator=g)
    survives = (oy < 11) & (ox < 11)  # a 3 px box at the corner moves by 8 - offset
    assert 5 < int(survives.sum()) < b - 5
    for k in range(b):
        assert bx[k].shape[0] == 1 + int(survives[k]) and lb[k].tolist() == [1, 2][1 - int(survives[k]):]
        assert bool((m[k] == 1).any()) == bool(survives[k])
        assert torch.equal(bx[k][-1], torch.tensor([18.0, 18.0, 28.0, 28.0]) - torch.stack([ox[k], oy[k]] * 2))


def test_resume_from_step_equals_uninterrupted(scenes):
    kw = dict(batch_size=6, augment="scale:0.8-1.25,crop:8,flip", seed=3)
    full = DenseLoader(scenes, **kw)
    full.set_epoch(2)
    ref = list(full)
    resumed = DenseLoader(scenes, **kw)
    resumed.set_epoch(2)
    tail = list(resumed.iter_from(4))
    assert len(tail) == len(ref) - 4 and all(_same(p, q) for p, q in zip(ref[4:], tail))
    assert list(resumed.iter_from(len(resumed))) == []
    other = DenseLoader(scenes, **kw)
    other.set_epoch(3)
    assert not _same(next(iter(other)), ref[0])
    seeded = DenseLoader(scenes, **{**kw, "seed": 4})
    seeded.set_epoch(2)
    assert not _same(next(iter(seeded)), ref[0])


@pytest.mark.parametrize("drop_last", [True, False])
def test_sharding_disjoint_equal_and_covering(scenes, drop_last):
    world = 3
    loaders = [DenseLoader(scenes, batch_size=5, rank=r, world_size=world, drop_last=drop_last, seed=2,
                           augment="flip") for r in range(world)]
    parts = []
    for ld in loaders:
        ld.set_epoch(1)
        parts.append(torch.cat([t["index"] for _, t in ld]))
    assert len({len(ld) for ld in loaders}) == 1 and len({p.numel() for p in parts}) == 1
    allidx = torch.cat(parts)
    if drop_last:
        assert allidx.numel() == 30 and allidx.unique().numel() == 30  # 13 per rank, 2 full batches of 5
    else:
        assert allidx.numel() == 42 and torch.equal(allidx.unique(), torch.arange(40))


def test_channels_last_mean_std_override_and_errors(scenes):
    x, _ = next(iter(DenseLoader(scenes, batch_size=4, shuffle=False, channels_last=True, mean=(0.5,), std=(0.5,))))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x, scenes.images[:4].float() / 127.5 - 1, atol=1e-5)
    with pytest.raises(ConfigError, match="unknown dense augmentation"):
        DenseLoader(scenes, augment="rotate")
    with pytest.raises(ConfigError, match="LO <= HI"):
        DenseAugment.from_spec("scale:1.5-0.5")
    with pytest.raises(ConfigError, match="DenseDataset"):
        DenseLoader(object())
    assert DenseAugment.from_spec("scale:0.5-2,crop:4,flip").spec == "scale:0.5-2,crop:4,flip"


def test_dataset_checks_subset_and_split(scenes):
    sub = scenes.subset([3, 1, 3])
    assert len(sub) == 3 and torch.equal(sub.boxes[0], scenes.boxes[3]) and sub.mean == scenes.mean
    assert torch.equal(sub.extras["source"][1], scenes.extras["source"][1])
    img, target = scenes[2]
    assert img.shape == (1, 64, 64) and set(target) == {"mask", "boxes", "labels"}
    tr, va = random_split(scenes, 0.25, seed=0)
    assert len(tr) == 30 and len(va) == 10 and va.mean == scenes.mean
    imgs = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(DataError, match="lies outside the 8x8 image"):
        DenseDataset(imgs, boxes=[torch.tensor([[0.0, 0.0, 9.0, 4.0]])], labels=[torch.tensor([1])],
                     classes=["background", "a"])
    with pytest.raises(DataError, match="has label 2"):
        DenseDataset(imgs, boxes=[torch.tensor([[0.0, 0.0, 4.0, 4.0]])], labels=[torch.tensor([2])],
                     classes=["background", "a"])
    with pytest.raises(DataError, match="holds value 7"):
        DenseDataset(imgs, masks=torch.full((1, 8, 8), 7, dtype=torch.uint8), classes=["background", "a"])
    with pytest.raises(DataError, match="start with 'background'"):
        DenseDataset(imgs, masks=torch.zeros(1, 8, 8, dtype=torch.uint8), classes=["a", "b"])
    ok = DenseDataset(imgs, masks=torch.full((1, 8, 8), 255, dtype=torch.uint8), classes=["background", "a"])
    assert ok.has_masks and not ok.has_boxes and ok.pixel_counts().tolist() == [0, 0]
