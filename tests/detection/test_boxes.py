"""Box coding, matching and sampling against torchvision's BoxCoder / Matcher / BalancedPositiveNegativeSampler."""

import torch
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.ops import box_iou

from cnnlab.detection.boxes import BELOW_LOW, BETWEEN, ROI_WEIGHTS, decode, encode, match, sample_balanced


def _random_boxes(n, seed, size=128.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.7
    wh = 4 + torch.rand(n, 2, generator=g) * size * 0.3
    return torch.cat([xy, xy + wh], 1)


def test_encode_equals_torchvision_boxcoder():
    gt, anchors = _random_boxes(50, 0), _random_boxes(50, 1)
    for weights in ((1.0, 1.0, 1.0, 1.0), ROI_WEIGHTS):
        ref = BoxCoder(weights).encode_single(gt, anchors)
        torch.testing.assert_close(encode(gt, anchors, weights), ref)


def test_decode_equals_torchvision_and_round_trips():
    gt, anchors = _random_boxes(40, 2), _random_boxes(40, 3)
    coder = BoxCoder(ROI_WEIGHTS)
    deltas = encode(gt, anchors, ROI_WEIGHTS)
    torch.testing.assert_close(decode(deltas, anchors, ROI_WEIGHTS), coder.decode_single(deltas, anchors))
    torch.testing.assert_close(decode(deltas, anchors, ROI_WEIGHTS), gt, atol=1e-4, rtol=1e-5)
    per_class = torch.cat([deltas, deltas * 0.5], 1)  # [N, 8]: two classes' deltas per reference
    out = decode(per_class, anchors, ROI_WEIGHTS)
    assert out.shape == (40, 8)
    torch.testing.assert_close(out[:, :4], gt, atol=1e-4, rtol=1e-5)


def test_known_encoding_by_hand():
    # anchor centre (10, 10), 10x10; gt centre (15, 10), 20x10 -> (0.5, 0, log 2, 0)
    t = encode(torch.tensor([[5.0, 5.0, 25.0, 15.0]]), torch.tensor([[5.0, 5.0, 15.0, 15.0]]))
    torch.testing.assert_close(t, torch.tensor([[0.5, 0.0, 0.6931472, 0.0]]))


def test_match_hand_made_case():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]])
    cands = torch.tensor([[0.0, 0.0, 10.0, 10.0],    # IoU 1 with gt0 -> 0
                          [0.0, 0.0, 10.0, 5.0],     # IoU 0.5 with gt0 -> ignored (0.3..0.7)
                          [50.0, 50.0, 60.0, 60.0],  # no overlap -> background
                          [20.0, 20.0, 30.0, 30.0]])  # IoU 0.25 with gt1, its best -> kept as 1
    iou = box_iou(gt, cands)
    assert match(iou, 0.7, 0.3).tolist() == [0, BETWEEN, BELOW_LOW, 1]
    assert match(iou, 0.7, 0.3, keep_best=False).tolist() == [0, BETWEEN, BELOW_LOW, BELOW_LOW]
    assert match(torch.zeros(0, 4), 0.7, 0.3).tolist() == [BELOW_LOW] * 4


def test_match_equals_torchvision_matcher():
    gt, cands = _random_boxes(6, 4), _random_boxes(300, 5)
    iou = box_iou(gt, cands)
    for keep in (True, False):
        assert torch.equal(match(iou, 0.5, 0.4, keep), Matcher(0.5, 0.4, keep)(iou))


def test_sample_balanced_counts():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 20)
    g = torch.Generator().manual_seed(0)
    pos, neg = sample_balanced(labels, 16, 0.25, g)
    assert len(pos) == 4 and len(neg) == 12
    assert (labels[pos] >= 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 4 and len(set(neg.tolist())) == 12
    pos, neg = sample_balanced(torch.tensor([2, 0, 0, -1]), 256, 0.5, g)  # too few: take all, ignored never
    assert sorted(pos.tolist()) == [0] and sorted(neg.tolist()) == [1, 2]
