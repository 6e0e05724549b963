"""Depth: the degradation of deep plain nets, and residual learning (He et al. 2016, §4.1, Fig. 4)."""

from __future__ import annotations

from functools import partial
from typing import Any

from cnnlab.lab.arms import train_arms
from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment
from cnnlab.lab.experiments.design import train_setup
from cnnlab.lab.stats import mean_std
from cnnlab.lab.style import new_figure
from cnnlab.models.probes import block_net

SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"


def residual_depth_verdict(n: dict[str, Any]) -> Verdict:
    """Training error at the end (mean over seeds). Confirmed: the deep plain net is > 2 points worse than the
    shallow one (degradation) while the deep residual net is at most 2 points worse than the shallow one.
    Partly: plain degrades and the residual gap is under half the plain gap. Else not confirmed."""
    e = {k: v["mean"] for k, v in n["train_error"].items()}
    s, d = n["depths"]
    plain_gap, res_gap = e[f"plain{d}"] - e[f"plain{s}"], e[f"residual{d}"] - e[f"residual{s}"]
    text = (f"training error: plain {s} {e[f'plain{s}']:.1%} -> plain {d} {e[f'plain{d}']:.1%}; residual {s} "
            f"{e[f'residual{s}']:.1%} -> residual {d} {e[f'residual{d}']:.1%}")
    if plain_gap > 0.02 and res_gap <= 0.02:
        return Verdict("confirmed", text)
    if plain_gap > 0.02 and res_gap < plain_gap / 2:
        return Verdict("partly", text + " (the deep residual net degrades less, but still trails in this short run)")
    return Verdict("not confirmed", text)


def _zoo(name: str):
    from cnnlab.models import create_model

    return create_model(name, num_classes=10, in_chans=1, img_size=28)


@register_experiment(
    "residual_depth",
    claim=Claim(quote="잔류(잔차) 학습(residual learning)이라는 개념을 이용하여 "
                      "성능 저하를 피하면서 층 수를 대폭 늘림.",
                paraphrase="A deeper plain net trains worse than a shallower one (degradation); with shortcut "
                           "connections (residual learning) the deeper net does not.",
                seed=SEED_BOOTCAMP),
    configs={"quick": {"kind": "mlp", "depths": [8, 32], "width": 64, "seeds": 3,
                       "train": {"data": "fashion-mnist", "train_subset": 5000, "test_subset": 2000, "epochs": 4,
                                 "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "threads": 1}},
             "full": {"kind": "zoo", "depths": [20, 56], "seeds": 3,
                      "train": {"data": "fashion-mnist", "train_subset": 0, "test_subset": 0, "epochs": 15,
                                "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                                "weight_decay": 1e-4, "schedule": "cosine"}}},
    cost={"quick": 150, "full": 4 * 3600}, verdict=residual_depth_verdict)
def residual_depth(ctx: Context) -> Result:
    cfg = ctx.config
    s, d = cfg["depths"]
    if cfg["kind"] == "zoo":  # CIFAR ResNet-20/56 and their plain twins from the zoo
        arms = {f"{kind}{n}": partial(_zoo, f"{'resnet' if kind == 'residual' else 'plain'}{n}")
                for kind in ("plain", "residual") for n in (s, d)}
    else:
        arms = {f"{kind}{n}": partial(block_net, n, cfg["width"], kind == "residual")
                for kind in ("plain", "residual") for n in (s, d)}
    runs = train_arms(ctx, arms, cfg["train"], ctx.seeds)
    train_error = {a: mean_std([1 - r["history"][-1]["train_top1"] for r in rs]) for a, rs in runs.items()}
    test_top1 = {a: mean_std([r["top1"] for r in rs]) for a, rs in runs.items()}
    fig, ax = new_figure(width=10)
    styles = {f"plain{s}": ("#D55E00", "--"), f"plain{d}": ("#D55E00", "-"), f"residual{s}": ("#0072B2", "--"),
              f"residual{d}": ("#0072B2", "-")}
    for arm, rs in runs.items():
        curves = [[100 * (1 - h["train_top1"]) for h in r["history"]] for r in rs]
        mean = [sum(v) / len(v) for v in zip(*curves, strict=True)]
        colour, line = styles[arm]
        ax.plot(range(1, len(mean) + 1), mean, line, color=colour, marker="o", label=arm)
    ax.set(xlabel="epoch", ylabel="training error [%] (mean over seeds)",
           title="Plain (orange) vs residual (blue); dashed = shallow")
    ax.legend()
    ctx.save_figure(fig, "residual_depth.png")
    table = [{"arm": a, "train_error_mean": train_error[a]["mean"], "train_error_std": train_error[a]["std"],
              "test_top1_mean": test_top1[a]["mean"], "test_top1_std": test_top1[a]["std"]} for a in runs]
    what = (f"MLPs of {s} and {d} weighted layers (cnnlab.models.probes.block_net: stem, 2-layer blocks with BN, "
            f"width {cfg.get('width')}) with and without the shortcut, identical weights otherwise"
            if cfg["kind"] == "mlp" else f"the zoo's plain{s}/plain{d} and resnet{s}/resnet{d} (He et al. 2016 §4.2)")
    setup = f"{what}; {train_setup(cfg['train'], len(ctx.seeds))}; training error of the last epoch"
    return Result({"depths": [s, d], "train_error": train_error, "test_top1": test_top1}, setup, table)
