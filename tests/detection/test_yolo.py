"""YOLO v1 (Redmon et al. 2016): grid targets, the paper's loss on a hand-computed case, inference, training."""

import math

import pytest
import torch
from torchvision.ops import batched_nms

from cnnlab.detection.yolo import decode_predictions, decode_targets, encode_targets, paired_iou, yolo_loss
from cnnlab.models import create_model


def test_target_encoding_puts_each_box_in_its_centre_cell_and_decodes_back():
    # centres (14, 114) -> cell (row 7, col 0); (30, 40) -> (2, 1); (98, 92) -> (5, 6) at S = 8 (16-px cells)
    boxes = torch.tensor([[0.0, 100.0, 28.0, 128.0], [10.0, 20.0, 50.0, 60.0], [70.0, 64.0, 126.0, 120.0]])
    labels = torch.tensor([1, 3, 10])
    t = encode_targets(boxes, labels, grid=8, img_size=(128, 128), num_classes=11)
    assert t.shape == (8, 8, 15) and t[..., 4].sum() == 3
    # (30, 40): column 30/16 = 1.875, row 40/16 = 2.5 -> x = 0.875, y = 0.5; w = h = 40/128
    assert torch.allclose(t[2, 1, :5], torch.tensor([0.875, 0.5, 40 / 128, 40 / 128, 1.0]))
    assert t[2, 1, 5:].argmax() == 2  # label 3 -> class index 2 of C = 10
    got_boxes, got_labels = decode_targets(t, (128, 128))
    order = torch.tensor([1, 2, 0])  # decoded in row-major cell order: rows 2, 5, 7
    assert torch.allclose(got_boxes, boxes[order], atol=1e-4) and torch.equal(got_labels, labels[order])


def test_two_centres_in_one_cell_keep_the_larger_box():
    boxes = torch.tensor([[0.0, 0.0, 40.0, 40.0], [10.0, 10.0, 20.0, 20.0]])
    t = encode_targets(boxes, torch.tensor([1, 2]), grid=4, img_size=(128, 128), num_classes=3)
    got, labels = decode_targets(t, (128, 128))
    assert torch.allclose(got, boxes[:1]) and labels.tolist() == [1]


def test_loss_on_a_hand_computed_case():
    """S = 2, B = 2, C = 2 on a 64x64 image (cells of 32 px); one truth (16x16 px box centred at (16, 16),
    class 2) in cell (0, 0). Predictor 0 there: same centre, 8x8 px -> IoU 64/256 = 0.25; predictor 1: same
    centre, 24x24 px -> IoU 256/576 = 4/9 -> responsible. Confidences 0.3 and 0.8 there, 0.1 everywhere else."""
    pred = torch.zeros(1, 2, 2, 12)
    pred[..., 4] = pred[..., 9] = 0.1
    pred[0, 0, 0, :5] = torch.tensor([0.5, 0.5, math.sqrt(8 / 64), math.sqrt(8 / 64), 0.3])
    pred[0, 0, 0, 5:10] = torch.tensor([0.5, 0.5, math.sqrt(24 / 64), math.sqrt(24 / 64), 0.8])
    pred[0, 0, 0, 10:] = torch.tensor([0.7, 0.3])
    target = encode_targets(torch.tensor([[8.0, 8.0, 24.0, 24.0]]), torch.tensor([2]), 2, (64, 64), 3)[None]
    loss = yolo_loss(pred, target, boxes_per_cell=2, img_size=(64, 64))
    # coord: 5 * [(0.5-0.5)^2 * 2 + (sqrt(24/64) - sqrt(16/64))^2 * 2] = 10 * (0.612372 - 0.5)^2
    assert loss["coord"].item() == pytest.approx(10 * (0.6123724357 - 0.5) ** 2, rel=1e-5)  # 0.126276
    # obj: (0.8 - 4/9)^2; noobj: 0.5 * (0.3^2 + 6 * 0.1^2) (the other predictor + 3 empty cells x 2)
    assert loss["obj"].item() == pytest.approx((0.8 - 4 / 9) ** 2, rel=1e-5)  # 0.126420
    assert loss["noobj"].item() == pytest.approx(0.5 * (0.09 + 0.06), rel=1e-5)  # 0.075
    # cls: (0.7 - 0)^2 + (0.3 - 1)^2 = 0.98, only in the cell that holds an object
    assert loss["cls"].item() == pytest.approx(0.98, rel=1e-5)


def test_inference_scores_are_class_probability_times_confidence_then_per_class_nms():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 4, 4, 5 * 2 + 3, generator=g)
    pred[..., 10:] = pred[..., 10:].softmax(-1)
    out = decode_predictions(pred, 2, (64, 64), score_thresh=0.2, nms_thresh=0.5, max_detections=1000)
    b = 1
    conf, probs = pred[b, ..., [4, 9]].reshape(-1), pred[b, ..., 10:].reshape(16, 3)
    scores = (conf.view(16, 2, 1) * probs.view(16, 1, 3)).reshape(-1, 3)
    assert out[b]["scores"].max().item() == pytest.approx(scores.max().item())
    # the same set as torchvision's batched_nms on every box x class above the threshold
    from cnnlab.detection.yolo import predicted_boxes

    boxes = predicted_boxes(pred[b:b + 1], 2, (64, 64)).reshape(-1, 4).clamp(0, 64)
    idx, cls = (scores > 0.2).nonzero(as_tuple=True)
    keep = batched_nms(boxes[idx], scores[idx, cls], cls, 0.5)
    assert torch.equal(out[b]["labels"], cls[keep] + 1) and torch.allclose(out[b]["boxes"], boxes[idx[keep]])


def test_paired_iou_is_elementwise():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
    assert torch.allclose(paired_iou(a, b), torch.tensor([1 / 7, 1.0]))


def test_a_few_training_steps_lower_the_loss_and_eval_follows_the_contract():
    torch.manual_seed(0)
    model = create_model("yolo_v1_fastnet", img_size=64)
    x = torch.randn(4, 1, 64, 64)
    targets = [{"boxes": torch.tensor([[4.0 + 8 * i, 8.0, 36.0 + 8 * i, 40.0]]), "labels": torch.tensor([i + 1])}
               for i in range(4)]
    model.init_from_data(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for _ in range(6):
        parts = model(x, targets)
        assert set(parts) == {"coord", "obj", "noobj", "cls"}
        loss = sum(parts.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    correct, count = model.last_accuracy  # class accuracy in the 4 object cells (the task's training score)
    assert count == 4.0 and 0 <= int(correct) <= 4
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert len(out) == 4 and set(out[0]) == {"boxes", "labels", "scores"}
    assert out[0]["boxes"].shape[1] == 4 and out[0]["labels"].dtype == torch.int64
    assert out[0]["labels"].min() >= 1 and out[0]["labels"].max() <= 10 and model.num_classes == 11
    assert model.pretrained_cfg["task"] == "detection"
    with torch.no_grad():  # the validation loss of the detection task: the same parts in eval mode
        assert model.losses(x, targets)["coord"] < parts["coord"]


@pytest.mark.parametrize("name,kwargs,grid", [("yolo_v1_fastnet", {"head": "fc", "grid": 5}, 5),
                                              ("yolo_v1_resnet18", {}, 4)])
def test_the_paper_fc_head_and_the_resnet_backbone_predict_the_grid(name, kwargs, grid):
    model = create_model(name, img_size=64, **kwargs).eval()
    with torch.no_grad():
        raw = model.raw(torch.randn(2, 1, 64, 64))
    assert raw.shape == (2, grid, grid, 5 * 2 + 10) and model.grid == grid
    assert torch.allclose(raw[..., 10:].sum(-1), torch.ones(2, grid, grid))  # Pr(class | object) sums to 1


def test_the_export_view_is_one_pass_to_onnx_and_decodes_to_the_same_detections(tmp_path):
    from cnnlab.export.exporter import export_model

    model = create_model("yolo_v1_fastnet", img_size=64)
    model.init_from_data(torch.randn(16, 1, 64, 64))
    view = model.eval().export_view()
    view.pretrained_cfg = model.pretrained_cfg
    r = export_model(view, tmp_path / "yolo.onnx", weights=None, exporter="legacy", latency_runs=0)
    assert r.path.is_file() and r.max_abs_diff < 1e-4  # verified by ONNX Runtime inside export_model
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        ours = model(x)
        grid = view(x)
    again = decode_predictions(grid, 2, (64, 64))
    assert grid.shape == (2, 4, 4, 20) and all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(ours, again))


def test_yolo_trains_through_the_engine_with_the_detection_task(tmp_path):
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.engine import fit

    scenes = "fashion-scenes:size=64,scale=1-1.25,max_items=2,n_train=32,n_test=8"
    cfg = TrainConfig(task="detection", model="yolo_v1_fastnet", data=scenes, data_dir=str(tmp_path), epochs=2,
                      batch_size=16, lr=1e-3, optimizer="adamw", out_dir=str(tmp_path / "run"), progress="none",
                      tensorboard=False, plots=False)
    r = fit(cfg)
    first, last = r.history[0], r.history[-1]
    assert {"train_coord", "train_obj", "train_noobj", "train_cls"} <= set(last)
    assert last["train_loss"] < first["train_loss"] and 0 <= r.final["map_50"] <= 1

    # `cnnlab export RUN` of a YOLO run: the one-pass grid graph, verified by ONNX Runtime, its layout in the sidecar
    import json

    from cnnlab.cli import main

    onnx = tmp_path / "yolo.onnx"
    assert main(["export", str(r.run_dir), "--output", str(onnx), "--latency-runs", "0"]) == 0
    side = json.loads(onnx.with_name("yolo.onnx.json").read_text())
    assert side["output"]["shape"] == [1, 4, 4, 5 * 2 + 10] and side["output"]["meaning"].startswith("YOLO v1 grid")
    assert side["verification"]["max_abs_diff"] < 1e-4
    assert r.final["loss"] == r.final["loss"]  # the validation loss through YOLOv1.losses (not NaN)
    assert (tmp_path / "run" / "last.safetensors").is_file()
