"""Segmentation paths checked against independent computations on one small trained run: `segment eval`'s text,
`segment predict`'s labels and PNG, flip-TTA, data larger than the model's input, a mid-epoch kill and resume,
and a two-process evaluation equal to a one-process one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.segmentation.metrics import confusion_matrix, segmentation_scores
from cnnlab.segmentation.task import SegmentationTask, predict_probs
from cnnlab.train import TrainConfig, fit, load_checkpoint
from cnnlab.train.task import DataSpec, StepContext

SCENES = "fashion-scenes:size=64,max_items=2,n_train=192,n_test=32"
JOB = Path(__file__).with_name("seg_job.py")
sys.path.insert(0, str(JOB.parent))
import seg_job  # noqa: E402 - the job's config, shared with its script runs

sys.path.remove(str(JOB.parent))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return root, load_dataset(SCENES, "train", data_dir=root), load_dataset(SCENES, "test", data_dir=root)


@pytest.fixture(scope="module")
def run(scenes, tmp_path_factory):
    """3 epochs of FCN-8s on 192 scenes: predictions that are not all background (checked below)."""
    root, train, test = scenes
    out = tmp_path_factory.mktemp("run")
    r = fit(TrainConfig(task="segmentation", model="fcn8s_fastnet", data=SCENES, data_dir=str(root), epochs=3,
                        batch_size=8, optimizer="adam", lr=3e-3, schedule="constant", progress="none",
                        tensorboard=False, plots=False, threads=1, out_dir=str(out), eval_batch_size=16),
            train_data=train, test_data=test)
    return r


def _normalised(images, meta):
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    return (images.float() / 255 - mean) / std


def _model(run):
    ckpt = load_checkpoint(run.run_dir)
    return ckpt, ckpt.build_model().eval()


def test_run_beats_all_background(run, scenes):
    _, _, test = scenes
    base = segmentation_scores(confusion_matrix(torch.zeros_like(test.masks), test.masks, 11))
    assert run.final["mean_iu"] > base["mean_iu"] + 0.01 and run.final["pixel_acc"] > base["pixel_acc"]


def test_segment_eval_text_counts_pixels_and_images(run, scenes, capsys):
    _, _, test = scenes
    assert main(["segment", "eval", "--checkpoint", str(run.run_dir)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    n = int((test.masks != 255).sum())
    assert f"{n} labelled pixels" in header and "32 images" in header and f"{n} images" not in header
    assert main(["segment", "eval", "--checkpoint", str(run.run_dir), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == n and r["images"] == 32


def test_segment_predict_labels_are_the_models_forward(run, scenes, tmp_path, capsys):
    from cnnlab.segmentation import segment_images
    from cnnlab.segmentation.render import overlay

    _, _, test = scenes
    paths = []
    for i in (0, 1):
        paths.append(tmp_path / f"scene{i}.png")
        Image.fromarray(test.images[i, 0].numpy()).save(paths[-1])
    ckpt, model = _model(run)
    with torch.no_grad():
        want = model(_normalised(test.images[:2], ckpt.meta)).argmax(1)
    assert len(want.unique()) > 2  # objects found: a flipped or shifted map would differ
    results = segment_images(run.run_dir, paths, out_dir=tmp_path / "out", device="cpu")
    for r, w, img in zip(results, want, test.images[:2]):
        assert torch.equal(r["labels"], w)
        png = np.asarray(Image.open(r["overlay"]).convert("RGB"))
        assert np.array_equal(png[:, :64, 0], img[0].numpy())  # the image itself
        assert np.array_equal(png[:, 66:], overlay(img, w))  # the prediction over the image's grey copy
    assert main(["segment", "predict", "--checkpoint", str(run.run_dir), str(paths[0]), "--out",
                 str(tmp_path / "cli"), "--json"]) == 0
    fractions = json.loads(capsys.readouterr().out)[0]["fractions"]
    counts = torch.bincount(want[0].flatten(), minlength=11) / want[0].numel()
    assert fractions == {c: round(float(f), 4) for c, f in zip(ckpt.meta["classes"], counts) if f > 0}


def test_flip_tta_averages_with_the_mirrored_prediction(run, scenes):
    _, _, test = scenes
    ckpt, model = _model(run)
    x = _normalised(test.images[:4], ckpt.meta)
    with torch.no_grad():
        plain, mirrored = F.softmax(model(x), 1), F.softmax(model(x.flip(-1)), 1).flip(-1)
        tta = predict_probs(model, x, "flip")
    torch.testing.assert_close(tta, (plain + mirrored) / 2)
    assert (plain - mirrored).abs().max() > 0.05  # the model is not mirror-symmetric: the check has teeth
    m = ckpt.meta
    spec = DataSpec(11, 1, 64, (64, 64), list(m["classes"]), m["mean"], m["std"])
    sub = test.subset(range(4))
    r = SegmentationTask().evaluate(model, sub, spec, batch_size=3, device=torch.device("cpu"), amp="off",
                                    channels_last=False, tta="flip")
    assert r["confusion"] == confusion_matrix(tta.argmax(1), sub.masks, 11).tolist()


def test_data_larger_than_the_model_input(run, scenes):
    """img_size 32 on 64x64 scenes: training resizes the mask (nearest) to the model's 32x32 output; evaluation
    up-samples the probabilities (bilinear) to 64x64 and scores every labelled data pixel."""
    _, train, test = scenes
    ckpt, model = _model(run)
    m = ckpt.meta
    spec = DataSpec(11, 1, 32, (64, 64), list(m["classes"]), m["mean"], m["std"])
    cfg = TrainConfig(task="segmentation", model="fcn8s_fastnet", input_noise=0.0)
    x = _normalised(train.images[:4], m)
    mask = train.masks[:4].long()
    ctx = StepContext(cfg=cfg, spec=spec, criterion=SegmentationTask().criterion(cfg, weighted=False))
    with torch.no_grad():
        out = SegmentationTask().step(model, (x, {"mask": mask, "index": torch.arange(4)}), ctx)
        small = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
        small_mask = mask[:, ::2, ::2]  # nearest at scale 1/2 picks the even rows and columns
        want = F.cross_entropy(model(small), small_mask, ignore_index=255)
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-5) and out.score_count == (small_mask != 255).sum()
    sub = test.subset(range(6))
    r = SegmentationTask().evaluate(model, sub, spec, batch_size=4, device=torch.device("cpu"), amp="off",
                                    channels_last=False)
    with torch.no_grad():
        xs = F.interpolate(_normalised(sub.images, m), size=(32, 32), mode="bilinear", align_corners=False)
        probs = F.interpolate(F.softmax(model(xs), 1), size=(64, 64), mode="bilinear", align_corners=False)
    assert r["n"] == int((sub.masks != 255).sum()) == 6 * 64 * 64 - int((sub.masks == 255).sum())
    assert r["confusion"] == confusion_matrix(probs.argmax(1), sub.masks, 11).tolist()


def _env():
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def test_segmentation_killed_mid_epoch_resumes_bit_identical(scenes, tmp_path):
    root = str(scenes[0])
    ref = fit(seg_job.config(root, str(tmp_path / "ref")))
    killed = tmp_path / "killed"
    # 2 epochs x 4 steps, checkpoints every 3 steps; killed right after step 7: resumes from step 6 (epoch 2)
    proc = subprocess.run([sys.executable, str(JOB), "kill", root, str(killed), "7"], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    mid = load_checkpoint(killed, prefer="last")
    assert (mid.meta["epoch"], mid.meta["micro_step"], mid.meta["global_step"]) == (1, 2, 6)
    resumed = fit(seg_job.config(root, str(killed)), resume=killed)
    a, b = load_checkpoint(ref.run_dir, prefer="last"), load_checkpoint(killed, prefer="last")
    assert sorted(a.tensors) == sorted(b.tensors) and all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    for key in ("train_loss", "train_pixel_acc", "test_loss", "test_mean_iu", "test_boundary_f1"):
        assert [h[key] for h in ref.history] == [h[key] for h in resumed.history], key


@pytest.mark.slow  # two fresh Python processes importing torch: ~10 s on an idle 2-core machine
def test_two_process_evaluation_equals_one_process(run, tmp_path):
    from cnnlab.train.distributed import free_port
    from cnnlab.train.evaluation import evaluate_checkpoint

    one = evaluate_checkpoint(str(run.run_dir), batch_size=3, device="cpu", data=seg_job.EVAL_DATA)
    port, out = free_port(), tmp_path / "two.json"
    procs = [subprocess.Popen([sys.executable, str(JOB), "eval", str(run.run_dir), str(out), str(rank), "2",
                               str(port)], env=_env(), stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    two = json.loads(out.read_text())
    assert two["confusion"] == one["confusion"] and two["n"] == one["n"]
    for key in ("loss", "mean_iu", "pixel_acc", "boundary_f1", "boundary_precision", "boundary_recall"):
        assert two[key] == pytest.approx(one[key], rel=1e-6), key
    assert 0.05 < one["boundary_f1"] < 1
