"""Stratified k-fold cross-validation on real Fashion-MNIST: disjoint stratified folds, honest statistics."""

import statistics

import pytest
import torch

import cnnlab.ensemble.members as members
from cnnlab.cli import main
from cnnlab.ensemble import MemberData, cross_validate


def test_folds_are_disjoint_stratified_and_summarised(fmnist, tiny_cfg, tmp_path, monkeypatch):
    data = MemberData(fmnist.train.subset(torch.arange(600)), None, "none")
    jobs = []
    real = members.train_member
    monkeypatch.setattr(members, "train_member", lambda job, d: jobs.append(job) or real(job, d))
    result = cross_validate(tiny_cfg, folds=3, data=data, out_dir=tmp_path)
    labels = data.train.labels
    vals = [torch.tensor(j.val_idx) for j in jobs]
    assert len(jobs) == 3 and sum(v.numel() for v in vals) == 600
    assert torch.cat(vals).unique().numel() == 600  # disjoint and covering
    for j, v in zip(jobs, vals):
        train = torch.tensor(j.train_idx)
        assert set(train.tolist()).isdisjoint(v.tolist()) and train.numel() + v.numel() == 600
        fold_counts = torch.bincount(labels[v], minlength=10).double()
        assert (fold_counts - torch.bincount(labels, minlength=10) / 3).abs().max() <= 1  # stratified
        assert not j.evaluate_test
    again = []
    monkeypatch.setattr(members, "train_member", lambda job, d: again.append(job) or _stop())
    with pytest.raises(RuntimeError):
        cross_validate(tiny_cfg, folds=3, data=data, out_dir=tmp_path / "again")
    assert again[0].val_idx == jobs[0].val_idx  # seeded: the same folds again

    top1 = [f.metrics["top1"] for f in result.folds]
    assert [f.n_val for f in result.folds] == [v.numel() for v in vals]
    assert min(top1) > 0.4  # majority class: 0.10
    assert result.mean["top1"] == pytest.approx(statistics.mean(top1))
    assert result.std["top1"] == pytest.approx(statistics.stdev(top1))
    assert {"top1", "top5", "loss", "balanced_acc", "train_loss", "train_top1"} <= set(result.mean)
    assert all(f.metrics["top5"] >= f.metrics["top1"] for f in result.folds)
    rows = (tmp_path / "cv.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 + 2 and rows[-2].startswith("mean,")
    assert (tmp_path / "fold-2" / "last.safetensors").is_file()


def _stop():
    raise RuntimeError("stop")


@pytest.mark.parametrize("argv,message", [
    (["cv", "--folds", "1"], "--folds must be an integer >= 2"),
    (["bag", "--members", "0"], "--members must be an integer >= 1"),
    (["boost", "--rounds", "0"], "--rounds must be an integer >= 1"),
    (["boost", "--shrinkage", "0"], "--shrinkage must be a number in (0, 1]"),
    (["biasvar", "--models", "1"], "--models must be an integer >= 2"),
    (["biasvar", "--sweep", "epochs"], "expected KEY=VALUES"),
    (["ensemble", "--eval", "/nonexistent/run"], "does not exist"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
