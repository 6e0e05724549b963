"""SAMME boosting with CNN weak learners (Zhu, Zou, Rosset & Hastie 2009, *Multi-class AdaBoost*, Algorithm 2).

With ``n`` training images, weights ``w_i = 1/n``, and for ``m = 1..M``:

1. train ``T_m`` on the weighted training set -- weighted loss (``fit(sample_weights=w)``: the
   cross-entropy's weighted mean) or weighted resampling (``n`` draws with probabilities ``w``);
2. ``err_m = sum_i w_i [c_i != T_m(x_i)] / sum_i w_i``;
3. ``alpha_m = log((1 - err_m) / err_m) + log(K - 1)``;
4. ``w_i <- w_i * exp(alpha_m [c_i != T_m(x_i)])``, renormalised to sum to 1.

The classifier is ``C(x) = argmax_k sum_m alpha_m [T_m(x) = k]``. ``shrinkage`` ``nu`` in (0, 1] multiplies
every ``alpha_m`` in steps 3-4 (Friedman 2001's shrinkage; scikit-learn's ``AdaBoostClassifier(learning_rate=nu)``):
with a strong first learner, ``nu = 1`` gives its few mistakes (often ambiguous or mislabelled images) nearly all
the weight (``1 - 1/K`` of it), and the next learner, trained on little else, is poor on the real distribution.
The ``log(K - 1)`` term makes a learner useful as soon as it beats chance (``err_m < 1 - 1/K``); a learner at
or below chance (``alpha_m <= 0``) is discarded and boosting stops, as in scikit-learn. A learner with
``err_m = 0`` fits the weighted set perfectly: its weights would not change, so boosting stops after it, and
its ``alpha`` is that of ``err = 1e-10`` (the limit ``alpha -> infinity`` made finite).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cnnlab._io import atomic_write
from cnnlab.ensemble.combine import EnsembleResult, load_member, member_probs, score, vote
from cnnlab.ensemble.members import (
    MemberData,
    MemberJob,
    load_data,
    member_config,
    out_dir_for,
    run_members,
    source_of,
    torch_threads,
)
from cnnlab.errors import ConfigError

MODES = ("loss", "resample")
MIN_ERROR = 1e-10


def samme_alpha(err: float, num_classes: int, shrinkage: float = 1.0) -> float:
    """``alpha = nu (log((1 - err) / err) + log(K - 1))`` (Zhu et al. 2009, Algorithm 2, step 2c; ``nu`` =
    ``shrinkage``, 1 in the paper)."""
    err = max(float(err), MIN_ERROR)
    return shrinkage * (math.log((1.0 - err) / err) + math.log(num_classes - 1))


def samme_update(weights: torch.Tensor, miss: torch.Tensor, num_classes: int,
                 shrinkage: float = 1.0) -> tuple[torch.Tensor, float, float]:
    """One SAMME step: ``(new weights summing to 1, weighted error, alpha)`` from the current ``weights`` and
    the weak learner's ``miss`` flags (``True`` where it misclassifies); ``alpha`` includes the shrinkage."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    miss = torch.as_tensor(miss, dtype=torch.bool)
    err = float((w * miss).sum() / w.sum())
    alpha = samme_alpha(err, num_classes, shrinkage)
    new = w * torch.exp(alpha * miss.double())
    return new / new.sum(), err, alpha


@dataclass
class BoostRound:
    round: int
    run_dir: str
    weighted_error: float
    alpha: float
    member_top1: float  # this learner alone, on the evaluation images
    ensemble_top1: float  # the SAMME vote of rounds 1..m, on the evaluation images
    ensemble_train_top1: float  # ... on the (unweighted) training images
    weight_ess: float  # effective sample size of the weights after the round, 1 / sum w^2


@dataclass
class BoostResult:
    rounds: list[BoostRound]
    ensemble: EnsembleResult
    mode: str
    stopped: str  # why boosting ended before ``rounds`` learners, or ""
    out_dir: str
    wall_s: float
    shrinkage: float = 1.0

    def to_dict(self) -> dict:
        return {"rounds": [asdict(r) for r in self.rounds], "ensemble": self.ensemble.to_dict(), "mode": self.mode,
                "shrinkage": self.shrinkage, "stopped": self.stopped, "out_dir": self.out_dir, "wall_s": self.wall_s}

    def to_csv(self) -> str:
        buf = io.StringIO(newline="")
        names = list(asdict(self.rounds[0])) if self.rounds else []
        w = csv.DictWriter(buf, fieldnames=names)
        w.writeheader()
        for r in self.rounds:
            w.writerow(asdict(r))
        return buf.getvalue()


def boost(cfg, rounds: int = 10, *, mode: str = "loss", out_dir: str | Path | None = None, holdout: float = 0.2,
          shrinkage: float = 1.0, data: MemberData | None = None,
          on_round: Callable[[BoostRound], None] | None = None) -> BoostResult:
    """SAMME with ``rounds`` weak learners of ``cfg`` (make them weak: few epochs, a small model) and
    ``shrinkage`` (``nu``, above). Learner ``m`` is the run directory ``OUT/round-XX`` with seed ``cfg.seed + m``;
    writes ``OUT/boost.json``/``rounds.csv``."""
    from cnnlab.train.engine import resolve_device

    check_options(rounds, mode, shrinkage)
    t0 = time.perf_counter()
    out = out_dir_for("boost", cfg, out_dir)
    spec = source_of(cfg, holdout)
    data = data or load_data(spec)
    train, test = data.train, data.test
    n, k = len(train), train.num_classes
    if k < 2:
        raise ConfigError("boosting needs at least two classes")
    device = resolve_device(cfg.device)
    ytrain, ytest = train.labels, test.labels
    w = torch.full((n,), 1.0 / n, dtype=torch.float64)
    log: list[BoostRound] = []
    members, test_probs, train_preds, alphas = [], [], [], []
    stopped = ""
    for m in range(rounds):
        name = f"round-{m:02d}"
        job = learner_job(name, member_config(cfg, out, name, seed=cfg.seed + m), w, mode, cfg.seed + m)
        run = run_members([job], data, spec)[0]
        member = load_member(run.run_dir, name)
        kw = dict(tta=cfg.tta, batch_size=cfg.eval_batch_size, device=device)
        with torch_threads(cfg.threads):
            pred_train = member_probs(member, train, **kw).argmax(1)
        miss = pred_train != ytrain
        new_w, err, alpha = samme_update(w, miss, k, shrinkage)
        if alpha <= 0:
            stopped = no_better_than_chance(m, err, k, first=not members)
            break
        members.append(member)
        alphas.append(alpha)
        train_preds.append(pred_train)
        with torch_threads(cfg.threads):
            test_probs.append(member_probs(member, test, **kw))
        a = torch.tensor(alphas, dtype=torch.float64)
        ens_test = vote(torch.stack(test_probs), "hard", a)
        ens_train = _weighted_vote(torch.stack(train_preds), a, k)
        w = new_w
        row = BoostRound(m + 1, run.run_dir, err, alpha, float((test_probs[-1].argmax(1) == ytest).double().mean()),
                         float((ens_test == ytest).double().mean()), float((ens_train == ytrain).double().mean()),
                         float(1.0 / (w * w).sum()))
        log.append(row)
        if on_round:
            on_round(row)
        if err <= 0:
            stopped = f"round {m + 1}: the learner fits the weighted training set perfectly (error 0)"
            break
    ensemble = score(torch.stack(test_probs), ytest, [(mb.name, str(mb.path)) for mb in members],
                     vote_method="hard", classes=list(train.classes), data=f"{cfg.data} ({data.test_name})",
                     tta=cfg.tta, kind="boosting (SAMME)", weights=alphas)
    ensemble.out_dir, ensemble.wall_s, ensemble.extra = str(out), time.perf_counter() - t0, {"alpha": alphas}
    result = BoostResult(log, ensemble, mode, stopped, str(out), ensemble.wall_s, shrinkage)
    atomic_write(out / "boost.json", json.dumps(result.to_dict(), indent=1).encode())
    atomic_write(out / "rounds.csv", result.to_csv().encode())
    return result


def no_better_than_chance(m: int, err: float, k: int, first: bool) -> str:
    """Why boosting stops at round ``m`` (SAMME needs error < 1 - 1/K); the first learner failing is an error."""
    if first:
        raise ConfigError(f"boosting: the first weak learner is no better than chance (weighted error "
                          f"{err:.4f} >= {1 - 1 / k:.4f}); train it longer or with a higher learning rate")
    return (f"round {m + 1}: weighted error {err:.4f} >= 1 - 1/K = {1 - 1 / k:.4f} (no better than chance); "
            "learner discarded")


def check_options(rounds: int, mode: str, shrinkage: float) -> None:
    """One clear error for an impossible boosting setting (before anything trains)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"--rounds must be an integer >= 1, got {rounds!r}")
    if mode not in MODES:
        raise ConfigError(f"boosting mode {mode!r} is not one of {', '.join(MODES)}")
    if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)) or not 0 < shrinkage <= 1:
        raise ConfigError(f"--shrinkage must be a number in (0, 1], got {shrinkage!r}")


def learner_job(name: str, mcfg: dict, w: torch.Tensor, mode: str, seed: int) -> MemberJob:
    """The next weak learner sees the SAMME weights ``w``: as per-sample loss weights (mean 1, ``mode="loss"``)
    or as a seeded weighted resample of the training set (``mode="resample"``)."""
    n = w.numel()
    if mode == "loss":
        return MemberJob(name, mcfg, sample_weights=(w * n).tolist())
    g = torch.Generator().manual_seed(seed)
    return MemberJob(name, mcfg, train_idx=torch.multinomial(w, n, replacement=True, generator=g).tolist())


def _weighted_vote(preds: torch.Tensor, alphas: torch.Tensor, k: int) -> torch.Tensor:
    """``argmax_k sum_m alpha_m [T_m(x) = k]`` from hard predictions ``[M, N]`` (ties: lowest class)."""
    scores = (alphas[:, None, None] * torch.nn.functional.one_hot(preds, k).double()).sum(0)
    return scores.argmax(1)
