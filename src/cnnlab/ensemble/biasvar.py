"""Bias-variance decomposition of the 0-1 loss (Domingos 2000, *A unified bias-variance decomposition for
zero-one and squared loss*, AAAI; Theorems 2-3), estimated over models trained on bootstrap resamples.

For a test image ``x`` with label ``t`` and predictions ``y_D`` of models trained on training sets ``D``
(here: bootstrap resamples), with noise ignored (the optimal prediction is taken to be ``t``):

- main prediction ``y_m`` = the most frequent ``y_D`` (ties: the lowest class index);
- bias ``B(x) = [y_m != t]``;
- variance ``V(x) = P_D(y_D != y_m)``;
- expected loss ``L(x) = P_D(y_D != t) = B(x) + c2(x) V(x)`` with ``c2 = 1`` if ``B(x) = 0`` and
  ``c2 = -P_D(y_D = t | y_D != y_m)`` if ``B(x) = 1`` (Theorem 3, multi-class; for two classes the
  conditional probability is 1 and ``c2 = -1``, Theorem 2).

Averaged over the test images, ``loss = bias + net variance`` exactly, where the *net variance*
``E_x[c2 V] = V_unbiased - V_biased`` subtracts the variance on biased images: there, disagreeing with
a wrong main prediction can only help. mlxtend's ``bias_variance_decomp`` reports the unsigned
``E_x[V]``, which does not add up to the loss; both are reported here. For the 0-1 loss the bias is 0 or
1 per image, so bias^2 = bias.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from cnnlab._io import atomic_write
from cnnlab.errors import ConfigError


@dataclass
class BiasVariance:
    """Test-set averages of the 0-1 loss decomposition (``loss == bias + net_variance``)."""

    loss: float  # E_x E_D [y_D != t]: the mean member's test error
    bias: float  # E_x [y_m != t]: the main prediction's test error
    variance: float  # E_x P_D(y_D != y_m), unsigned (mlxtend's "variance")
    net_variance: float  # E_x [c2 V] = var_unbiased - var_biased
    var_unbiased: float  # E_x [(1 - B) V]
    var_biased: float  # E_x [B V P_D(y_D = t | y_D != y_m)]  (subtracted)
    models: int
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def main_prediction(preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The mode of each column of ``preds [M, N]`` (ties: the lowest class index)."""
    counts = torch.nn.functional.one_hot(preds.long(), num_classes).sum(0)  # [N, K]
    return counts.argmax(1)  # torch.argmax returns the first maximum


def decompose(preds, labels, num_classes: int | None = None) -> BiasVariance:
    """Domingos' decomposition from the class predictions ``preds [M, N]`` of ``M`` models on ``N`` images."""
    preds = torch.as_tensor(preds, dtype=torch.int64)
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if preds.ndim != 2 or preds.shape[1] != labels.numel() or preds.shape[0] < 1:
        raise ConfigError(f"decompose needs predictions [models, N] and N labels, got {tuple(preds.shape)} "
                          f"and {labels.numel()}")
    k = int(num_classes if num_classes is not None else max(int(preds.max()), int(labels.max())) + 1)
    ym = main_prediction(preds, k)
    loss = (preds != labels).double().mean(0)  # P_D(y_D != t) per image
    biased = (ym != labels).double()
    var = (preds != ym).double().mean(0)  # P_D(y_D != y_m)
    # P_D(y_D = t and y_D != y_m) = P_D(y_D = t | y_D != y_m) * V  on biased images (t != y_m there)
    var_b = biased * ((preds == labels) & (preds != ym)).double().mean(0)
    var_u = (1 - biased) * var
    return BiasVariance(float(loss.mean()), float(biased.mean()), float(var.mean()), float((var_u - var_b).mean()),
                        float(var_u.mean()), float(var_b.mean()), int(preds.shape[0]), int(labels.numel()))


@dataclass
class SweepPoint:
    value: Any
    decomposition: BiasVariance
    run_dirs: list[str]


@dataclass
class BiasVarianceResult:
    """One decomposition per value of the swept option (a single point without a sweep)."""

    key: str | None
    points: list[SweepPoint]
    out_dir: str
    data: str
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        return {"key": self.key, "out_dir": self.out_dir, "data": self.data, "wall_s": self.wall_s,
                "points": [{"value": p.value, **p.decomposition.to_dict(), "run_dirs": p.run_dirs}
                           for p in self.points]}


def _apply(cfg, key: str, value: Any):
    """``cfg`` with ``key`` set: a TrainConfig field, or else a model builder keyword (``model_kwargs``)."""
    from dataclasses import fields

    if key in {f.name for f in fields(cfg)}:
        return cfg.replace(**{key: value})
    name = key.removeprefix("model_kwargs.")
    return cfg.replace(model_kwargs={**cfg.model_kwargs, name: value})


def bias_variance(cfg, models: int = 5, *, sweep: str | None = None, values: Sequence[Any] = (), workers: int = 1,
                  out_dir: str | Path | None = None, holdout: float = 0.2,
                  on_member: Callable[[Any], None] | None = None) -> BiasVarianceResult:
    """Train ``models`` members of ``cfg`` on bootstrap resamples (seeds ``cfg.seed + i``), decompose their
    test 0-1 loss; with ``sweep`` (a TrainConfig field such as ``epochs``/``model``, or a model keyword such
    as ``widths``) once per value -- a capacity sweep; every value trains on the same ``models`` resamples.
    Writes ``OUT/biasvar.json``."""
    from cnnlab.data import bootstrap_indices
    from cnnlab.ensemble.combine import load_member, member_probs
    from cnnlab.ensemble.members import (
        MemberJob,
        load_data,
        member_config,
        out_dir_for,
        run_members,
        source_of,
        torch_threads,
    )
    from cnnlab.train.engine import resolve_device

    if isinstance(models, bool) or not isinstance(models, int) or models < 2:
        raise ConfigError(f"--models must be an integer >= 2 (variance needs several models), got {models!r}")
    if sweep is not None and not values:
        raise ConfigError(f"--sweep {sweep} needs values, e.g. --sweep {sweep}=1,2,4")
    t0 = time.perf_counter()
    out = out_dir_for("biasvar", cfg, out_dir)
    spec = source_of(cfg, holdout)
    data = load_data(spec)
    settings = [(None, cfg)] if sweep is None else [(v, _apply(cfg, sweep, v)) for v in values]
    samples = [bootstrap_indices(data.train.labels, seed=cfg.seed + i)[0].tolist() for i in range(models)]
    device = resolve_device(cfg.device)
    points = []
    for value, c in settings:
        sub = out if sweep is None else out / f"{sweep}={_label(value)}"
        jobs = [MemberJob(f"model-{i:02d}", member_config(c, sub, f"model-{i:02d}", seed=cfg.seed + i), samples[i])
                for i in range(models)]
        runs = run_members(jobs, data, spec, workers, on_member)
        with torch_threads(c.threads):
            preds = torch.stack([member_probs(load_member(r.run_dir, r.name), data.test, tta=c.tta,
                                              batch_size=c.eval_batch_size, device=device).argmax(1) for r in runs])
        points.append(SweepPoint(value, decompose(preds, data.test.labels, data.test.num_classes),
                                 [r.run_dir for r in runs]))
    result = BiasVarianceResult(sweep, points, str(out), f"{cfg.data} ({data.test_name})", time.perf_counter() - t0)
    atomic_write(out / "biasvar.json", json.dumps(result.to_dict(), indent=1).encode())
    return result


def _label(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text).strip("-")
