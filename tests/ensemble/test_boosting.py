"""SAMME (Zhu et al. 2009): a hand-computed weight update, and a real run whose logged errors are re-derived."""

import math

import pytest
import torch

from cnnlab.ensemble import boost, load_member, member_probs, samme_alpha, samme_update


def test_samme_update_by_hand():
    # 4 images, weights 1/4, the learner misses image 0, K = 3:
    # err = 1/4, alpha = log(0.75 / 0.25) + log(2) = log 6; w0 <- 1/4 * 6 = 3/2, others 1/4; sum 9/4
    w, err, alpha = samme_update(torch.full((4,), 0.25), torch.tensor([True, False, False, False]), 3)
    assert err == pytest.approx(0.25)
    assert alpha == pytest.approx(math.log(6))
    assert w.tolist() == pytest.approx([2 / 3, 1 / 9, 1 / 9, 1 / 9])
    assert float(w.sum()) == pytest.approx(1.0)


def test_samme_update_with_shrinkage_by_hand():
    # the same case with nu = 0.5 (scikit-learn's learning_rate): alpha = 0.5 log 6, w0 <- 1/4 * sqrt(6)
    w, err, alpha = samme_update(torch.full((4,), 0.25), torch.tensor([True, False, False, False]), 3, 0.5)
    assert err == pytest.approx(0.25) and alpha == pytest.approx(0.5 * math.log(6))
    r6 = math.sqrt(6)
    assert w.tolist() == pytest.approx([r6 / (r6 + 3), 1 / (r6 + 3), 1 / (r6 + 3), 1 / (r6 + 3)])


def test_alpha_is_zero_at_chance_and_grows_with_accuracy():
    assert samme_alpha(0.9, 10) == pytest.approx(0.0, abs=1e-12)  # 1 - 1/K: no better than guessing
    assert samme_alpha(0.5, 2) == pytest.approx(0.0, abs=1e-12)  # AdaBoost's two-class case
    assert samme_alpha(0.5, 10) == pytest.approx(math.log(9))  # SAMME: useful if better than 1 - 1/K
    assert samme_alpha(0.95, 10) < 0
    assert math.isfinite(samme_alpha(0.0, 10))


@pytest.mark.parametrize("nu", [1.0, 0.3])
def test_boosting_run_logs_what_samme_computes(fmnist, tiny_cfg, tmp_path, nu):
    cfg = tiny_cfg.replace(epochs=1)
    result = boost(cfg, rounds=2, mode="loss", data=fmnist, out_dir=tmp_path, shrinkage=nu)
    rounds = result.rounds
    assert len(rounds) == 2 and result.stopped == ""
    for r in rounds:
        assert r.alpha == pytest.approx(samme_alpha(r.weighted_error, 10, nu))
        assert 0 < r.weighted_error < 0.9
    assert rounds[0].ensemble_top1 == rounds[0].member_top1  # one learner: the vote is its prediction
    assert result.ensemble.top1 == rounds[-1].ensemble_top1 > 0.25  # majority-class baseline: 0.10
    assert [m.top1 for m in result.ensemble.members] == [r.member_top1 for r in rounds]
    # re-derive round 2's weighted error from the saved learners: weights after round 1, round 2's misses
    y = fmnist.train.labels
    miss = [member_probs(load_member(r.run_dir), fmnist.train).argmax(1) != y for r in rounds]
    w1, err1, _ = samme_update(torch.full((len(y),), 1 / len(y)), miss[0], 10, nu)
    assert err1 == pytest.approx(rounds[0].weighted_error)
    err2 = float((w1 * miss[1]).sum())
    assert err2 == pytest.approx(rounds[1].weighted_error)
    assert err2 != pytest.approx(float(miss[1].double().mean()), abs=1e-3)  # the weights really changed
    assert (tmp_path / "rounds.csv").read_text().count("\n") == 3 and (tmp_path / "boost.json").is_file()
