"""Bagging (Breiman 1996, *Bagging predictors*): ``M`` members, each trained on its own bootstrap resample
of the training images (``n`` draws with replacement, about 63.2 % distinct), combined by a soft or
hard vote. ``resample="none"`` trains every member on all the images with a different seed instead (a
random-initialisation ensemble, Lakshminarayanan et al. 2017).

Each member is an ordinary run directory ``OUT/member-XX`` (train it anywhere with ``cnnlab train``
and combine with :func:`cnnlab.ensemble.ensemble_runs`); member ``i`` uses seed ``cfg.seed + i`` for
its initialisation, data order and bootstrap draw.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from cnnlab._io import atomic_write
from cnnlab.ensemble.combine import VOTES, EnsembleResult, evaluate_ensemble, load_member
from cnnlab.ensemble.members import (
    MemberData,
    MemberJob,
    MemberRun,
    load_data,
    member_config,
    out_dir_for,
    run_members,
    source_of,
    torch_threads,
)
from cnnlab.errors import ConfigError

RESAMPLING = ("bootstrap", "stratified", "none")


def bag(cfg, members: int = 5, *, vote: str = "soft", resample: str = "bootstrap", workers: int = 1,
        out_dir: str | Path | None = None, holdout: float = 0.2, data: MemberData | None = None,
        on_member: Callable[[MemberRun], None] | None = None) -> EnsembleResult:
    """Train ``members`` models of ``cfg`` on bootstrap resamples and evaluate them and their vote on the
    test split (``cfg.tta`` applies to every member). ``resample``: ``bootstrap`` (Breiman), ``stratified``
    (class counts kept) or ``none``. Writes ``OUT/bag.json``; returns the :class:`EnsembleResult`."""
    from cnnlab.data import bootstrap_indices
    from cnnlab.train.engine import resolve_device

    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise ConfigError(f"--members must be an integer >= 1, got {members!r}")
    if vote not in VOTES:
        raise ConfigError(f"vote {vote!r} is not one of {', '.join(VOTES)}")
    if resample not in RESAMPLING:
        raise ConfigError(f"resample {resample!r} is not one of {', '.join(RESAMPLING)}")
    t0 = time.perf_counter()
    out = out_dir_for("bag", cfg, out_dir)
    spec = source_of(cfg, holdout)
    data = data or load_data(spec)
    jobs = []
    for i in range(members):
        idx = None
        if resample != "none":
            idx = bootstrap_indices(data.train.labels, seed=cfg.seed + i, stratified=resample == "stratified")[0]
            idx = idx.tolist()
        jobs.append(MemberJob(f"member-{i:02d}", member_config(cfg, out, f"member-{i:02d}", seed=cfg.seed + i), idx))
    runs = run_members(jobs, data, spec, workers, on_member)
    loaded = [load_member(r.run_dir, r.name) for r in runs]
    with torch_threads(cfg.threads):
        result, _ = evaluate_ensemble(loaded, data.test, vote=vote, tta=cfg.tta, batch_size=cfg.eval_batch_size,
                                      device=resolve_device(cfg.device), kind="bagging",
                                      data_name=f"{cfg.data} ({data.test_name})")
    result.out_dir = str(out)
    result.wall_s = time.perf_counter() - t0
    result.extra = {"resample": resample, "member_wall_s": [r.wall_s for r in runs], "workers": workers}
    atomic_write(out / "bag.json", json.dumps(result.to_dict(), indent=1).encode())
    return result
