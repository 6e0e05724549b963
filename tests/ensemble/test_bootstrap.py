"""Percentile bootstrap intervals: cover the estimate, have the binomial width, narrow like 1/sqrt(n)."""

import json
import math

import pytest
import torch

from cnnlab.ensemble import bootstrap_accuracy
from cnnlab.errors import ConfigError


def _flags(n: int, p: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    flags = torch.zeros(n, dtype=torch.bool)
    flags[torch.randperm(n, generator=g)[: round(p * n)]] = True
    return flags


def test_interval_covers_the_estimate_and_has_the_binomial_width():
    correct = _flags(2000, 0.85)
    labels = torch.arange(2000) % 4
    r = bootstrap_accuracy(correct, labels, resamples=1000, seed=0)
    assert r.top1.point == pytest.approx(0.85)
    assert r.top1.low < 0.85 < r.top1.high
    normal = 2 * 1.96 * math.sqrt(0.85 * 0.15 / 2000)  # the normal-approximation 95 % width, 0.0313
    assert r.top1.width == pytest.approx(normal, rel=0.12)
    for c, iv in enumerate(r.per_class):
        assert iv.point == pytest.approx(float(correct[labels == c].double().mean()))
        assert iv.low <= iv.point <= iv.high
        assert iv.width > r.top1.width  # a class has a quarter of the images
    same = bootstrap_accuracy(correct, labels, resamples=1000, seed=0)
    assert (same.top1.low, same.top1.high) == (r.top1.low, r.top1.high)  # seeded


def test_interval_narrows_with_n():
    widths = [bootstrap_accuracy(_flags(n, 0.8), torch.zeros(n, dtype=torch.long), resamples=600).top1.width
              for n in (250, 1000, 4000)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.2)  # sqrt(4000 / 250)


def test_perfect_class_and_bad_input():
    labels = torch.tensor([0] * 50 + [1] * 50)
    correct = torch.cat([torch.ones(50, dtype=torch.bool), _flags(50, 0.5)])
    r = bootstrap_accuracy(correct, labels, resamples=200, confidence=0.9)
    assert (r.per_class[0].low, r.per_class[0].high) == (1.0, 1.0)
    assert r.per_class[1].low < 0.5 < r.per_class[1].high
    with pytest.raises(ConfigError, match="resamples"):
        bootstrap_accuracy(correct, labels, resamples=1)
    with pytest.raises(ConfigError, match="confidence"):
        bootstrap_accuracy(correct, labels, confidence=95)


def test_eval_bootstrap_cli(fmnist, tiny_cfg, tmp_path, capsys):
    from cnnlab.cli import main
    from cnnlab.train import fit

    run = fit(tiny_cfg.replace(epochs=1, out_dir=str(tmp_path / "run")), train_data=fmnist.train,
              test_data=fmnist.test).run_dir
    assert main(["eval", "--checkpoint", str(run), "--bootstrap", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    boot = out["bootstrap"]
    assert out["n"] == 10000 and boot["n"] == 10000 and boot["resamples"] == 300
    assert boot["top1"]["point"] == pytest.approx(out["top1"])  # same predictions as the metrics
    assert boot["top1"]["low"] < out["top1"] < boot["top1"]["high"]
    assert 0.005 < boot["top1"]["high"] - boot["top1"]["low"] < 0.03  # binomial width at n = 10,000: ~0.018
    assert [c["point"] for c in boot["per_class"]] == pytest.approx(out["per_class"])
    assert main(["eval", "--checkpoint", str(run), "--bootstrap", "200", "--plot", str(tmp_path / "ci.png")]) == 0
    text = capsys.readouterr().out
    assert "percentile bootstrap" in text and "Ankle boot" in text and (tmp_path / "ci.png").stat().st_size > 1000
    assert main(["eval", "--checkpoint", str(run), "--bootstrap", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_percentile_interval_agrees_with_scipy():
    """The hand-written percentile interval = scipy.stats.bootstrap(method="percentile") within Monte-Carlo
    error (different random streams: the endpoints agree to ~1/sqrt(B) of the interval's scale)."""
    import numpy as np
    from scipy.stats import bootstrap

    flags = _flags(2000, 0.8, seed=3)
    labels = torch.arange(2000) % 4
    ours = bootstrap_accuracy(flags, labels, resamples=4000, seed=0)
    ref = bootstrap((flags.numpy().astype(float),), np.mean, n_resamples=4000, method="percentile",
                    confidence_level=0.95, random_state=1).confidence_interval
    assert ours.top1.low == pytest.approx(ref.low, abs=0.0015)
    assert ours.top1.high == pytest.approx(ref.high, abs=0.0015)
    assert ref.high - ref.low > 0.03  # the check is not vacuous: a ~3.5-point interval
