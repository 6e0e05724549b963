"""Generalization claims: batch size and the sharpness of the minimum (Keskar et al. 2017)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from cnnlab.analysis.landscape import filter_normalized_direction, loss_along_direction
from cnnlab.data.arrays import normalize_uint8
from cnnlab.lab.arms import train_arms
from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment
from cnnlab.lab.experiments.design import train_setup
from cnnlab.lab.stats import mean_std, paired_comparison
from cnnlab.lab.style import new_figure
from cnnlab.models.probes import kernel_stack_net

SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"


def batch_size_verdict(n: dict[str, Any]) -> Verdict:
    """Not measurable unless both arms fit the training data (last-epoch training accuracy >= 80 % on the mean):
    sharpness compares minima, not a half-trained net. Confirmed: the large-batch minimum is sharper (larger
    training-loss rise at the probe distance) on every seed, and its test accuracy is not higher on the mean.
    Partly: sharper on the mean only, or sharper but not less accurate. Not confirmed: not sharper on the mean.
    (Added after a first quick run: batch 1024 on 3,000 images for 6 epochs (18 steps) reached 24 % and looked
    "flat" because it sat on a high plateau.)"""
    s, a = n["sharpness"], n["test_top1"]
    fit = {arm: n["train_top1"][arm]["mean"] for arm in ("small", "large")}
    if min(fit.values()) < 0.8:
        return Verdict("not measurable", f"training accuracy batch {n['small']} {fit['small']:.0%}, batch {n['large']} "
                                         f"{fit['large']:.0%}: an arm did not fit the training set in this budget "
                                         "(run --full)")
    text = (f"loss rise at distance {n['probe']}: batch {n['small']} {s['small']['mean']:.3f} vs batch {n['large']} "
            f"{s['large']['mean']:.3f}; test {a['small']['mean']:.1%} vs {a['large']['mean']:.1%}")
    sharper_each = all(lg > sm for sm, lg in zip(n["per_seed"]["small"], n["per_seed"]["large"], strict=True))
    if s["large"]["mean"] <= s["small"]["mean"]:
        return Verdict("not confirmed", text)
    if sharper_each and a["large"]["mean"] <= a["small"]["mean"]:
        return Verdict("confirmed", text)
    return Verdict("partly", text)


@register_experiment(
    "batch_size",
    claim=Claim(quote="큰 배치사이즈는 sharp minimizers로 수렴하는 경향이 있다. / "
                      "작은 배치사이즈는 flat minimizers로 수렴하는 경향이 있다.",
                paraphrase="Large batches tend to converge to sharp minimizers, small batches to flat ones "
                           "(which generalize better).",
                seed=SEED_BOOTCAMP),
    configs={"quick": {"batches": [32, 256], "directions": 3, "alphas": [-1.0, -0.5, -0.25, 0, 0.25, 0.5, 1.0],
                       "probe": 0.5, "probe_images": 500, "widths": [16, 32], "seeds": 3,
                       "train": {"data": "fashion-mnist", "train_subset": 2000, "test_subset": 2000, "epochs": 8,
                                 "optimizer": "adam", "lr": 2e-3, "threads": 1}},
             "full": {"batches": [64, 4096], "directions": 10, "alphas": [x / 10 for x in range(-10, 11)],
                      "probe": 0.5, "probe_images": 5000, "widths": [32, 64], "seeds": 5,
                      "train": {"data": "fashion-mnist", "train_subset": 0, "test_subset": 0, "epochs": 30,
                                "optimizer": "adam", "lr": 1e-3}}},
    cost={"quick": 150, "full": 3 * 3600}, verdict=batch_size_verdict)
def batch_size(ctx: Context) -> Result:
    from cnnlab.data import load_dataset

    cfg = ctx.config
    small, large = cfg["batches"]
    runs = {}
    for arm, batch in (("small", small), ("large", large)):
        arms = {f"batch{batch}": partial(kernel_stack_net, 3, 2, tuple(cfg["widths"]))}
        runs[arm] = train_arms(ctx, arms, {**cfg["train"], "batch_size": batch}, ctx.seeds)[f"batch{batch}"]
    train = load_dataset(cfg["train"]["data"], split="train")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: cfg["probe_images"]]
    x = normalize_uint8(train.images[idx], train.mean, train.std)
    curves: dict[str, list[list[float]]] = {"small": [], "large": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny forwards: one thread is faster on a loaded machine
    for arm, rs in runs.items():
        for r in rs:
            gen = torch.Generator().manual_seed(1000 + r["seed"])
            dirs = [filter_normalized_direction(r["model"], gen) for _ in range(cfg["directions"])]
            per_dir = [loss_along_direction(r["model"], x, train.labels[idx], d, cfg["alphas"]) for d in dirs]
            curves[arm].append([sum(v) / len(v) for v in zip(*per_dir, strict=True)])
    torch.set_num_threads(threads)
    at = cfg["alphas"].index(cfg["probe"])
    zero = cfg["alphas"].index(0)
    rise = {arm: [c[at] - c[zero] for c in cs] for arm, cs in curves.items()}
    numbers = {"small": small, "large": large, "probe": cfg["probe"], "per_seed": rise,
               "sharpness": {a: mean_std(v) for a, v in rise.items()},
               "test_top1": {a: mean_std([r["top1"] for r in rs]) for a, rs in runs.items()},
               "train_top1": {a: mean_std([r["history"][-1]["train_top1"] for r in rs]) for a, rs in runs.items()},
               "paired_test_top1": paired_comparison([r["top1"] for r in runs["small"]],
                                                     [r["top1"] for r in runs["large"]]),
               "curves": {a: [sum(v) / len(v) for v in zip(*cs, strict=True)] for a, cs in curves.items()}}
    fig, ax = new_figure(width=10)
    for arm, batch in (("small", small), ("large", large)):
        ax.plot(cfg["alphas"], numbers["curves"][arm], "o-", label=f"batch {batch}")
    ax.set(xlabel="distance along a filter-normalised random direction (alpha)",
           ylabel="training loss (cross-entropy, nats)", title="1-D loss landscape around the trained weights")
    ax.legend()
    ctx.save_figure(fig, "batch_size.png")
    sharp, acc = numbers["sharpness"], numbers["test_top1"]
    table = [{"batch": b, "loss_rise_mean": sharp[a]["mean"], "loss_rise_std": sharp[a]["std"],
              "test_top1_mean": acc[a]["mean"], "test_top1_std": acc[a]["std"]}
             for a, b in (("small", small), ("large", large))]
    setup = (f"the same small net (2x[3x3 conv] stages {cfg['widths']} + BN) trained with batch {small} and "
             f"{large}, "
             f"{train_setup({**cfg['train'], 'batch_size': f'{small}/{large}'}, len(ctx.seeds))}; sharpness: training "
             f"loss on {cfg['probe_images']} images at alpha = {cfg['probe']} minus at 0, mean over "
             f"{cfg['directions']} filter-normalised random directions (Li et al. 2018; cnnlab.analysis.landscape)")
    return Result(numbers, setup, table)
