"""The task-generic engine: a Task carries the data, the loss (a dict of named losses too), the metrics
and the checkpoint's memory; the loop, resume, logging and checkpoints are the same for every task."""

import csv

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, fit, load_checkpoint
from cnnlab.train.task import ClassificationTask, StepOutput, get_task


def cfg(tmp_path, **kw):
    base = dict(model="tiny", epochs=2, batch_size=64, lr=0.05, momentum=0.9, progress="none", plots=False,
                tensorboard=False, out_dir=str(tmp_path / "run"), threads=1)
    return TrainConfig(**{**base, **kw})


class TwoPartTask(ClassificationTask):
    """Classification whose loss is a dict (as detection's will be): CE plus a logit-norm penalty."""

    def step(self, model, batch, ctx):
        x, y = batch[0], batch[1]
        logits = model(x)
        losses = {"cls": nn.functional.cross_entropy(logits, y), "logit_norm": 1e-3 * logits.pow(2).mean()}
        total = losses["cls"] + losses["logit_norm"]
        return StepOutput(loss=total, n=y.shape[0], score_sum=(logits.argmax(1) == y).sum().float(),
                          score_count=float(y.shape[0]), parts={k: v.detach() for k, v in losses.items()})


def test_dict_losses_are_summed_and_logged_by_name(job, synth, tmp_path):
    train, test = synth
    r = fit(cfg(tmp_path), task=TwoPartTask(), model=job.tiny_net(), train_data=train, test_data=test)
    for row in r.history:
        assert row["train_loss"] == pytest.approx(row["train_cls"] + row["train_logit_norm"], rel=1e-5)
        assert row["train_logit_norm"] > 0
    with open(r.run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert "train_cls" in rows[0] and float(rows[-1]["train_cls"]) == pytest.approx(r.history[-1]["train_cls"])
    assert r.history[-1]["train_cls"] < r.history[0]["train_cls"]


def test_classification_task_is_the_default_and_unknown_tasks_are_errors():
    assert isinstance(get_task(TrainConfig().task), ClassificationTask)
    with pytest.raises(ConfigError, match="task"):
        TrainConfig(task="detection-of-cats")
    with pytest.raises(ConfigError, match="early_stop_metric"):
        TrainConfig(early_stop_metric="top1")


def test_unknown_early_stop_metric_names_the_task_metrics(job, synth, tmp_path):
    train, test = synth
    with pytest.raises(ConfigError, match="val_top1"):
        fit(cfg(tmp_path, epochs=1, val_fraction=0.2, early_stop_patience=1, early_stop_metric="val_mean_iu"),
            model=job.tiny_net(), train_data=train, test_data=test)


def test_a_registry_model_given_to_fit_is_rebuilt_from_its_checkpoint(job, synth, tmp_path):
    """fit(model=create_model(...)) -- the transfer-learning path -- records name, kwargs and built size."""
    import cnnlab

    train, test = synth
    net = cnnlab.create_model("lenet5_modern", num_classes=10, in_chans=1, img_size=32)
    r = fit(cfg(tmp_path, epochs=1, img_size=32), model=net, train_data=train, test_data=test)
    ckpt = load_checkpoint(r.run_dir)
    assert ckpt.meta["model"] == "lenet5_modern" and ckpt.meta["task"] == "classification"
    rebuilt = ckpt.build_model()
    x = torch.randn(4, 1, 32, 32)
    r.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), r.model(x))
        assert r.model(x).std() > 1e-3  # the outputs compared depend on the input


def test_a_custom_module_checkpoint_needs_the_module(job, synth, tmp_path):
    from cnnlab.errors import CheckpointError

    train, test = synth
    r = fit(cfg(tmp_path, epochs=1), model=job.tiny_net(), train_data=train, test_data=test)
    with pytest.raises(CheckpointError, match="custom model"):
        load_checkpoint(r.run_dir).build_model()


def test_every_split_is_normalised_like_the_training_split(tmp_path):
    """An image folder's test split computes its own statistics; training and evaluation must share the
    training split's (a shallow copy: the caller's dataset is left as it was)."""
    from PIL import Image

    from cnnlab.data import load_dataset

    for split, shade in (("train", 40), ("test", 200)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.new("L", (8, 8), shade + 10 * i).save(tmp_path / split / cls / f"{i}.png")
    train = load_dataset(f"imagefolder:{tmp_path}", "train")
    test = load_dataset(f"imagefolder:{tmp_path}", "test")
    assert test.mean != train.mean
    own = test.mean
    _, _, test_used = ClassificationTask().load_data(TrainConfig(), train, None, test)
    assert test_used.mean == train.mean and test_used.std == train.std
    assert test.mean == own
