"""R-CNN (Girshick et al. 2014) and SPPNet (He et al. 2014): warping, hard-negative mining, the staged fit on a
tiny scene set, detections in the model contract's format that beat random boxes, the run directory."""

import numpy as np
import pytest
import torch

from cnnlab.detection.metrics import detection_scores
from cnnlab.detection.rcnn import RegionCNN, fit_rcnn, load_rcnn, train_svms, warp
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.train.config import TrainConfig

pytest.importorskip("cv2", reason="selective search needs the detect extra (OpenCV contrib)")

SCENES = "fashion-scenes:size=64,scale=1-1.25,max_items=2,n_train=24,n_test=12"


def test_warp_puts_the_box_inside_a_two_pixel_context_frame():
    img = torch.zeros(1, 1, 64, 64)
    img[..., 20:44, 8:32] = 1.0  # a 24x24 square: its box warped to 28x28 fills the inner 24x24
    crop = warp(img, [torch.tensor([[8.0, 20.0, 32.0, 44.0]])])
    assert crop.shape == (1, 1, 28, 28)
    # 1 output px per input px: inside 1, bilinear blends on the box's edge rows (2 and 25), 0 in the frame
    assert torch.equal(crop[0, 0, 3:25, 3:25], torch.ones(22, 22))
    assert (crop[0, 0, 2, 3:25] > 0.5).all() and (crop[0, 0, 25, 3:25] > 0.5).all()
    assert crop[0, 0, :2].abs().max() < 0.2 and crop[0, 0, 26:].abs().max() < 0.2 and crop[0, 0, 0].max() == 0


def test_hard_negative_mining_brings_the_negatives_inside_the_margin_into_training():
    """Positives at x ~ +2; 2,000 easy negatives at x ~ -4 and 20 hard ones at x = +1.6. The random first cache
    (256 negatives) holds few hard ones, so without mining the SVM puts them on the positive side; mining finds
    them (score > -1) and retrains."""
    rng = np.random.default_rng(0)
    pos = np.c_[rng.normal(2.0, 0.1, 10), rng.normal(0, 0.2, 10)]
    easy = np.c_[rng.normal(-4.0, 0.3, 2000), rng.normal(0, 0.2, 2000)]
    hard = np.c_[np.full(20, 1.6), rng.normal(0, 0.2, 20)]
    x = np.vstack([pos, easy, hard])
    positives, negatives, hard_idx = np.arange(10), np.arange(10, 2030), np.arange(2010, 2030)
    w0, b0 = train_svms(x, positives, negatives, c=1.0, rounds=0, seed=1)
    w2, b2 = train_svms(x, positives, negatives, c=1.0, rounds=2, seed=1)
    assert (x[hard_idx] @ w0 + b0 > 0).all()  # mining off: the hard negatives score as objects
    assert (x[hard_idx] @ w2 + b2 < 0).all() and (x[positives] @ w2 + b2 > 0).all()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both methods fitted on 24 scenes of 64x64 (one intra-op thread: ~12 s together on a loaded 2-core CPU;
    torch's default 2 threads took 60 s there, oversubscribed)."""
    root = tmp_path_factory.mktemp("rcnn")
    cfg = TrainConfig(task="detection", model="rcnn", data=SCENES, data_dir=str(root), epochs=3, batch_size=64,
                      lr=0.003, optimizer="adamw", seed=0, threads=1,
                      model_kwargs={"widths": [16, 32, 64], "fc_width": 64, "proposals": {"min_size": 6}})
    threads = torch.get_num_threads()
    try:
        yield root, {m: fit_rcnn(cfg.replace(out_dir=str(root / m)), m) for m in ("rcnn", "sppnet")}
    finally:
        torch.set_num_threads(threads)


def _random_boxes(targets, n=10, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in targets:
        xy = torch.rand(n, 2, generator=g) * (size - 20)
        wh = torch.rand(n, 2, generator=g) * 30 + 10
        out.append({"boxes": torch.cat([xy, (xy + wh).clamp(max=size)], 1), "scores": torch.rand(n, generator=g),
                    "labels": torch.randint(1, 11, (n,), generator=g)})
    return out


@pytest.mark.parametrize("method", ["rcnn", "sppnet"])
def test_rcnn_and_sppnet_detect_in_the_contract_format_and_beat_random_boxes(runs, method):
    from cnnlab.data import load_dataset

    root, results = runs
    result = results[method]
    assert (result.run_dir / "last.safetensors").is_file() and (result.run_dir / "result.json").is_file()
    model = load_rcnn(result.run_dir)
    assert isinstance(model, RegionCNN) and model.method == method and not model.training
    assert (model.svm_weight.abs().sum(1) > 0).any() and (model.reg_weight.abs().sum((1, 2)) > 0).any()
    test = load_dataset(SCENES, "test", data_dir=str(root))
    x = (test.images.float() / 255 - test.mean[0]) / test.std[0]
    preds = model(x)  # selective search inside, on the de-normalised images
    assert len(preds) == len(test) and set(preds[0]) == {"boxes", "labels", "scores"}
    assert all(p["boxes"].shape[1:] == (4,) and p["labels"].dtype == torch.int64 for p in preds)
    assert all(((p["scores"] > 0) & (p["scores"] < 1)).all() and (p["labels"] >= 1).all() for p in preds)
    targets = [{"boxes": b, "labels": lb} for b, lb in zip(test.boxes, test.labels)]
    ours = detection_scores(preds, targets, test.classes)["map_50"]
    random = detection_scores(_random_boxes(targets), targets, test.classes)["map_50"]
    # measured on these 12 scenes after 24 training scenes: R-CNN 0.53, SPPNet 0.40; random boxes ~0.01
    assert ours > max(0.1, 5 * random)
    assert result.final["map_50"] == pytest.approx(ours, abs=1e-6)  # fit's own evaluation, same proposals


def test_the_same_weights_serve_both_feature_paths_and_bad_inputs_are_clear(runs, tmp_path):
    root, results = runs
    rcnn, spp = load_rcnn(results["rcnn"].run_dir), load_rcnn(results["rcnn"].run_dir, method="sppnet")
    assert spp.method == "sppnet" and all(torch.equal(a, b) for a, b in
                                          zip(rcnn.state_dict().values(), spp.state_dict().values()))
    with pytest.raises(ConfigError, match="fit_rcnn"):
        rcnn.train()(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ConfigError, match="method"):
        RegionCNN(11, method="fast")
    from cnnlab.train.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "last.safetensors", {"model": "fastnet"}, {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not an R-CNN"):
        load_rcnn(tmp_path)


def test_cnnlab_detect_eval_reads_an_rcnn_run(runs, capsys):
    import json

    from cnnlab.cli import main

    root, results = runs
    assert main(["detect", "eval", "--checkpoint", str(results["sppnet"].run_dir), "--data", SCENES,
                 "--data-dir", str(root), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["map_50"] == pytest.approx(results["sppnet"].final["map_50"], abs=1e-6)  # same proposals, same model


def test_the_lab_reads_speed_and_method_from_real_detection_runs(runs, tmp_path):
    """The engine's detection runs and the staged R-CNN runs both write ``ms_per_image`` into result.json, and
    the lab's detection_speed finds them by method (it once looked for a ``config`` key no run writes)."""
    import json

    from cnnlab.lab import Context, get_experiment
    from cnnlab.train import fit

    root, results = runs
    cfg = TrainConfig(task="detection", model="faster_rcnn_fastnet", model_kwargs={"widths": [16, 16, 32, 32]},
                      data=SCENES, data_dir=str(root), epochs=1, batch_size=12, optimizer="adam", lr=2e-3,
                      schedule="constant", progress="none", tensorboard=False, plots=False, threads=1,
                      out_dir=str(root / "faster"), eval_batch_size=12, train_subset=12)
    fit(cfg)
    exp = get_experiment("detection_speed")
    ctx = Context("detection_speed", "quick", {"search": [str(root)]}, tmp_path, tmp_path, log=lambda m: None)
    result = exp.run(ctx)
    found = {r["method"]: r for r in result.numbers["runs"]}
    assert list(found) == ["rcnn", "sppnet", "faster-rcnn"]
    for method, run_dir in (("rcnn", results["rcnn"].run_dir), ("faster-rcnn", root / "faster")):
        final = json.loads((run_dir / "result.json").read_text())["final"]
        assert final["ms_per_image"] > 0 and final["img_per_s"] * final["ms_per_image"] == pytest.approx(1000)
        assert found[method]["ms_per_image"] == final["ms_per_image"]
    up = found["rcnn"]["ms_per_image"] / found["faster-rcnn"]["ms_per_image"]
    assert found["faster-rcnn"]["speedup_over_rcnn"] == pytest.approx(up)
    assert exp.verdict(result.numbers).status == ("confirmed" if min(
        found["rcnn"]["ms_per_image"] / r["ms_per_image"] for m, r in found.items() if m != "rcnn") >= 10
        else "partly" if up >= 1 else "not confirmed")
    assert (tmp_path / "detection_speed.png").stat().st_size > 1000
