"""Stratified k-fold cross-validation (Kohavi 1995, *A study of cross-validation and bootstrap for accuracy
estimation and model selection*: stratified 10-fold is the recommended estimator).

The training images are dealt into ``k`` disjoint, seeded, stratified folds
(:func:`cnnlab.data.kfold_indices`); fold ``i`` trains on the other ``k - 1`` folds and is evaluated on
fold ``i`` (passed to ``fit`` as its validation set, so early stopping, if configured, watches it).
Every metric is reported per fold and as mean and sample standard deviation (``ddof = 1``) over folds.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cnnlab._io import atomic_write
from cnnlab.ensemble.members import (
    MemberData,
    MemberJob,
    MemberRun,
    load_data,
    member_config,
    out_dir_for,
    run_members,
    source_of,
)
from cnnlab.errors import ConfigError

METRICS = ("top1", "top5", "balanced_acc", "loss", "top1_no_tta", "train_top1", "train_loss")


@dataclass
class FoldResult:
    fold: int
    run_dir: str
    n_train: int
    n_val: int
    metrics: dict[str, float]
    per_class: list[float]


@dataclass
class CVResult:
    """Per-fold metrics and their mean and standard deviation over the ``k`` folds."""

    folds: list[FoldResult]
    mean: dict[str, float]
    std: dict[str, float]
    k: int
    seed: int
    classes: list[str]
    out_dir: str
    wall_s: float = 0.0
    per_class_mean: list[float] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        return list(self.mean)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_csv(self) -> str:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["fold", "n_train", "n_val", *self.metrics])
        for f in self.folds:
            w.writerow([f.fold, f.n_train, f.n_val, *(f.metrics[m] for m in self.metrics)])
        w.writerow(["mean", "", "", *(self.mean[m] for m in self.metrics)])
        w.writerow(["std", "", "", *(self.std[m] for m in self.metrics)])
        return buf.getvalue()


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof = 1``; 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def _fold_metrics(run: MemberRun) -> tuple[dict[str, float], list[float]]:
    f, last = run.final, run.last_epoch
    per_class = list(f.get("per_class", []))
    values = {"top1": f.get("top1"), "top5": f.get("top5"),
              "balanced_acc": sum(per_class) / len(per_class) if per_class else None, "loss": f.get("loss"),
              "top1_no_tta": f.get("top1_no_tta"), "train_top1": last.get("train_top1"),
              "train_loss": last.get("train_loss")}
    return {k: float(v) for k, v in values.items() if v is not None}, per_class


def cross_validate(cfg, folds: int = 5, *, workers: int = 1, out_dir: str | Path | None = None,
                   data: MemberData | None = None, on_fold: Callable[[MemberRun], None] | None = None) -> CVResult:
    """``folds``-fold stratified cross-validation of ``cfg`` on its training images (folds seeded by
    ``cfg.seed``). Fold ``i`` is the run directory ``OUT/fold-i``; writes ``OUT/cv.json`` and ``OUT/cv.csv``."""
    from cnnlab.data import kfold_indices

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"--folds must be an integer >= 2 (each fold is validated by a model trained on the "
                          f"others), got {folds!r}")
    t0 = time.perf_counter()
    out = out_dir_for("cv", cfg, out_dir)
    spec = source_of(cfg)
    data = data or load_data(spec, need_test=False)
    splits = kfold_indices(data.train.labels, folds, seed=cfg.seed)
    jobs = [MemberJob(f"fold-{i}", member_config(cfg, out, f"fold-{i}", eval_test=False),
                      tr.tolist(), va.tolist(), evaluate_test=False) for i, (tr, va) in enumerate(splits)]
    runs = run_members(jobs, data, spec, workers, on_fold)
    results = []
    for i, (run, (tr, va)) in enumerate(zip(runs, splits)):
        metrics, per_class = _fold_metrics(run)
        results.append(FoldResult(i, run.run_dir, tr.numel(), va.numel(), metrics, per_class))
    names = [m for m in METRICS if all(m in f.metrics for f in results)]
    stats = {m: mean_std([f.metrics[m] for f in results]) for m in names}
    k = len(results[0].per_class)
    per_class_mean = [sum(f.per_class[c] for f in results) / len(results) for c in range(k)]
    result = CVResult(results, {m: s[0] for m, s in stats.items()}, {m: s[1] for m, s in stats.items()}, folds,
                      cfg.seed, list(data.train.classes), str(out), time.perf_counter() - t0, per_class_mean)
    atomic_write(out / "cv.json", json.dumps(result.to_dict(), indent=1).encode())
    atomic_write(out / "cv.csv", result.to_csv().encode())
    return result
