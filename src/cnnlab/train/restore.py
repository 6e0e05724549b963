"""Exact resume: load everything a checkpoint holds so the next step is the one the original run would take."""

from __future__ import annotations

import warnings
from typing import Any

from cnnlab.errors import CheckpointError
from cnnlab.train import distributed as D
from cnnlab.train.checkpoint import load_state, set_rng_state

__all__ = ["restore_state"]

# fit_state keys written by older versions -> today's FitState fields
RENAMED_STATE = {"epoch_correct": "epoch_score_sum"}


def restore_state(ckpt, info: D.DistInfo, net, ema, optimizer, scheduler, scaler, state: Any) -> None:
    """Load everything ``ckpt`` holds into the run (``state``: its :class:`~cnnlab.train.run.FitState`), so the
    next step is the one the original run would take."""
    m = ckpt.meta
    load_state(net, ckpt.model_state, ckpt.path)
    if ema is not None:
        if ckpt.ema_state is None:
            raise CheckpointError(f"{ckpt.path} has no EMA weights but the run uses ema_decay")
        ema.load_state_dict(ckpt.ema_state)
    try:
        optimizer.load_state_dict(ckpt.optimizer_state)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{ckpt.path}: optimizer state does not match ({e})") from None
    scheduler.load_state_dict(m["scheduler"])
    if scaler is not None and m.get("scaler"):
        scaler.load_state_dict(m["scaler"])
    state.epoch, state.micro_step, state.global_step = m["epoch"], m["micro_step"], m["global_step"]
    for k, v in m["fit_state"].items():
        setattr(state, RENAMED_STATE.get(k, k), v)
    rng = m["rng"]
    if len(rng) != info.world_size:
        warnings.warn(f"resuming a {len(rng)}-process run with {info.world_size} processes: "
                      "data sharding and random streams differ, so the result will not be bit-identical",
                      stacklevel=2)
    set_rng_state(rng[info.rank % len(rng)])
