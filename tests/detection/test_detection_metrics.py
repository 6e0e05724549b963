"""mAP through torchmetrics (faster_coco_eval): 1.0 on perfect predictions, lower for shifted boxes."""

import pytest
import torch

from cnnlab.detection.metrics import detection_scores

CLASSES = ["background", "a", "b", "c"]


def _targets():
    return [{"boxes": torch.tensor([[10.0, 10, 50, 50], [60, 60, 100, 90]]), "labels": torch.tensor([1, 2])},
            {"boxes": torch.tensor([[20.0, 30, 60, 70]]), "labels": torch.tensor([1])}]


def _preds(shift=0.0):
    return [{"boxes": t["boxes"] + shift, "labels": t["labels"], "scores": torch.full((len(t["labels"]),), 0.9)}
            for t in _targets()]


def test_perfect_predictions_score_one():
    s = detection_scores(_preds(), _targets(), CLASSES)
    assert s["map_50"] == pytest.approx(1.0) and s["map"] == pytest.approx(1.0)
    assert s["recall_100"] == pytest.approx(1.0)
    assert s["ap50_per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}  # "c" has no boxes
    assert len(s["pr_curves"]["precision"]["a"]) == 101


def test_shifted_boxes_score_lower():
    # a 40-px box shifted by 8 px in x and y: IoU = 32^2 / (2 * 40^2 - 32^2) = 0.4706 for the square ones
    s = detection_scores(_preds(8.0), _targets(), CLASSES)
    assert s["map"] < 0.5 and s["map_50"] < 1.0
    s_small = detection_scores(_preds(2.0), _targets(), CLASSES)  # IoU >= 0.82: still correct at 0.5
    assert s_small["map_50"] == pytest.approx(1.0) and s_small["map"] < 1.0
    assert s_small["ap50_per_class"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}  # AP at IoU 0.5
    assert s_small["ap_per_class"]["a"] < 1.0


def test_wrong_class_and_missing_detections():
    preds = _preds()
    preds[1]["labels"] = torch.tensor([2])  # image 2's "a" called "b": a false positive and a miss
    s = detection_scores(preds, _targets(), CLASSES)
    assert s["ap50_per_class"]["a"] == pytest.approx(0.5, abs=0.01)  # one of two "a" found at precision 1
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}] * 2
    assert detection_scores(empty, _targets(), CLASSES)["map_50"] == 0.0
