"""regularization, ensembles, bias_variance, cross_validation: their rules on planted numbers, their counting
parts with exact values, and tiny real runs where they take seconds."""

import math

import pytest
import torch
from lab_helpers import run_tiny
from torch import nn

from cnnlab.lab import get_experiment
from cnnlab.lab.experiments.regularization import (
    ARMS,
    CleanTrainAccuracy,
    gap_summary,
    mean_gap_curve,
    option_text,
    training_images,
)
from cnnlab.lab.experiments.validation import binomial_se, train_config
from cnnlab.models.probes import regularization_net
from cnnlab.train.run import set_dropout


def ms(mean, std=0.01):
    return {"mean": mean, "std": std, "n": 3}


# ============================================================================ regularization
def test_regularization_net_shapes_dropout_and_batch_norm():
    plain, bn = regularization_net((4, 8), 16), regularization_net((4, 8), 16, batch_norm=True)
    assert plain(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert sum(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in plain.modules()) == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm1d) for m in bn.modules()) == 1
    # conv 1*4*9+4, conv 4*8*9+8, FC 8*7*7*16+16, FC 16*10+10
    assert sum(p.numel() for p in plain.parameters()) == 40 + 296 + 6288 + 170
    assert set_dropout(plain, 0.5) == 1  # TrainConfig.dropout reaches the one dropout layer
    plain.eval()
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(plain(x), plain(x))  # eval mode: dropout off


def test_regularization_arms_use_engine_options():
    from cnnlab.train import TrainConfig

    assert list(ARMS) == ["none", "L2", "L1", "dropout", "augmentation", "input noise", "early stopping",
                          "batch norm"]
    for changes, _ in ARMS.values():
        TrainConfig(val_fraction=0.2, **changes)  # every option is a valid TrainConfig field
    assert option_text(*ARMS["none"]) == "no regularization"
    assert option_text(*ARMS["L2"]) == "weight_decay=0.005"
    assert ARMS["batch norm"] == ({}, True)


def test_gap_summary_and_mean_gap_curve_exact():
    s = gap_summary({"none": [0.2, 0.3, 0.4], "L2": [0.1, 0.2, 0.3]})
    assert s["gap"]["none"]["mean"] == pytest.approx(0.3)
    assert s["gap"]["none"]["std"] == pytest.approx(0.1)
    assert s["vs_none"]["L2"]["mean_diff"] == pytest.approx(-0.1)
    assert "none" not in s["vs_none"]
    # seed 1 stopped after 2 epochs: epoch 3 averages seed 0 only
    curve = mean_gap_curve([[0.5, 0.7, 0.9], [0.6, 0.8]], [[0.5, 0.5, 0.5], [0.4, 0.4]])
    assert curve == pytest.approx([0.1, 0.3, 0.4])


def test_clean_train_accuracy_is_eval_mode_accuracy_on_the_given_images():
    from cnnlab.data import load_dataset

    data = load_dataset("synthetic", split="train").subset(list(range(200)))

    class Constant(nn.Module):  # predicts class 3, except in training mode (where it would predict 0)
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(x.shape[0], 10)
            out[:, 0 if self.training else 3] = 1
            return out + self.w

    model = Constant().train()
    cb = CleanTrainAccuracy(data)
    cb.on_epoch_end(type("S", (), {"model": model})(), {})
    assert cb.top1 == [pytest.approx(float((data.labels == 3).double().mean()))]
    assert model.training  # restored


def test_training_images_are_the_ones_fit_trains_on():
    train = training_images({"data": "synthetic", "train_subset": 750, "val_fraction": 0.2}, seed=1)
    assert len(train) == 600  # 750 - round(0.2 * 750)
    other = training_images({"data": "synthetic", "train_subset": 750, "val_fraction": 0.2}, seed=2)
    assert not torch.equal(train.labels, other.labels)  # the subset follows the seed, as in fit


def test_regularization_rule_reaches_every_status():
    rule = get_experiment("regularization").verdict
    regs = [a for a in ARMS if a != "none"]

    def planted(base, gaps):
        return {"gap": {"none": ms(base), **{a: ms(g) for a, g in zip(regs, gaps, strict=True)}}}

    v = rule(planted(0.2, [0.1, 0.1, 0.1, 0.1, 0.3, 0.3, 0.3]))
    assert v.status == "confirmed" and "narrower with 4 of 7" in v.reason
    assert "not with input noise 30.0%, early stopping 30.0%, batch norm 30.0%; likely: input noise:" in v.reason
    assert rule(planted(0.2, [0.1, 0.1, 0.1, 0.3, 0.3, 0.3, 0.3])).status == "partly"  # 3 of 7 is not most
    assert rule(planted(0.2, [0.2] * 7)).status == "not confirmed"  # equal is not narrower
    assert rule(planted(0.04, [0.01] * 7)).status == "not measurable"


def test_regularization_tiny_run(tmp_path):
    train = {"data": "synthetic", "train_subset": 100, "val_fraction": 0.2, "test_subset": 100, "epochs": 2,
             "batch_size": 40, "optimizer": "adam", "lr": 3e-3, "threads": 1}
    result, verdict = run_tiny("regularization", {"widths": [2, 4], "hidden": 8, "seeds": 1, "train": train},
                               tmp_path)
    n = result.numbers
    assert list(n["gap"]) == list(ARMS)
    for arm in ARMS:
        assert len(n["per_seed_gap"][arm]) == 1
        assert n["per_seed_gap"][arm][0] == pytest.approx(n["train_top1"][arm]["mean"] - n["test_top1"][arm]["mean"])
        assert 1 <= len(n["gap_by_epoch"][arm]) <= 2
    assert n["epochs_run"]["none"] == [2]
    assert verdict.status in ("confirmed", "partly", "not confirmed", "not measurable")
    assert len(result.table) == 8 and (tmp_path / "regularization.png").is_file()


# ============================================================================ ensembles
def ensembles_numbers(diffs):
    """Planted: single 80 %, each method 80 % + diff, bootstrap interval diff ± 0.5 points."""
    methods = ["bagging", "boosting", "snapshot", "TTA"]
    return {"methods": methods, "test_top1": {"single": ms(0.8), **{m: ms(0.8 + d) for m, d in zip(methods, diffs)}},
            "vs_single": {m: {"mean_diff": d, "bootstrap_ci": [d - 0.005, d + 0.005]} for m, d in zip(methods, diffs)}}


def test_ensembles_rule_reaches_every_status():
    rule = get_experiment("ensembles").verdict
    v = rule(ensembles_numbers([0.02, 0.02, 0.02, 0.0]))
    assert v.status == "confirmed" and "bagging, boosting, snapshot" in v.reason
    assert rule(ensembles_numbers([0.02, 0.02, 0.0, 0.0])).status == "partly"  # 2 of 4 is not most
    assert rule(ensembles_numbers([0.02, 0.02, 0.02, -0.02])).status == "partly"  # one significantly worse
    assert rule(ensembles_numbers([0.003, 0.0, 0.0, 0.0])).status == "partly"  # better on the mean only
    v = rule(ensembles_numbers([0.0, -0.01, 0.0, -0.02]))
    assert v.status == "not confirmed" and v.reason.count("likely") == 1 and "snapshot: its snapshots" in v.reason


TINY_FASTNET = {"model": "fastnet", "model_kwargs": {"widths": [4, 8]}, "data": "synthetic", "train_subset": 150,
                "epochs": 4, "batch_size": 25, "optimizer": "adam", "lr": 2e-2, "schedule": "cosine",
                "augment": "none", "threads": 1}


def test_ensembles_tiny_run_matches_the_ensemble_commands(tmp_path):
    import json

    config = {"members": 2, "rounds": 2, "shrinkage": 0.5, "cycles": 2, "tta": "flip", "seeds": 1, "resamples": 100,
              "train": TINY_FASTNET}
    result, verdict = run_tiny("ensembles", config, tmp_path)
    n = result.numbers
    runs = tmp_path / "runs" / "seed0"
    # the per-image re-evaluation reproduces what bag and boost report themselves
    assert n["per_seed"]["bagging"][0] == pytest.approx(json.loads((runs / "bag" / "bag.json").read_text())["top1"])
    boost = json.loads((runs / "boost" / "boost.json").read_text())
    assert n["per_seed"]["boosting"][0] == pytest.approx(boost["ensemble"]["top1"])
    assert len(list((runs / "snapshot").glob("snapshot-*.safetensors"))) == 2
    assert n["test_images"] == 500
    for m in ("bagging", "boosting", "snapshot", "TTA"):
        assert n["vs_single"][m]["mean_diff"] == pytest.approx(n["per_seed"][m][0] - n["per_seed"]["single"][0])
        low, high = n["interval"][m]
        assert low <= n["per_seed"][m][0] <= high
    assert verdict.status in ("confirmed", "partly", "not confirmed")


def test_train_config_is_quiet_and_seeded(tmp_path):
    cfg = train_config({"model": "fastnet", "model_kwargs": {"widths": [4, 8]}, "epochs": 2}, 3, tmp_path,
                       eval_test=True)
    assert (cfg.seed, cfg.out_dir, cfg.progress, cfg.plots, cfg.tensorboard) == (3, str(tmp_path), "none", False,
                                                                                  False)
    assert cfg.eval_test is True and cfg.model_kwargs == {"widths": [4, 8]}
    assert train_config({"epochs": 2}, 0, tmp_path).eval_test is False


# ============================================================================ bias_variance
def bv_point(label, bias, variance, n=10000):
    return {"label": label, "bias": bias, "variance": variance, "loss": bias + variance / 2,
            "bias_se": binomial_se(bias, n)}


def test_binomial_se_exact():
    assert binomial_se(0.2, 10000) == pytest.approx(0.004)
    assert binomial_se(0.0, 100) == 0.0


def test_bias_variance_rule_reaches_every_status():
    rule = get_experiment("bias_variance").verdict
    v = rule({"points": [bv_point("2-4", 0.30, 0.10), bv_point("4-8", 0.25, 0.12), bv_point("8-16", 0.20, 0.15)]})
    assert v.status == "confirmed" and "0.300 -> 0.200" in v.reason
    partly = rule({"points": [bv_point("2-4", 0.30, 0.10), bv_point("8-16", 0.20, 0.08)]})
    assert partly.status == "partly" and "Neal" in partly.reason
    assert rule({"points": [bv_point("2-4", 0.30, 0.10), bv_point("8-16", 0.30, 0.12)]}).status == "partly"
    # a bias drop within two standard errors (2 * 0.0046) is not a fall
    assert rule({"points": [bv_point("2-4", 0.30, 0.10), bv_point("8-16", 0.295, 0.08)]}).status == "not confirmed"


def test_bias_variance_tiny_run_decomposes_each_width(tmp_path):
    config = {"models": 2, "widths": [[2, 4], [4, 8]], "train": {**TINY_FASTNET, "epochs": 1}}
    result, verdict = run_tiny("bias_variance", config, tmp_path)
    points = result.numbers["points"]
    assert [p["label"] for p in points] == ["2-4", "4-8"]
    for p in points:
        assert p["loss"] == pytest.approx(p["bias"] + p["net_variance"])  # Domingos: loss = bias + net variance
        assert p["bias_se"] == pytest.approx(math.sqrt(p["bias"] * (1 - p["bias"]) / 500))
        assert p["models"] == 2 and p["n"] == 500
    assert len(list((tmp_path / "runs" / "biasvar").glob("widths=*/model-0*"))) == 4
    assert verdict.status in ("confirmed", "partly", "not confirmed")


# ============================================================================ cross_validation
def cv_row(seed, mean, std, test):
    return {"seed": seed, "cv_mean": mean, "cv_std": std, "low": mean - 2 * std, "high": mean + 2 * std,
            "test_top1": test}


def test_cross_validation_rule_reaches_every_status():
    rule = get_experiment("cross_validation").verdict
    v = rule({"folds": 5, "per_seed": [cv_row(0, 0.80, 0.01, 0.81), cv_row(1, 0.80, 0.01, 0.82)]})
    assert v.status == "confirmed" and "2 of 2" in v.reason and "pessimistic" not in v.reason
    assert "test minus CV mean +1.5 points" in v.reason
    v = rule({"folds": 5, "per_seed": [cv_row(0, 0.80, 0.01, 0.81), cv_row(1, 0.80, 0.01, 0.83)]})
    assert v.status == "partly" and "above it on 1" in v.reason and "4/5" in v.reason
    v = rule({"folds": 5, "per_seed": [cv_row(0, 0.80, 0.01, 0.85), cv_row(1, 0.80, 0.01, 0.75)]})
    assert v.status == "not confirmed" and "above it on 1" in v.reason


def test_cross_validation_tiny_run(tmp_path):
    train = {"model": "fastnet", "model_kwargs": {"widths": [4, 8]}, "data": "synthetic", "train_subset": 150,
             "epochs": 3, "batch_size": 25, "optimizer": "adam", "lr": 2e-2, "schedule": "cosine",
             "augment": "none", "threads": 1}
    result, verdict = run_tiny("cross_validation", {"folds": 3, "seeds": 1, "train": train}, tmp_path)
    row = result.numbers["per_seed"][0]
    assert len(row["folds"]) == 3
    assert row["cv_mean"] == pytest.approx(sum(row["folds"]) / 3)
    assert row["low"] == pytest.approx(row["cv_mean"] - 2 * row["cv_std"])
    assert row["test_minus_cv"] == pytest.approx(row["test_top1"] - row["cv_mean"])
    assert row["cv_std"] > 0 and row["test_top1"] > 0.15  # folds differ; the tested model beats chance (10 %)
    assert verdict.status in ("confirmed", "partly", "not confirmed")
