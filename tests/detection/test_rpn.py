"""The RPN: head shapes (2 scores + 4 deltas per anchor), anchor labelling, proposal selection vs torchvision."""

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork as TVRPN

from cnnlab.detection.rpn import RegionProposalNetwork, RPNHead, objectness, select_proposals


def test_head_gives_2_scores_and_4_deltas_per_anchor_in_anchor_order():
    head = RPNHead(8, 9)
    assert head.cls_logits.out_channels == 18 and head.bbox_pred.out_channels == 36
    x = torch.randn(2, 8, 4, 5)
    logits, deltas = head(x)
    assert logits.shape == (2, 4 * 5 * 9, 2) and deltas.shape == (2, 180, 4)
    raw = head.cls_logits(head.relu(head.conv(x)))  # channel 2a+c of position (i, j) -> row (i*5+j)*9+a
    assert torch.equal(logits[1, (2 * 5 + 3) * 9 + 4], raw[1, 8:10, 2, 3])
    torch.testing.assert_close(objectness(torch.tensor([[0.0, 0.0], [0.0, 2.0]])), torch.tensor([0.5, 0.8808]),
                               atol=1e-4, rtol=0)


def test_anchor_labels_follow_the_iou_rule():
    rpn = RegionProposalNetwork(8)
    anchors = torch.tensor([[0.0, 0, 32, 32], [0, 0, 32, 20], [64, 64, 96, 96], [2, 2, 30, 30]])
    labels, matched = rpn.label_anchors(anchors, torch.tensor([[0.0, 0, 32, 32]]))
    # IoU 1 -> 1; 0.625 -> ignored (0.3..0.7); 0 -> background; 0.766 -> 1
    assert labels.tolist() == [1, -1, 0, 1]
    assert matched[0].tolist() == [0, 0, 32, 32]
    labels, _ = rpn.label_anchors(anchors, torch.zeros(0, 4))
    assert labels.tolist() == [0, 0, 0, 0]  # an image without objects: all background


def test_select_proposals_equals_torchvision_filter_proposals():
    g = torch.Generator().manual_seed(0)
    n = 600
    xy = torch.rand(2, n, 2, generator=g) * 120 - 10
    boxes = torch.cat([xy, xy + 8 + torch.rand(2, n, 2, generator=g) * 50], -1)
    logits = torch.randn(2, n, 2, generator=g)
    tv = TVRPN(AnchorGenerator(), None, 0.7, 0.3, 256, 0.5, dict(training=300, testing=300),
               dict(training=80, testing=80), 0.7)
    tv.eval()
    tv_boxes, tv_scores = tv.filter_proposals(boxes, logits[..., 1] - logits[..., 0], [(128, 128)] * 2, [n])
    for i in range(2):
        mine, scores = select_proposals(boxes[i], objectness(logits[i]), (128, 128), 300, 80, 0.7)
        assert len(mine) == 80
        torch.testing.assert_close(mine, tv_boxes[i])
        torch.testing.assert_close(scores, tv_scores[i])


def test_rpn_losses_and_proposal_counts():
    torch.manual_seed(0)
    rpn = RegionProposalNetwork(8, post_nms_top_n=(50, 20))
    feats = torch.randn(2, 8, 8, 8)
    targets = [{"boxes": torch.tensor([[10.0, 10, 50, 60]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    rpn.train()
    props, losses = rpn(feats, (128, 128), targets)
    assert set(losses) == {"rpn_cls", "rpn_box"} and all(v.ndim == 0 for v in losses.values())
    assert abs(losses["rpn_cls"].item() - 0.6931) < 0.01  # N(0, 0.01^2) weights: both classes ~ 1/2
    assert all(len(p) == 50 for p in props)
    rpn.eval()
    props, losses = rpn(feats, (128, 128))
    assert losses == {} and all(len(p) == 20 for p in props)
    assert all(bool((p >= 0).all() and (p <= 128).all()) for p in props)  # clipped to the image
