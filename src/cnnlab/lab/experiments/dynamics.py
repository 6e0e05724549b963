"""Claims about training dynamics: vanishing gradients, ReLU vs tanh, and the optimizers."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch

from cnnlab.analysis.gradients import layer_gradient_norms
from cnnlab.data.arrays import normalize_uint8
from cnnlab.lab.arms import train_arms
from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment
from cnnlab.lab.experiments.design import train_setup
from cnnlab.lab.stats import mean_std, paired_comparison
from cnnlab.lab.style import new_figure
from cnnlab.models.probes import deep_plain_net, kernel_stack_net

SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"
SEED_DEEP = "004_6df1293bddf2b3c7.txt"


# ============================================================================ vanishing_gradients
def vanishing_verdict(n: dict[str, Any]) -> Verdict:
    """Confirmed: in the deep sigmoid net the first hidden layer gets < 1/100 of the last hidden layer's
    gradient norm, while with ReLU + batch norm it gets > 1/10."""
    sig, bn = n["first_over_last"]["sigmoid"], n["first_over_last"]["relu_bn"]
    text = (f"first/last hidden-layer gradient norm over {n['depth']} layers: sigmoid {sig['mean']:.1e}, ReLU "
            f"{n['first_over_last']['relu']['mean']:.1e}, ReLU+BN {bn['mean']:.2f}")
    if sig["mean"] < 1e-2 and bn["mean"] > 0.1:
        return Verdict("confirmed", text)
    if sig["mean"] < bn["mean"]:
        return Verdict("partly", text)
    return Verdict("not confirmed", text)


@register_experiment(
    "vanishing_gradients",
    claim=Claim(quote="정의: gradient -> 출력층 -> 각 층의 가중치 수정 -> 층이 늘어남 -> "
                      "중간 층들의 기울기가 0이 된다. -> gradient가 작아짐-> 레이어 학습 불가",
                paraphrase="In a deep net the gradient shrinks on its way back to the first layers (sigmoid); "
                           "ReLU and batch norm keep it alive.",
                seed=SEED_DEEP),
    configs={"quick": {"depth": 20, "width": 128, "batch": 256, "seeds": 3, "data": "fashion-mnist"},
             "full": {"depth": 50, "width": 256, "batch": 512, "seeds": 10, "data": "fashion-mnist"}},
    cost={"quick": 20, "full": 120}, verdict=vanishing_verdict)
def vanishing_gradients(ctx: Context) -> Result:
    from cnnlab.data import load_dataset

    cfg = ctx.config
    train = load_dataset(cfg["data"], split="train")
    arms = {"sigmoid": ("sigmoid", False), "tanh": ("tanh", False), "relu": ("relu", False), "relu_bn": ("relu", True)}
    norms: dict[str, list[list[float]]] = {a: [] for a in arms}
    for seed in ctx.seeds:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(train), generator=gen)[: cfg["batch"]]
        x = normalize_uint8(train.images[idx], train.mean, train.std)
        for arm, (act, bn) in arms.items():
            torch.manual_seed(seed)
            model = deep_plain_net(cfg["depth"], cfg["width"], act, bn).train()
            norms[arm].append([v for _, v in layer_gradient_norms(model, x, train.labels[idx])][: cfg["depth"]])
    ratios = {a: mean_std([s[0] / s[-1] for s in v]) for a, v in norms.items()}
    per_layer = {a: [mean_std([s[i] for s in v])["mean"] for i in range(cfg["depth"])] for a, v in norms.items()}
    fig, ax = new_figure(width=10)
    for arm, values in per_layer.items():
        ax.plot(range(1, cfg["depth"] + 1), values, "o-", label=arm.replace("_", " + ").replace("bn", "BN"))
    ax.set(yscale="log", xlabel="hidden layer (1 = next to the input)", ylabel="weight-gradient norm ||dL/dW||",
           title=f"Gradient reaching each layer at initialisation ({cfg['depth']} layers)")
    ax.legend()
    ctx.save_figure(fig, "vanishing_gradients.png")
    table = [{"activation": a, "first_layer": per_layer[a][0], "last_hidden_layer": per_layer[a][-1],
              "first_over_last": r["mean"], "std": r["std"]} for a, r in ratios.items()]
    setup = (f"an MLP of {cfg['depth']} hidden layers x {cfg['width']} units (cnnlab.models.probes.deep_plain_net, "
             f"PyTorch default init) per activation; one batch of {cfg['batch']} {cfg['data']} training images; "
             f"cross-entropy backward at initialisation (cnnlab.analysis.layer_gradient_norms); "
             f"{len(ctx.seeds)} seeds (init and batch)")
    return Result({"depth": cfg["depth"], "first_over_last": ratios, "per_layer": per_layer}, setup, table)


# ============================================================================ relu_vs_tanh
class BatchErrors:
    """Callback: the training error of every optimizer step, from the loop's running epoch counts
    (``FitState.epoch_seen`` images and ``epoch_score_sum`` correct ones)."""

    def __init__(self) -> None:
        self.errors: list[float] = []
        self._seen = self._correct = 0.0

    def on_step_end(self, state: Any) -> None:
        seen, correct = state.epoch_seen, state.epoch_score_sum
        if seen < self._seen:  # a new epoch restarted the counts
            self._seen = self._correct = 0.0
        if seen > self._seen:
            self.errors.append(1 - (correct - self._correct) / (seen - self._seen))
        self._seen, self._correct = seen, correct


def steps_to_error(errors: list[float], threshold: float, window: int) -> int | None:
    """First step at which the mean training error of the last ``window`` steps is <= threshold."""
    for i in range(window, len(errors) + 1):
        if sum(errors[i - window:i]) / window <= threshold:
            return i
    return None


def relu_tanh_verdict(n: dict[str, Any]) -> Verdict:
    """Confirmed: ReLU reaches the training-error threshold at least 2x sooner than tanh ("several times",
    AlexNet Fig. 1: 6x) on the median seed, and sooner on every seed. Partly: sooner, by less than 2x."""
    if any(s is None for s in n["steps"]["relu"]):
        return Verdict("not measurable", f"ReLU did not reach {n['threshold']:.0%} training error within the budget "
                                         f"({n['budget_steps']} steps) on every seed: a longer run is needed")
    speedups = n["speedup_per_seed"]
    med = sorted(speedups)[len(speedups) // 2]
    text = (f"steps to {n['threshold']:.0%} training error: tanh {n['steps']['tanh']} vs ReLU {n['steps']['relu']} "
            f"(median speed-up {med:.1f}x; AlexNet: 6x)")
    if med >= 2 and min(speedups) > 1:
        return Verdict("confirmed", text)
    if med > 1:
        return Verdict("partly", text)
    return Verdict("not confirmed", text + "; likely: a 4-layer net with PyTorch's default init (not AlexNet's "
                                           "N(0, 0.01)) saturates tanh little, and the run is short")


@register_experiment(
    "relu_vs_tanh",
    claim=Claim(quote="(ReLU) 같은 정확도 유지 하면서 빠르다.(Tanh보다 좋은 성능)",
                paraphrase="AlexNet's ReLU reaches a given training error several times faster than tanh "
                           "(Krizhevsky et al. 2012, Fig. 1: 25 % on CIFAR-10 six times faster).",
                seed=SEED_DEEP),
    configs={"quick": {"train": {"data": "fashion-mnist", "train_subset": 3000, "test_subset": 2000, "epochs": 3,
                                 "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "threads": 1},
                       "widths": [16, 32, 64], "threshold": 0.40, "window": 10, "seeds": 3},
             "full": {"train": {"data": "fashion-mnist", "train_subset": 0, "test_subset": 0, "epochs": 10,
                                "batch_size": 128, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9},
                      "widths": [32, 64, 128], "threshold": 0.15, "window": 50, "seeds": 5}},
    cost={"quick": 150, "full": 3600}, verdict=relu_tanh_verdict)
def relu_vs_tanh(ctx: Context) -> Result:
    cfg = ctx.config
    widths = tuple(cfg["widths"])
    arms = {a: partial(kernel_stack_net, 3, 1, widths, activation=a, batch_norm=False) for a in ("relu", "tanh")}
    runs = train_arms(ctx, arms, cfg["train"], ctx.seeds, callbacks=lambda arm, seed: [BatchErrors()])
    total = {a: len(rs[0]["callbacks"][0].errors) for a, rs in runs.items()}
    steps = {a: [steps_to_error(r["callbacks"][0].errors, cfg["threshold"], cfg["window"]) for r in rs]
             for a, rs in runs.items()}
    # a run that never gets there counts as the whole budget (the speed-up is then a lower bound)
    reached = {a: [s if s is not None else total[a] for s in v] for a, v in steps.items()}
    speedups = [t / r for t, r in zip(reached["tanh"], reached["relu"], strict=True)]
    numbers = {"threshold": cfg["threshold"], "steps": steps, "budget_steps": total["relu"],
               "speedup_per_seed": speedups, "paired_log_steps": paired_comparison(
                   [math.log(v) for v in reached["relu"]], [math.log(v) for v in reached["tanh"]]),
               "test_top1": {a: mean_std([r["top1"] for r in rs]) for a, rs in runs.items()}}
    fig, ax = new_figure(width=10)
    for arm, rs in runs.items():
        for i, r in enumerate(rs):
            e = r["callbacks"][0].errors
            w = cfg["window"]
            smooth = [sum(e[j - w:j]) / w for j in range(w, len(e) + 1)]
            ax.plot(range(w, len(e) + 1), [100 * v for v in smooth], color="#0072B2" if arm == "relu" else "#D55E00",
                    alpha=0.8, label=arm if i == 0 else None)
    ax.axhline(100 * cfg["threshold"], color="black", linestyle="--", label=f"{cfg['threshold']:.0%} threshold")
    ax.set(xlabel="optimizer steps", ylabel=f"training error [%] (mean of {cfg['window']} steps)",
           title="ReLU vs tanh, same net and seeds")
    ax.legend()
    ctx.save_figure(fig, "relu_vs_tanh.png")
    table = [{"activation": a, "steps_to_threshold": steps[a], "test_top1_mean": numbers["test_top1"][a]["mean"],
              "test_top1_std": numbers["test_top1"][a]["std"]} for a in runs]
    setup = (f"a 4-layer net (3x3 convs {list(widths)} + 2x2 pools, no batch norm, then a linear layer) with ReLU or "
             f"tanh, {train_setup(cfg['train'], len(ctx.seeds))}; training error per step from the loop's counts, "
             f"smoothed over {cfg['window']} steps; a run that never reaches {cfg['threshold']:.0%} counts as its "
             f"whole budget ({total['relu']} steps)")
    return Result(numbers, setup, table)
