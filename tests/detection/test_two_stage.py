"""RoI pooling shapes, post-processing vs torchvision, and a few training steps of Fast and Faster R-CNN."""

import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads as TVRoIHeads

from cnnlab.detection.backbones import build_backbone
from cnnlab.detection.boxes import ROI_WEIGHTS, encode
from cnnlab.detection.roi_heads import RoIHeads, pool_rois, postprocess
from cnnlab.detection.two_stage import SlidingWindowProposals, build_detector
from cnnlab.models import create_model, list_models


def test_roi_pooling_shapes():
    feats = torch.randn(2, 16, 8, 8)
    rois = [torch.tensor([[0.0, 0, 64, 64], [10, 20, 90, 100], [0, 0, 128, 128]]), torch.tensor([[5.0, 5, 40, 30]])]
    for pool in ("roi_pool", "roi_align"):
        assert pool_rois(feats, rois, 7, 16, pool).shape == (4, 16, 7, 7)
    # the whole-image RoI max-pools the whole map; RoI pooling quantises x1 = round(48 / 16) = 3 and includes it
    # (the Caffe rule), so [0, 0, 48, 48] pools exactly the top-left 4x4 units at stride 16
    pooled = pool_rois(feats, [torch.tensor([[0.0, 0, 128, 128], [0, 0, 48, 48]]), rois[1][:0]], 7, 16)
    assert torch.equal(pooled[0].amax((1, 2)), feats[0].amax((1, 2)))
    assert torch.equal(pooled[1].amax((1, 2)), feats[0, :, :4, :4].amax((1, 2)))


def test_postprocess_equals_torchvision():
    g = torch.Generator().manual_seed(1)
    k, n = 5, 60
    xy = torch.rand(n, 2, generator=g) * 100
    proposals = [torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 40], 1)] * 2
    logits = torch.randn(2 * n, k, generator=g) * 3
    deltas = torch.randn(2 * n, 4 * k, generator=g)
    tv = TVRoIHeads(None, None, None, 0.5, 0.5, 64, 0.25, None, 0.05, 0.5, 30)
    boxes, scores, labels = tv.postprocess_detections(logits, deltas, proposals, [(128, 128)] * 2)
    mine = postprocess(logits, deltas, proposals, (128, 128), 0.05, 0.5, 30)
    for i in range(2):
        assert len(mine[i]["boxes"]) == len(boxes[i]) == 30
        torch.testing.assert_close(mine[i]["boxes"], boxes[i])
        torch.testing.assert_close(mine[i]["scores"], scores[i])
        assert torch.equal(mine[i]["labels"], labels[i])


def test_roi_sampling_adds_gt_and_balances():
    heads = RoIHeads(8, 16, 4, batch_size_per_image=16, positive_fraction=0.25)
    gt = {"boxes": torch.tensor([[10.0, 10, 50, 50]]), "labels": torch.tensor([3])}
    proposals = torch.tensor([[10.0, 10, 50, 48]] * 6 + [[80.0, 80, 120, 120]] * 30)  # 6 fg (IoU 0.95), 30 bg
    rois, labels, targets = heads.sample(proposals, gt, torch.Generator().manual_seed(0))
    assert len(rois) == 16 and int((labels == 3).sum()) == 4 and int((labels == 0).sum()) == 12
    fg = labels == 3
    torch.testing.assert_close(targets[fg], encode(gt["boxes"].expand(4, 4), rois[fg], ROI_WEIGHTS))
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    _, labels, _ = heads.sample(proposals, none)
    assert labels.tolist() == [0] * 16


def _scenes_batch():
    from cnnlab.data import load_dataset
    from cnnlab.data.dense import build_dense_loader

    ds = load_dataset("fashion-scenes:size=64,max_items=2,n_train=32,n_test=16", "train", data_dir=_ROOT[0])
    return next(iter(build_dense_loader(ds, batch_size=4, shuffle=False)))


_ROOT = [None]


@pytest.fixture(scope="module", autouse=True)
def _root(tmp_path_factory):
    _ROOT[0] = str(tmp_path_factory.mktemp("scenes"))


@pytest.mark.parametrize("method", ["faster-rcnn", "fast-rcnn"])
def test_a_few_steps_lower_the_loss(method):
    torch.manual_seed(0)
    x, t = _scenes_batch()
    targets = [{"boxes": b, "labels": lb} for b, lb in zip(t["boxes"], t["labels"])]
    backbone = build_backbone("fastnet", 1, widths=(16, 32, 32, 64))
    backbone.init_from_data(x)
    det = build_detector(method, backbone, 11)
    det.train()
    opt = torch.optim.Adam(det.parameters(), lr=3e-3)
    gen_losses = []
    for _ in range(8):
        losses = det.losses(x, targets, generator=torch.Generator().manual_seed(0))
        gen_losses.append({k: v.item() for k, v in losses.items()})
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    parts = {"rpn_cls", "rpn_box", "roi_cls", "roi_box"} if method == "faster-rcnn" else {"roi_cls", "roi_box"}
    assert set(gen_losses[0]) == parts
    first, last = sum(gen_losses[0].values()), sum(gen_losses[-1].values())
    assert last < 0.6 * first, (first, last)
    assert all(v >= 0 for step in gen_losses for v in step.values())
    for part in ("rpn_cls", "roi_cls") if method == "faster-rcnn" else ("roi_cls",):
        assert gen_losses[-1][part] < gen_losses[0][part], part
    det.eval()
    out = det(x)
    assert len(out) == 4 and all(set(o) == {"boxes", "labels", "scores"} for o in out)


def test_fast_rcnn_takes_proposals_per_image_in_the_forward():
    torch.manual_seed(0)
    det = create_model("fast_rcnn_fastnet", widths=(16, 16, 32, 32))
    det.init_from_data(torch.randn(16, 1, 128, 128))
    det.eval()
    x = torch.randn(2, 1, 128, 128)
    props = [torch.tensor([[0.0, 0, 64, 64]]), torch.tensor([[10.0, 10, 50, 50], [60, 60, 120, 120]])]
    det.roi_heads.score_thresh = 0.0
    out = det(x, proposals=props)
    assert len(out[0]["boxes"]) <= 10 and len(out[1]["boxes"]) <= 20  # (K-1) class boxes per proposal at most
    default = SlidingWindowProposals()(x)
    assert len(default) == 2 and default[0].shape == (8 * 8 * 9, 4)
    det.train()
    with pytest.raises(ValueError, match="needs targets"):
        det(x)


def test_registered_detectors_build_and_detect():
    names = list_models(task="detection")
    assert {"faster_rcnn_fastnet", "fast_rcnn_fastnet", "faster_rcnn_resnet18", "fast_rcnn_resnet18",
            "faster_rcnn_efficientnet_lite0"} <= set(names)
    m = create_model("faster_rcnn_resnet18", num_classes=4, in_chans=3)
    m.eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 96, 128))
    assert m.num_classes == 4 and m.pretrained_cfg["task"] == "detection" and out[0]["boxes"].shape[1] == 4


def test_inspect_shows_the_backbone_rpn_head_stride_and_anchors():
    from cnnlab.analysis.summary import inspect

    s = inspect("faster_rcnn_fastnet")
    assert s.total_params == 2_293_677 and s.row("rpn_head.conv").jump == 16
    notes = "\n".join(s.notes)
    assert "feature stride 16" in notes and "9 anchors per location" in notes
    assert f"3x3 window sees {s.row('rpn_head.conv').receptive_field} px" in notes
    assert "no RPN" in "\n".join(inspect("fast_rcnn_fastnet").notes)


def test_efficientnet_lite0_backbone_can_start_from_imagenet():
    det = create_model("faster_rcnn_efficientnet_lite0", pretrained=True)
    ref = create_model("efficientnet_lite0", weights="imagenet", in_chans=1, num_classes=1)
    assert torch.equal(det.backbone.body[3][0].block[0][0].weight, ref.features[3][0].block[0][0].weight)
    assert not torch.equal(create_model("faster_rcnn_efficientnet_lite0").backbone.body[0][0].weight,
                           ref.features[0][0].weight)


def test_head_nms_is_the_papers_test_setting():
    """Per-class NMS at 0.3 (py-faster-rcnn / fast-rcnn ``TEST.NMS``), not torchvision's 0.5: two boxes of one
    class overlapping at IoU 0.4 leave one detection."""
    from torchvision.ops import box_iou

    proposals = [torch.tensor([[10.0, 10.0, 50.0, 50.0], [27.0, 10.0, 67.0, 50.0]])]
    assert 0.35 < box_iou(proposals[0][:1], proposals[0][1:]).item() < 0.45
    logits = torch.tensor([[0.0, 5.0, 0.0], [0.0, 4.0, 0.0]])  # background, class 1, class 2
    deltas = torch.zeros(2, 12)
    assert len(postprocess(logits, deltas, proposals, (80, 80))[0]["boxes"]) == 1
    assert len(postprocess(logits, deltas, proposals, (80, 80), nms_thresh=0.5)[0]["boxes"]) == 2
    assert create_model("faster_rcnn_fastnet").roi_heads.nms_thresh == 0.3
