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


@pytest.fixture
def fit_calls(monkeypatch):
    """Every ``fit()`` an ensemble command makes: (training images, sample weights) as the learner received them."""
    import cnnlab.train

    calls, real_fit = [], cnnlab.train.fit

    def spy(cfg, **kw):
        calls.append((kw["train_data"], kw.get("sample_weights")))
        return real_fit(cfg, **kw)

    monkeypatch.setattr(cnnlab.train, "fit", spy)
    return calls


def _misses(rounds, data):
    y = data.train.labels
    return [member_probs(load_member(r.run_dir), data.train).argmax(1) != y for r in rounds]


@pytest.mark.parametrize("nu", [1.0, 0.3])
def test_boosting_run_logs_what_samme_computes(fmnist, tiny_cfg, tmp_path, nu, fit_calls):
    cfg = tiny_cfg.replace(epochs=1)
    result = boost(cfg, rounds=2, mode="loss", data=fmnist, out_dir=tmp_path, shrinkage=nu)
    rounds = result.rounds
    assert len(rounds) == 2 and result.stopped == ""
    for r in rounds:
        assert r.alpha == pytest.approx(samme_alpha(r.weighted_error, 10, nu))
        assert 0 < r.weighted_error < 0.9
    assert rounds[0].ensemble_top1 == rounds[0].member_top1  # one learner: the vote is its prediction
    assert result.ensemble.top1 == rounds[-1].ensemble_top1 > 0.25  # majority-class baseline: 0.10
    if nu < 1:  # with shrinkage the vote beats its average learner (at nu = 1 the poor second learner outvotes
        # the first by a hair: the module docstring's case for shrinkage)
        assert result.ensemble.top1 > sum(r.member_top1 for r in rounds) / len(rounds)
    assert [m.top1 for m in result.ensemble.members] == [r.member_top1 for r in rounds]
    # re-derive round 2's weighted error from the saved learners: weights after round 1, round 2's misses
    y = fmnist.train.labels
    miss = _misses(rounds, fmnist)
    w1, err1, _ = samme_update(torch.full((len(y),), 1 / len(y)), miss[0], 10, nu)
    assert err1 == pytest.approx(rounds[0].weighted_error)
    err2 = float((w1 * miss[1]).sum())
    assert err2 == pytest.approx(rounds[1].weighted_error)
    assert err2 != pytest.approx(float(miss[1].double().mean()), abs=1e-3)  # the weights really changed
    assert (tmp_path / "rounds.csv").read_text().count("\n") == 3 and (tmp_path / "boost.json").is_file()
    # what each learner trained on (weighted-loss mode): all training images, weights n * w_m (mean 1), with
    # w_1 uniform and w_2 = samme_update(w_1, round 1's misses)
    n = len(y)
    assert [len(train) for train, _ in fit_calls] == [n, n]
    assert fit_calls[0][1] is not None and torch.equal(fit_calls[0][1], torch.ones(n))
    torch.testing.assert_close(fit_calls[1][1].double(), w1 * n, rtol=1e-6, atol=1e-6)
    assert fit_calls[1][1][miss[0]].min() > 1 > fit_calls[1][1][~miss[0]].max()  # round 1's misses weigh more


def test_boosting_by_resampling_draws_from_the_samme_weights(fmnist, tiny_cfg, tmp_path, fit_calls):
    cfg = tiny_cfg.replace(epochs=1, seed=4)
    result = boost(cfg, rounds=3, mode="resample", data=fmnist, out_dir=tmp_path, shrinkage=0.5)
    rounds, n = result.rounds, len(fmnist.train)
    assert len(rounds) == 3 and all(w is None for _, w in fit_calls)  # resampling: no loss weights
    mean_member = sum(r.member_top1 for r in rounds) / 3
    assert result.ensemble.top1 > mean_member + 0.05  # the vote beats its average learner (~0.61 vs ~0.47)
    miss = _misses(rounds, fmnist)
    w = torch.full((n,), 1 / n, dtype=torch.float64)
    for m, (train, _) in enumerate(fit_calls):
        # n draws with replacement, probabilities w_m, seeded by the round; the learner gets exactly those images
        g = torch.Generator().manual_seed(cfg.seed + m)
        idx = torch.multinomial(w, n, replacement=True, generator=g)
        assert len(train) == n and torch.equal(train.labels, fmnist.train.labels[idx])
        assert torch.equal(train.images, fmnist.train.images[idx])
        w, err, _ = samme_update(w, miss[m], 10, 0.5)
        assert err == pytest.approx(rounds[m].weighted_error)
    # round 2's draws over-sample round 1's misses (their probability grew by exp(alpha_1))
    idx2 = torch.multinomial(samme_update(torch.full((n,), 1 / n), miss[0], 10, 0.5)[0], n, replacement=True,
                             generator=torch.Generator().manual_seed(cfg.seed + 1))
    assert float(miss[0][idx2].double().mean()) > 1.5 * float(miss[0].double().mean())
