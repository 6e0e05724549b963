"""Training arms over seeds: the same ``fit`` recipe for several model builders, one run directory each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.lab.experiment import Context
from cnnlab.lab.stats import mean_std

__all__ = ["arm_summary", "train_arms"]


def train_arms(ctx: Context, arms: dict[str, Callable[[], nn.Module]], train: dict[str, Any],
               seeds: Sequence[int], callbacks: Callable[[str, int], Sequence[Any]] | None = None
               ) -> dict[str, list[dict[str, Any]]]:
    """``fit`` every arm on every seed with the ``TrainConfig`` fields in ``train`` (evaluated once, at
    the end, unless ``train["eval_every"]`` asks for more); each run writes ``ctx.run_dir(ARM-sSEED)``.
    ``train["test_subset"] = N`` scores on a fixed seeded sample of N test images instead of all.
    Returns per arm, per seed: the final test metrics (``top1``, ``loss``; ``final``: every scalar one, e.g.
    ``mean_iu`` of a segmentation task), the per-epoch history, the callbacks' objects and the trained
    ``model``."""
    from cnnlab.train import TrainConfig, fit

    train = dict(train)
    test_data = test_sample(train["data"], train.pop("test_subset", 0))
    out: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for seed in seeds:
        for arm, build in arms.items():
            torch.manual_seed(seed)
            model = build()
            cbs = list(callbacks(arm, seed)) if callbacks else []
            opts = {"eval_every": int(train.get("epochs", 1)), **train}
            cfg = TrainConfig(model=arm, seed=seed, out_dir=str(ctx.run_dir(f"{arm}-s{seed}")), progress="none",
                              plots=False, tensorboard=False, **opts)
            ctx.log(f"  {ctx.name}: training {arm} seed {seed}")
            result = fit(cfg, model=model, callbacks=cbs, test_data=test_data)
            if result.interrupted:  # fit stops cleanly on SIGINT/SIGTERM; the experiment must not finish
                raise KeyboardInterrupt(f"{arm} seed {seed} interrupted")
            final = {k: float(v) for k, v in result.final.items() if isinstance(v, int | float)}
            out[arm].append({"seed": seed, "top1": final.get("top1", float("nan")), "loss": final["loss"],
                             "final": final, "history": result.history, "callbacks": cbs, "model": result.model})
    return out


def test_sample(data: str, n: int):
    """A fixed (seed 0) sample of ``n`` test images of ``data``, or None for the whole test split."""
    if not n:
        return None
    from cnnlab.data import load_dataset

    test = load_dataset(data, split="test")
    if n >= len(test):
        return None
    return test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:n])


def arm_summary(runs: dict[str, list[dict[str, Any]]], key: str = "top1") -> dict[str, dict[str, float]]:
    """Mean ± std of ``key`` per arm."""
    return {arm: mean_std([r[key] for r in rs]) for arm, rs in runs.items()}
