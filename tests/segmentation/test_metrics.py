"""Segmentation metrics: the FCN paper's formulas on a hand-computed confusion matrix, torchmetrics
cross-check, ignore label, accumulation, boundary F1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from cnnlab.segmentation.metrics import (
    SegmentationMeter,
    boundary_f1,
    boundary_map,
    confusion_matrix,
    segmentation_scores,
)

# 2x4 image, 3 classes, one ignored pixel
TARGET = torch.tensor([[[0, 0, 1, 1], [0, 2, 2, 255]]])
PRED = torch.tensor([[[0, 1, 1, 1], [0, 2, 0, 1]]])


def test_hand_computed_confusion_and_scores():
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]  # rows: truth, cols: prediction
    assert confusion_matrix(PRED, TARGET, 3, ignore_index=0).tolist() == [[0, 0, 0], [0, 2, 0], [1, 0, 1]]
    s = segmentation_scores(cm)
    # pixel acc 5/7; mean acc (2/3 + 2/2 + 1/2)/3; IU 2/4, 2/3, 1/2; fw IU (3*1/2 + 2*2/3 + 2*1/2)/7
    assert s["pixel_acc"] == pytest.approx(5 / 7)
    assert s["mean_acc"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert s["iou_per_class"] == pytest.approx([1 / 2, 2 / 3, 1 / 2])
    assert s["mean_iu"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    assert s["fw_iu"] == pytest.approx((3 / 2 + 4 / 3 + 1) / 7)


def test_absent_classes_as_the_reference_code():
    # class 3 absent everywhere: left out; class 4 predicted but absent from the truth: IU 0, no accuracy
    cm = torch.zeros(5, 5, dtype=torch.long)
    cm[:3, :3] = torch.tensor([[2, 1, 0], [0, 2, 0], [1, 0, 1]])
    cm[0, 4] = 2
    s = segmentation_scores(cm)
    assert math.isnan(s["iou_per_class"][3]) and s["iou_per_class"][4] == 0
    assert s["mean_iu"] == pytest.approx((2 / 6 + 2 / 3 + 1 / 2 + 0) / 4)
    assert s["mean_acc"] == pytest.approx((2 / 5 + 1 + 1 / 2) / 3)
    assert s["pixel_acc"] == pytest.approx(5 / 9)


def test_meter_ignores_void_and_sums_batches_and_loss():
    m = SegmentationMeter(3)
    m.update(PRED, TARGET, loss_sum=torch.tensor(3.5))
    r = m.compute()
    assert r["n"] == 7 and r["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r["loss"] == pytest.approx(3.5 / 7) and r["mean_iu"] == pytest.approx(5 / 9)
    # logits in, several batches: the same as one update over everything (one matrix over the set)
    torch.manual_seed(0)
    logits = torch.randn(6, 4, 9, 11)
    target = torch.randint(0, 4, (6, 9, 11))
    target[:, 0] = 255
    whole, parts = SegmentationMeter(4), SegmentationMeter(4)
    whole.update(logits, target)
    for i in range(0, 6, 2):
        parts.update(logits[i:i + 2], target[i:i + 2])
    a, b = whole.compute(), parts.compute()
    assert a["confusion"] == b["confusion"] and a["n"] == 6 * 8 * 11
    assert a["mean_iu"] == b["mean_iu"] and a["boundary_f1"] == b["boundary_f1"]
    # not the mean of per-batch scores
    per_batch = [segmentation_scores(confusion_matrix(logits[i:i + 2].argmax(1), target[i:i + 2], 4))["mean_iu"]
                 for i in range(0, 6, 2)]
    assert abs(np.mean(per_batch) - a["mean_iu"]) > 1e-6
    parts.reset()
    assert parts.compute()["n"] == 0


def test_mean_iu_agrees_with_torchmetrics_jaccard():
    from torchmetrics.classification import MulticlassJaccardIndex

    torch.manual_seed(1)
    k = 6
    target = torch.randint(0, k - 1, (4, 16, 16))  # class 5 never in the truth
    target[:, :3, :3] = 255
    pred = target.clone()
    noise = torch.rand(target.shape) < 0.3
    pred[noise] = torch.randint(0, k, (int(noise.sum()),))
    pred[target == 255] = 3
    m = SegmentationMeter(k)
    m.update(pred, target)
    ours = m.compute()
    jac = MulticlassJaccardIndex(k, average="none", ignore_index=255)(pred, target)
    valid = target != 255
    present = torch.zeros(k, dtype=torch.bool)
    present[target[valid].unique()] = True
    present[pred[valid].unique()] = True
    assert present.sum() == k  # class 5 only predicted: IU 0, counted
    assert ours["iou_per_class"] == pytest.approx(jac.tolist())
    assert ours["mean_iu"] == pytest.approx(jac[present].mean().item())


def _reference_boundary_f1(pred: np.ndarray, target: np.ndarray, tol: int) -> float:
    """Loop-based boundary maps and a chessboard distance transform (scipy), image by image."""
    def bmap(lab):
        h, w = lab.shape
        b = np.zeros_like(lab, dtype=bool)
        for y in range(h):
            for x in range(w):
                for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and lab[yy, xx] != lab[y, x]:
                        b[y, x] = True
        return b

    bp, bt = bmap(pred), bmap(target)
    dt = ndimage.distance_transform_cdt(~bt, metric="chessboard")
    dp = ndimage.distance_transform_cdt(~bp, metric="chessboard")
    p = (dt[bp] <= tol).mean()
    r = (dp[bt] <= tol).mean()
    return 2 * p * r / (p + r)


def test_boundary_f1_on_hand_made_masks():
    t = torch.zeros(32, 32, dtype=torch.long)
    t[8:20, 6:18] = 1
    t[22:28, 20:30] = 2
    # both sides of every edge: inner ring (corners once) + outer ring (4-neighbours: no corners)
    assert boundary_map(t).sum() == (4 * 12 - 4 + 4 * 12) + (2 * (6 + 10) - 4 + 2 * (6 + 10))
    assert boundary_f1(t, t, tolerance=0)["boundary_f1"] == 1.0
    scores = []
    for shift in (1, 2, 3, 5):
        p = torch.roll(t, shifts=(shift, 0), dims=(0, 1))
        f = boundary_f1(p, t, tolerance=2)["boundary_f1"]
        assert f == pytest.approx(_reference_boundary_f1(p.numpy(), t.numpy(), 2))
        scores.append(f)
    assert scores[0] == 1.0 and scores[1] == 1.0 and scores[2] < 0.9 and scores[3] < scores[2] < 0.9
    # a blurred (coarse, blocky) mask scores lower than the sharp one at the same IU scale
    coarse = torch.nn.functional.interpolate(t[None, None].float(), scale_factor=1 / 8, mode="nearest")
    coarse = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="nearest")[0, 0].long()
    assert boundary_f1(coarse, t, tolerance=1)["boundary_f1"] < 0.8


def test_boundary_ignores_void():
    t = torch.zeros(10, 10, dtype=torch.long)
    t[:, 5:] = 255
    p = torch.zeros(10, 10, dtype=torch.long)
    p[:, 5:] = 1  # disagrees only inside the void region
    r = boundary_f1(p, t, tolerance=0)
    assert r["boundary_f1"] == 1.0 and boundary_map(t).sum() == 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_label_map_is_argmax_first_maximum_on_ties(channels_last):
    from cnnlab.segmentation.metrics import label_map

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (4, 5, 16, 12), generator=g).float()  # many ties
    if channels_last:
        scores = scores.contiguous(memory_format=torch.channels_last)
    ref = scores.argmax(1)
    got = label_map(scores)
    assert got.shape == (4, 16, 12) and torch.equal(got, ref)
    assert (ref != scores.shape[1] - 1 - scores.flip(1).argmax(1)).any()  # ties exist, and the first one wins


def test_nll_sum_equals_nll_loss_with_void_pixels():
    from cnnlab.segmentation.task import nll_sum

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(2, 4, 8, 8, generator=g), 1)
    mask = torch.randint(0, 4, (2, 8, 8), generator=g)
    mask[0, :3] = 255
    ref = torch.nn.functional.nll_loss(probs.log(), mask, ignore_index=255, reduction="sum")
    assert float(ref) > 10  # O(1) per pixel, input dependent
    torch.testing.assert_close(nll_sum(probs, mask), ref)
