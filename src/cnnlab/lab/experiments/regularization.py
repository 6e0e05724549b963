"""Regularization claims: each regularizer of the lecture narrows the gap between training and test accuracy.

Every arm trains the same FC-heavy net (``cnnlab.models.probes.regularization_net``) on the same small
training subset with one regularizer switched on through the engine's own option (``weight_decay``, ``l1``,
``dropout``, ``augment``, ``input_noise``, ``early_stop_patience``, batch norm in the probe). The training
accuracy is measured *clean* after each epoch (eval mode, no augmentation/noise/dropout, on the very images
the arm trains on), so a regularizer cannot shrink the gap merely by making the running training accuracy
noisier; the test accuracy is scored on a fixed test sample each epoch (``eval_every=1``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from cnnlab.lab.arms import train_arms
from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment
from cnnlab.lab.experiments.design import train_setup
from cnnlab.lab.stats import mean_std, paired_comparison
from cnnlab.lab.style import OKABE_ITO, new_figure
from cnnlab.models.probes import regularization_net

SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"

# arm -> (TrainConfig changes, batch norm in the probe); "none" is the unregularized baseline
ARMS: dict[str, tuple[dict[str, Any], bool]] = {
    "none": ({}, False),
    "L2": ({"weight_decay": 5e-3}, False),
    "L1": ({"l1": 5e-5}, False),
    "dropout": ({"dropout": 0.5}, False),
    "augmentation": ({"augment": "crop:2,flip"}, False),
    "input noise": ({"input_noise": 0.5}, False),
    "early stopping": ({"early_stop_patience": 2}, False),
    "batch norm": ({}, True),
}
MIN_BASE_GAP = 0.05
# the likely reason an arm does not narrow the gap, named in the verdict (it does not change the status)
WHY_NOT = {"L2": "the decay is weak at this strength and length", "L1": "the penalty is weak at this strength",
           "dropout": "one dropout layer before the classifier", "augmentation": "crops and flips of a small set",
           "input noise": "noise on normalized pixels changes little", "early stopping": "the validation error "
           "kept falling, so the run went on", "batch norm": "batch norm mainly speeds up fitting: the net reaches "
           "100 % training accuracy sooner (Ioffe & Szegedy 2015 call its regularizing effect a side effect)"}


class CleanTrainAccuracy:
    """``fit`` callback: after each epoch, the accuracy of the model in eval mode on ``data`` (the arm's own
    training images, without augmentation, noise or dropout)."""

    def __init__(self, data: Any) -> None:
        self.data, self.top1 = data, []

    def on_epoch_end(self, state: Any, row: dict[str, Any]) -> None:
        self.top1.append(clean_accuracy(state.model, self.data))


def clean_accuracy(model: Any, data: Any) -> float:
    from cnnlab.ensemble import predict_labels

    return float((predict_labels(model, data) == data.labels).double().mean())


def training_images(train: dict[str, Any], seed: int) -> Any:
    """The images ``fit`` trains on for ``train`` and ``seed`` (subset and validation split applied by the
    classification task's own :meth:`load_data`)."""
    from cnnlab.train import TrainConfig
    from cnnlab.train.task import get_task

    keys = ("data", "train_subset", "val_fraction")
    cfg = TrainConfig(seed=seed, eval_test=False, **{k: train[k] for k in keys if k in train})
    return get_task("classification").load_data(cfg, None, None, None)[0]


def gap_summary(per_seed_gaps: dict[str, list[float]]) -> dict[str, Any]:
    """Mean ± std of the final gap per arm and each regularizer's paired difference to ``none`` (negative:
    narrower gap)."""
    base = per_seed_gaps["none"]
    return {"gap": {arm: mean_std(g) for arm, g in per_seed_gaps.items()},
            "vs_none": {arm: paired_comparison(base, g) for arm, g in per_seed_gaps.items() if arm != "none"}}


def regularization_verdict(n: dict[str, Any]) -> Verdict:
    """Not measurable when the unregularized net does not overfit (mean final gap below 5 points): there is
    no gap to reduce. A regularizer *narrows the gap* when its mean final gap (clean training accuracy minus
    test accuracy, at the weights the run ends with) is below the baseline's. Confirmed: more than half of the
    regularizers narrow it; partly: at least one; not confirmed: none."""
    gap = n["gap"]
    base = gap["none"]["mean"]
    regs = [arm for arm in gap if arm != "none"]
    narrower = [arm for arm in regs if gap[arm]["mean"] < base]
    wider = [arm for arm in regs if arm not in narrower]
    if base < MIN_BASE_GAP:
        return Verdict("not measurable", f"the unregularized net's train-test gap is only {base:.1%} (< "
                                         f"{MIN_BASE_GAP:.0%}): nothing to regularize in this budget")
    def listed(arms: list[str]) -> str:
        return ", ".join(f"{a} {gap[a]['mean']:.1%}" for a in arms) or "none"

    text = f"gap without regularization {base:.1%}; narrower with {len(narrower)} of {len(regs)} ({listed(narrower)})"
    if wider:
        text += f"; not with {listed(wider)}; likely: " + "; ".join(f"{a}: {WHY_NOT.get(a, '?')}" for a in wider)
    if 2 * len(narrower) > len(regs):
        return Verdict("confirmed", text)
    return Verdict("partly" if narrower else "not confirmed", text)


QUICK_TRAIN = {"data": "fashion-mnist", "train_subset": 750, "val_fraction": 0.2, "test_subset": 1000, "epochs": 10,
               "batch_size": 50, "optimizer": "adam", "lr": 5e-3, "threads": 1}
FULL_TRAIN = {**QUICK_TRAIN, "train_subset": 5000, "test_subset": 0, "epochs": 40, "threads": 0}


@register_experiment(
    "regularization",
    claim=Claim(quote="학습 모델이 훈련집합의 예측을 너무 잘 수행하지 못하도록 방지",
                paraphrase="Regularization keeps a model from fitting its training set too well: each regularizer "
                           "(L2, L1, dropout, augmentation, input noise, early stopping, batch norm) narrows the "
                           "train-test gap.",
                seed=SEED_BOOTCAMP),
    configs={"quick": {"widths": [8, 16], "hidden": 128, "seeds": 3, "train": QUICK_TRAIN},
             "full": {"widths": [32, 64], "hidden": 512, "seeds": 5, "train": FULL_TRAIN}},
    cost={"quick": 100, "full": 2 * 3600}, verdict=regularization_verdict)
def regularization(ctx: Context) -> Result:
    cfg = ctx.config
    images = {seed: training_images(cfg["train"], seed) for seed in ctx.seeds}
    curves: dict[str, dict[str, list[list[float]]]] = {}
    final: dict[str, dict[str, list[float]]] = {}
    for arm, (changes, bn) in ARMS.items():
        build = partial(regularization_net, tuple(cfg["widths"]), cfg["hidden"], batch_norm=bn)
        name = arm.replace(" ", "_")
        runs = train_arms(ctx, {name: build}, {**cfg["train"], "eval_every": 1, **changes}, ctx.seeds,
                          callbacks=lambda _arm, seed: [CleanTrainAccuracy(images[seed])])[name]
        train_curves = [r["callbacks"][0].top1 for r in runs]
        test_curves = [[row["test_top1"] for row in r["history"]] for r in runs]
        curves[arm] = {"train": train_curves, "test": test_curves}
        train_final = [clean_accuracy(r["model"], images[r["seed"]]) for r in runs]
        final[arm] = {"train": train_final, "test": [r["top1"] for r in runs],
                      "epochs": [len(r["history"]) for r in runs]}
    gaps = {arm: [tr - te for tr, te in zip(f["train"], f["test"], strict=True)] for arm, f in final.items()}
    numbers = {**gap_summary(gaps), "per_seed_gap": gaps,
               "train_top1": {a: mean_std(f["train"]) for a, f in final.items()},
               "test_top1": {a: mean_std(f["test"]) for a, f in final.items()},
               "epochs_run": {a: f["epochs"] for a, f in final.items()},
               "gap_by_epoch": {a: mean_gap_curve(c["train"], c["test"]) for a, c in curves.items()}}
    plot_gaps(ctx, numbers)
    table = [{"arm": arm, "option": option_text(*ARMS[arm]), "train_top1": numbers["train_top1"][arm]["mean"],
              "test_top1": numbers["test_top1"][arm]["mean"], "gap_mean": numbers["gap"][arm]["mean"],
              "gap_std": numbers["gap"][arm]["std"],
              "gap_diff_vs_none": numbers["vs_none"][arm]["mean_diff"] if arm != "none" else 0.0,
              "p_value": numbers["vs_none"][arm]["p_value"] if arm != "none" else None} for arm in ARMS]
    setup = (f"cnnlab.models.probes.regularization_net (convs {cfg['widths']}, FC {cfg['hidden']}) "
             f"{train_setup(cfg['train'], len(ctx.seeds))}, {cfg['train']['val_fraction']:.0%} of the subset held "
             "out for validation in every arm (early stopping watches it); each arm one regularizer: "
             f"{'; '.join(f'{a}: {option_text(*o)}' for a, o in ARMS.items() if a != 'none')}. Gap = clean "
             "training accuracy (eval mode, on the arm's own training images) minus test accuracy, per epoch "
             "and at the final weights (early stopping: the restored best epoch)")
    return Result(numbers, setup, table)


def option_text(changes: dict[str, Any], bn: bool) -> str:
    return "batch norm after every conv/FC layer" if bn else (
        ", ".join(f"{k}={v}" for k, v in changes.items()) or "no regularization")


def mean_gap_curve(train: list[list[float]], test: list[list[float]]) -> list[float | None]:
    """The per-epoch gap averaged over seeds; runs that stopped early contribute up to their last epoch
    (None where no seed ran that epoch)."""
    length = max(len(t) for t in train)
    gaps = np.full((len(train), length), np.nan)
    for i, (tr, te) in enumerate(zip(train, test, strict=True)):
        gaps[i, : len(tr)] = np.asarray(tr) - np.asarray(te)
    counts = (~np.isnan(gaps)).sum(0)
    sums = np.nansum(gaps, 0)
    return [float(s / c) if c else None for s, c in zip(sums, counts, strict=True)]


def plot_gaps(ctx: Context, numbers: dict[str, Any]) -> None:
    fig, (ax, bar) = new_figure(1, 2, width=16, height=6)
    colors = dict(zip(numbers["gap"], (OKABE_ITO[-1], *OKABE_ITO[:-1]), strict=False))  # baseline in black
    for arm, curve in numbers["gap_by_epoch"].items():
        xs = [i + 1 for i, g in enumerate(curve) if g is not None]
        ax.plot(xs, [100 * g for g in curve if g is not None], "o-" if arm == "none" else "-", label=arm,
                linewidth=4 if arm == "none" else 2.5, color=colors[arm])
    ax.set(xlabel="epoch", ylabel="train - test accuracy (points)", title="Generalization gap by epoch")
    ax.legend(ncols=2)
    arms = list(numbers["gap"])
    means = [100 * numbers["gap"][a]["mean"] for a in arms]
    stds = [100 * numbers["gap"][a]["std"] for a in arms]
    bar.barh(arms, means, xerr=stds, color=[colors[a] for a in arms])
    bar.axvline(means[0], color=OKABE_ITO[-1], linestyle="--")
    bar.invert_yaxis()
    bar.set(xlabel="final train - test accuracy (points, mean ± std)", title="Final gap per regularizer")
    ctx.save_figure(fig, "regularization.png")
