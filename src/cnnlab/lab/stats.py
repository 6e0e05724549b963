"""Uncertainty over seeds: mean ± std, and the paired comparison of two arms trained on the same seeds.

``paired_comparison(a, b)`` tests the per-seed differences ``b - a`` with scipy's paired t-test
(``scipy.stats.ttest_rel``, its confidence interval for the mean difference) and a percentile bootstrap
interval of the mean difference (``scipy.stats.bootstrap``; Efron & Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["mean_std", "paired_comparison"]


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "std", "n"}`` with the sample standard deviation (ddof=1; 0 for one value)."""
    x = np.asarray(values, dtype=float)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0, "n": int(x.size)}


def paired_comparison(a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """Per-seed differences ``b - a``: mean, t-test p-value and interval, bootstrap interval.
    Intervals and p are None where they cannot be computed (one seed, or all differences equal)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_comparison needs two equal-length 1-D sequences, got {a.shape} and {b.shape}")
    diff = b - a
    out: dict[str, Any] = {"n": int(diff.size), "mean_diff": float(diff.mean()), "confidence": confidence,
                           "p_value": None, "t_ci": None, "bootstrap_ci": None}
    if diff.size < 2 or np.allclose(diff, diff[0]):
        return out
    test = stats.ttest_rel(b, a)
    ci = test.confidence_interval(confidence)
    out["p_value"] = float(test.pvalue)
    out["t_ci"] = [float(ci.low), float(ci.high)]
    boot = stats.bootstrap((diff,), np.mean, confidence_level=confidence, method="percentile",
                           n_resamples=2000, rng=np.random.default_rng(seed))
    low, high = boot.confidence_interval
    if not (math.isnan(low) or math.isnan(high)):
        out["bootstrap_ci"] = [float(low), float(high)]
    return out
