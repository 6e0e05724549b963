"""Detection through the task-generic engine: named loss parts, mAP columns, exact resume, clear errors."""

import json

import pytest
import torch

from cnnlab.data import load_dataset
from cnnlab.errors import ConfigError, DataError
from cnnlab.train import TrainConfig, fit, load_checkpoint

SCENES = "fashion-scenes:size=64,max_items=2,n_train=48,n_test=16"
SMALL = {"widths": [16, 16, 32, 32]}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return root, load_dataset(SCENES, "train", data_dir=root), load_dataset(SCENES, "test", data_dir=root)


def cfg(tmp_path, root, **kw):
    base = dict(task="detection", model="faster_rcnn_fastnet", model_kwargs=SMALL, data=SCENES, data_dir=str(root),
                epochs=2, batch_size=16, optimizer="adam", lr=2e-3, schedule="constant", progress="none",
                tensorboard=False, plots=False, threads=1, out_dir=str(tmp_path / "run"), eval_batch_size=16)
    return TrainConfig(**{**base, **kw})


def test_faster_rcnn_trains_with_named_parts_and_detection_columns(scenes, tmp_path):
    root, train, test = scenes
    r = fit(cfg(tmp_path, root, plots=True), train_data=train, test_data=test)
    row = r.history[-1]
    for key in ("train_loss", "train_roi_acc", "test_loss", "test_map_50", "test_map", "test_recall_100"):
        assert row[key] is not None, key
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    ckpt = load_checkpoint(r.run_dir, prefer="last")
    assert ckpt.meta["task"] == "detection" and ckpt.meta["num_classes"] == 11
    assert ckpt.tensors["model/backbone.body.stem.whitened"].item() == 1.0  # whitened from the scenes by fit
    assert 0 <= r.final["map_50"] <= 1 and set(r.final["ap50_per_class"]) <= set(train.classes[1:])
    for png in ("pr_curves.png", "detections.png"):
        assert (r.run_dir / png).stat().st_size > 1000
    header = (r.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "test_map_50" in header
    result = json.loads((r.run_dir / "result.json").read_text())
    assert set(result["history"][0]) >= {"train_loss"}


def test_detection_resume_is_bit_identical(scenes, tmp_path):
    root, train, test = scenes
    small = train.subset(range(32))
    opts = dict(augment="flip", model="fast_rcnn_fastnet")
    whole = fit(cfg(tmp_path / "a", root, **opts), train_data=small, test_data=test)
    fit(cfg(tmp_path / "b", root, epochs=1, **opts), train_data=small, test_data=test)
    resumed = fit(cfg(tmp_path / "b", root, **opts), train_data=small, test_data=test, resume=tmp_path / "b" / "run")
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    for key in ("train_loss", "train_roi_acc", "test_map_50", "test_loss"):
        assert [h[key] for h in whole.history] == [h[key] for h in resumed.history], key


def test_a_classifier_or_box_less_data_is_a_clear_error(scenes, tmp_path):
    root, train, test = scenes
    with pytest.raises(ConfigError, match="classification model; detection needs one of .*faster_rcnn_fastnet"):
        fit(cfg(tmp_path, root, model="resnet20"), train_data=train, test_data=test)
    synthetic = load_dataset("synthetic", "train", n_train=32, n_test=16)
    with pytest.raises(DataError, match="has no boxes"):
        fit(cfg(tmp_path, root), train_data=synthetic)
    empty = train.subset(range(4))
    empty.boxes = [torch.zeros(0, 4)] * 4
    empty.labels = [torch.zeros(0, dtype=torch.int64)] * 4
    with pytest.raises(DataError, match="no boxes at all"):
        fit(cfg(tmp_path, root), train_data=empty)


KILL_SCRIPT = """
import json, os, signal, sys, torch
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, fit
torch.set_num_threads(1)
root, out, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
class KillAt:
    def on_step_end(self, state):
        if state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
cfg = TrainConfig.from_dict(json.loads(sys.argv[4]))
fit(cfg, train_data=load_dataset(cfg.data, "train", data_dir=root).subset(range(32)),
    callbacks=[KillAt()] if kill_at else [], resume=out if kill_at < 0 else None)
"""


@pytest.mark.slow
def test_faster_rcnn_sigkill_mid_epoch_then_resume_is_bit_identical(scenes, tmp_path):
    """Killed right after optimizer step 5 (epoch 2 of 2, mid-epoch; checkpoints every 2 steps): the resumed run
    recomputes step 5 and ends with the same weights and history (RPN/RoI sampling draws included)."""
    import os
    import signal
    import subprocess
    import sys

    root, _, _ = scenes
    base = cfg(tmp_path, root, batch_size=8, ckpt_every_steps=2, augment="flip", deterministic=True,
               eval_test=False, seed=1)
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def run(out, kill_at):
        cfg_json = json.dumps({**base.to_dict(), "out_dir": str(out)})
        return subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(root), str(out), str(kill_at), cfg_json],
                              env=env, capture_output=True, text=True, timeout=300)

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert run(ref, 0).returncode == 0
    proc = run(killed, 5)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    mid = load_checkpoint(killed, prefer="last")
    assert (mid.meta["epoch"], mid.meta["global_step"]) == (1, 4)
    assert run(killed, -1).returncode == 0
    a, b = load_checkpoint(ref, prefer="last"), load_checkpoint(killed, prefer="last")
    assert sorted(a.tensors) == sorted(b.tensors)
    for k in a.tensors:
        assert torch.equal(a.tensors[k], b.tensors[k]), k
    strip = ("epoch_time_s", "train_img_per_s")
    assert ([{k: v for k, v in r.items() if k not in strip} for r in a.meta["fit_state"]["history"]]
            == [{k: v for k, v in r.items() if k not in strip} for r in b.meta["fit_state"]["history"]])


@pytest.mark.slow
def test_two_process_detection_scores_every_test_image_once(scenes, tmp_path):
    """DDP needs no task code: each process scores its shard, torchmetrics gathers the detections."""
    root, train, test = scenes
    r = fit(cfg(tmp_path, root, epochs=1, nproc=2), train_data=train.subset(range(32)), test_data=test)
    ckpt = load_checkpoint(r.run_dir, prefer="last")
    assert ckpt.meta["world_size"] == 2
    assert r.final["n_images"] == len(test) and 0 <= r.final["map_50"] <= 1
