"""Bagging five small CNNs on real Fashion-MNIST, voting rules, and combining saved run directories."""

import json
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main
from cnnlab.ensemble import bag, check_compatible, evaluate_ensemble, load_member, vote
from cnnlab.errors import ConfigError


@pytest.fixture(scope="module")
def bagged(fmnist, tiny_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("bag")
    return bag(tiny_cfg, members=5, vote="soft", data=fmnist, out_dir=out)


def test_bagging_beats_its_mean_member(bagged):
    assert len(bagged.members) == 5 and bagged.n == 500
    accs = [m.top1 for m in bagged.members]
    assert min(accs) > 0.4  # the majority class gets 0.10
    assert len(set(accs)) > 1  # different resamples and seeds give different members
    assert bagged.top1 > bagged.mean_member + 0.005
    assert bagged.gain == pytest.approx(bagged.top1 - sum(accs) / 5)
    assert bagged.by_size[0] == accs[0] and bagged.by_size[-1] == bagged.top1
    assert set(bagged.votes) == {"soft", "hard"} and bagged.votes["soft"] == bagged.top1
    summary = json.loads((Path(bagged.out_dir) / "bag.json").read_text())
    assert summary["top1"] == bagged.top1 and summary["gain"] == pytest.approx(bagged.gain)


def test_members_train_on_bootstrap_resamples(fmnist, tiny_cfg, tmp_path, monkeypatch):
    import cnnlab.ensemble.members as members

    seen = []
    monkeypatch.setattr(members, "train_member", lambda job, data: seen.append(job) or _fake_run(job))
    monkeypatch.setattr("cnnlab.ensemble.bagging.load_member", lambda path, name=None: None)
    monkeypatch.setattr("cnnlab.ensemble.bagging.evaluate_ensemble", _stop)
    with pytest.raises(_Stop):
        bag(tiny_cfg, members=3, data=fmnist, out_dir=tmp_path)
    n = len(fmnist.train)
    assert len(seen) == 3
    for i, job in enumerate(seen):
        assert job.train_idx is not None
        idx = torch.tensor(job.train_idx)
        assert idx.numel() == n and idx.max() < n
        distinct = idx.unique().numel() / n
        assert 0.58 < distinct < 0.69  # 1 - 1/e = 0.632 of the images appear in a bootstrap resample
        assert job.cfg["seed"] == tiny_cfg.seed + i and job.cfg["out_dir"].endswith(f"member-{i:02d}")
    assert seen[0].train_idx != seen[1].train_idx


class _Stop(Exception):
    pass


def _stop(*a, **k):
    raise _Stop


def _fake_run(job):
    from cnnlab.ensemble import MemberRun

    return MemberRun(job.name, job.cfg["out_dir"], {})


def test_vote_rules_by_hand():
    # three members, two classes-worth of mass: the majority (hard) and the mean probability (soft) disagree
    p = torch.tensor([[[0.9, 0.1, 0.0]], [[0.4, 0.6, 0.0]], [[0.4, 0.6, 0.0]]])
    assert vote(p, "hard").tolist() == [1] and vote(p, "soft").tolist() == [0]
    # a tied hard vote goes to the class with the larger summed probability (not the lower index)
    tie = torch.tensor([[[0.6, 0.4, 0.0]], [[0.3, 0.7, 0.0]]])
    assert vote(tie, "hard").tolist() == [1]
    # weights (SAMME's alphas) count votes
    assert vote(p, "hard", weights=[3.0, 1.0, 1.0]).tolist() == [0]
    with pytest.raises(ConfigError, match="not one of"):
        vote(p, "median")


def test_saved_run_directories_recombine_to_the_same_numbers(bagged, fmnist, capsys):
    members = [load_member(m.path.rsplit("/", 1)[0]) for m in bagged.members]
    again, probs = evaluate_ensemble(members, fmnist.test, vote="soft")
    assert [m.top1 for m in again.members] == [m.top1 for m in bagged.members]
    assert again.top1 == bagged.top1 and probs.shape == (5, 500, 10)
    hard, _ = evaluate_ensemble(members, fmnist.test, vote="hard")
    assert hard.top1 == bagged.votes["hard"]


def test_incompatible_members_and_missing_checkpoints(bagged, tmp_path, capsys):
    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, fit

    synth = load_dataset("synthetic", "train").subset(torch.arange(64))
    other = fit(TrainConfig(model="lenet5_modern", data="synthetic", epochs=1, batch_size=64, threads=1,
                            progress="none", plots=False, tensorboard=False, eval_test=False,
                            out_dir=str(tmp_path / "synthetic")), train_data=synth).run_dir
    member = bagged.members[0].path.rsplit("/", 1)[0]
    with pytest.raises(ConfigError, match="different classes"):
        check_compatible([load_member(member), load_member(other)])
    assert main(["ensemble", member, str(other), "--eval"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different classes" in err
    (tmp_path / "empty").mkdir()
    assert main(["ensemble", member, str(tmp_path / "empty"), "--eval"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no checkpoint" in err
    assert main(["ensemble", member, str(tmp_path / "empty.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err
