"""Bootstrap confidence intervals of test accuracy (Efron & Tibshirani 1993, *An Introduction to the
Bootstrap*, §13.3: the percentile interval).

The evaluated images are resampled ``B`` times with replacement; each resample's accuracy (overall and
per class: correct / count among the resample's images of that class) is computed, and the interval is
the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those ``B`` values. The point
estimate is the accuracy on the images themselves. The interval width shrinks like ``1 / sqrt(n)``.

Why not ``scipy.stats.bootstrap``: overall and per-class accuracy must come from the *same* resamples (a
resample's class counts vary), which this computes in one vectorised pass over ``B x n`` draws; scipy
resamples one statistic at a time. ``tests/ensemble/test_bootstrap.py`` checks that the intervals agree
with ``scipy.stats.bootstrap(method="percentile")`` within Monte-Carlo error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from cnnlab.errors import ConfigError


@dataclass
class Interval:
    point: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass
class BootstrapResult:
    """``top1`` and ``per_class`` (one :class:`Interval` per class; NaN where a class is absent) from
    ``resamples`` bootstrap resamples of ``n`` predictions at level ``confidence``."""

    top1: Interval
    per_class: list[Interval]
    classes: list[str]
    n: int
    resamples: int
    confidence: float
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_accuracy(correct, labels, *, num_classes: int | None = None, resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0, classes: list[str] | None = None,
                       chunk: int = 100) -> BootstrapResult:
    """Percentile bootstrap interval of accuracy from per-image ``correct`` flags and true ``labels``."""
    correct = torch.as_tensor(correct).reshape(-1).to(torch.bool).numpy()
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1).numpy()
    n = correct.size
    if labels.size != n:
        raise ConfigError(f"bootstrap needs one label per prediction ({n} predictions, {labels.size} labels)")
    if n == 0:
        raise ConfigError("bootstrap needs at least one prediction")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 2:
        raise ConfigError(f"the number of bootstrap resamples must be an integer >= 2, got {resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    k = int(num_classes if num_classes is not None else labels.max() + 1)
    rng = np.random.default_rng(seed)
    acc = np.empty(resamples)
    per = np.empty((resamples, k))
    onehot = np.eye(k, dtype=np.int32)[labels]  # [n, K]
    hit = onehot * correct[:, None]
    for lo in range(0, resamples, chunk):
        hi = min(resamples, lo + chunk)
        idx = rng.integers(0, n, size=(hi - lo, n))
        # counts[b, i]: how often image i is drawn in resample b
        counts = np.zeros((hi - lo, n), dtype=np.int32)
        np.add.at(counts, (np.arange(hi - lo)[:, None], idx), 1)
        acc[lo:hi] = counts @ correct.astype(np.int32) / n
        with np.errstate(invalid="ignore", divide="ignore"):
            per[lo:hi] = (counts @ hit) / (counts @ onehot)
    q = ((1 - confidence) / 2, (1 + confidence) / 2)
    low, high = np.quantile(acc, q)
    top1 = Interval(float(correct.mean()), float(low), float(high))
    per_class = []
    for c in range(k):
        members = labels == c
        if not members.any():
            per_class.append(Interval(float("nan"), float("nan"), float("nan")))
            continue
        lo_c, hi_c = np.nanquantile(per[:, c], q)
        per_class.append(Interval(float(correct[members].mean()), float(lo_c), float(hi_c)))
    names = list(classes) if classes is not None else [str(c) for c in range(k)]
    return BootstrapResult(top1, per_class, names, n, resamples, confidence, seed)


@torch.inference_mode()
def predict_labels(model, data, *, tta: str = "none", batch_size: int = 512, device="cpu",
                   prepare=None) -> torch.Tensor:
    """The model's class prediction for every image of ``data`` in order (normalised by the data loader as in
    :func:`cnnlab.train.metrics.evaluate`), as a CPU tensor ``[N]``."""
    from cnnlab.data import build_loader
    from cnnlab.train.metrics import predict_probs

    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for x, _ in build_loader(data, batch_size=batch_size, shuffle=False, device=device):
            if prepare is not None:
                x = prepare(x)
            out.append(predict_probs(model, x, tta).argmax(1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)
