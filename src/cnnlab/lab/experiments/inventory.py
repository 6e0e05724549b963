"""Claims read off the zoo itself: where the parameters live, and accuracy against cost.

Both count on the meta device (``cnnlab.analysis``: no weights allocated), so they run in seconds.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnlab.analysis import compare
from cnnlab.analysis.summary import build_meta
from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment
from cnnlab.lab.style import OKABE_ITO, new_figure

SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"
SEED_REVIEW = "000_00f717e3d2045b8a.txt"


# ============================================================================ fc_share
def parameter_split(name: str) -> dict[str, Any]:
    """Weights in conv layers vs fully connected layers (and the rest: BN, ...), counted on the meta device.
    Auxiliary classifiers (GoogLeNet, Inception-v3; training only) are counted apart."""
    model, size = build_meta(name)
    conv = fc = aux = other = 0
    for mod_name, mod in model.named_modules():
        n = sum(p.numel() for p in mod.parameters(recurse=False))
        if "aux" in mod_name:
            aux += n
        elif isinstance(mod, nn.Conv2d):
            conv += n
        elif isinstance(mod, nn.Linear):
            fc += n
        else:
            other += n
    total = conv + fc + other
    return {"model": name, "input": "x".join(map(str, size)), "conv_params": conv, "fc_params": fc,
            "other_params": other, "aux_params": aux, "fc_share": fc / total, "fc_over_conv": fc / max(conv, 1)}


def fc_share_verdict(n: dict[str, Any]) -> Verdict:
    """Confirmed: AlexNet's FC layers hold 20-45x its conv weights (the seed: ~65 M vs ~2 M, "30x") and every
    GAP-headed net has at most a tenth of AlexNet's FC weights ("FC층의 매개변수를 줄이는 방향"). Partly: FC >= 10x
    conv in AlexNet only. (A first rule, "under 10 % of the net's weights in FC", failed on MobileNet-V2
    (36 %): its single 1280x1000 classifier is small, but so is its body; the seed's claim is the FC count.)"""
    rows = {r["model"]: r for r in n["rows"]}
    alex = rows["alexnet"]
    gap = [r for r in n["rows"] if r["model"] in n["gap_headed"]]
    gap_ok = all(r["fc_params"] <= alex["fc_params"] / 10 for r in gap)
    worst = max(gap, key=lambda r: r["fc_params"])
    text = (f"AlexNet FC {alex['fc_params'] / 1e6:.1f} M vs conv {alex['conv_params'] / 1e6:.2f} M = "
            f"{alex['fc_over_conv']:.0f}x; GAP-headed nets <= {worst['fc_params'] / 1e6:.2f} M FC weights "
            f"({worst['model']}, {worst['fc_share']:.0%} of it)")
    if 20 <= alex["fc_over_conv"] <= 45 and gap_ok:
        return Verdict("confirmed", text)
    if alex["fc_over_conv"] >= 10:
        return Verdict("partly", text)
    return Verdict("not confirmed", text)


@register_experiment(
    "fc_share",
    claim=Claim(quote="컨볼루션층은 200만개, FC층은 6500만개 가량의 매개변수 / FC층에 30배 많은 매개변수 → 향후 CNN은 "
                      "FC층의 매개변수를 줄이는 방향으로 발전",
                paraphrase="AlexNet keeps ~30x more weights in its FC layers than in its convs; later nets "
                           "(NiN, GoogLeNet, ResNet: global average pooling) shrink the FC share.",
                seed=SEED_BOOTCAMP),
    configs={m: {"fc_headed": ["alexnet", "alexnet_original", "vgg16"],
                 "gap_headed": ["nin", "googlenet", "resnet50", "mobilenet_v2", "efficientnet_b0"]}
             for m in ("quick", "full")},
    cost={"quick": 20, "full": 20}, verdict=fc_share_verdict)
def fc_share(ctx: Context) -> Result:
    names = ctx.config["fc_headed"] + ctx.config["gap_headed"]
    rows = [parameter_split(n) for n in names]
    fig, ax = new_figure(width=11, height=5.5)
    ys = range(len(rows))
    conv = [r["conv_params"] / 1e6 for r in rows]
    fc = [r["fc_params"] / 1e6 for r in rows]
    ax.barh(list(ys), conv, label="conv layers")
    ax.barh(list(ys), fc, left=conv, label="fully connected layers")
    ax.set(yticks=list(ys), xlabel="parameters [millions]", title="Where the weights live (aux heads excluded)")
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    ctx.save_figure(fig, "fc_share.png")
    setup = ("parameters of every nn.Conv2d and nn.Linear counted in each registered model built on the meta "
             "device at its default input (ImageNet 224/227; NiN's 224 variant); BN and other layers apart; "
             "GoogLeNet's auxiliary classifiers (used in training only) counted apart")
    return Result({"rows": rows, "gap_headed": ctx.config["gap_headed"]}, setup, rows)


# ============================================================================ zoo_chart
def zoo_chart_verdict(n: dict[str, Any]) -> Verdict:
    """Confirmed: EfficientNet-B0 is more accurate (published top-1) than ResNet-50 with fewer MACs, and every
    EfficientNet lies on the accuracy/MACs Pareto front of the charted models."""
    rows = {r["model"]: r for r in n["rows"]}
    b0, r50 = rows["efficientnet_b0"], rows["resnet50"]
    front = set(n["pareto_front"])
    effs = [m for m in rows if m.startswith("efficientnet_b")]
    text = (f"EfficientNet-B0 {b0['top1']:.1f} % at {b0['gmacs']:.2f} GMACs vs ResNet-50 {r50['top1']:.1f} % at "
            f"{r50['gmacs']:.2f} GMACs; on the Pareto front: {', '.join(sorted(front & set(effs))) or 'none'}")
    better = b0["top1"] > r50["top1"] and b0["gmacs"] < r50["gmacs"]
    if better and all(m in front for m in effs):
        return Verdict("confirmed", text)
    return Verdict("partly" if better else "not confirmed", text)


def pareto_front(rows: list[dict[str, Any]]) -> list[str]:
    """Models no other model beats on both accuracy (higher) and MACs (lower)."""
    return [r["model"] for r in rows if not any(
        o["top1"] >= r["top1"] and o["gmacs"] <= r["gmacs"] and (o["top1"], o["gmacs"]) != (r["top1"], r["gmacs"])
        for o in rows)]


@register_experiment(
    "zoo_chart",
    claim=Claim(quote="depth, width, resolution을 동시에 고려한 compound scaling ... 연산은 줄이고, 정확도는 높임",
                paraphrase="EfficientNet's compound scaling buys more accuracy per multiply-add: on the ball chart "
                           "(accuracy vs MACs, ball = parameters) it sits above the older nets.",
                seed=SEED_REVIEW),
    configs={m: {"models": ["alexnet", "vgg16", "googlenet", "inception_v3", "resnet18", "resnet50", "resnet152",
                            "densenet121", "resnext50_32x4d", "squeezenet1_0", "mobilenet_v2", "shufflenet_v2_x1_0",
                            "mnasnet1_0", "efficientnet_b0", "efficientnet_b2", "efficientnet_b4"]}
             for m in ("quick", "full")},
    cost={"quick": 30, "full": 30}, verdict=zoo_chart_verdict)
def zoo_chart(ctx: Context) -> Result:
    rows = [{"model": r.name, "input": "x".join(map(str, r.input_size)), "params_m": r.params / 1e6,
             "gmacs": r.gmacs, "top1": r.top1, "top5": r.top5, "source": r.source}
            for r in compare(ctx.config["models"]) if r.top1 is not None]
    front = pareto_front(rows)
    fig, ax = new_figure(width=12, height=7)
    biggest = max(r["params_m"] for r in rows)
    offsets = [((8, 6), "left"), ((-8, -16), "right"), ((8, -16), "left"), ((-8, 6), "right")]
    for i, r in enumerate(sorted(rows, key=lambda r: r["gmacs"])):  # neighbours get different label corners
        colour = OKABE_ITO[0] if r["model"] in front else OKABE_ITO[1]
        ax.scatter(r["gmacs"], r["top1"], s=60 + 2500 * r["params_m"] / biggest, color=colour, alpha=0.5,
                   edgecolors="black")
        (dx, dy), ha = offsets[i % 4]
        ax.annotate(r["model"], (r["gmacs"], r["top1"]), xytext=(dx, dy), textcoords="offset points", ha=ha)
    ax.set(xscale="log", xlabel="multiply-adds per image [G] (counted, log scale)",
           ylabel="ImageNet top-1 [%] (published)",
           title="Accuracy vs cost; ball area = parameters; blue = Pareto front")
    ctx.save_figure(fig, "zoo_chart.png")
    setup = ("MACs and parameters counted by cnnlab.compare at each model's published input size; top-1 accuracy "
             "is the published figure (reference_accuracy.json: torchvision's weights table or the paper), not "
             "measured here (no ImageNet on this machine)")
    return Result({"rows": rows, "pareto_front": front}, setup, rows)
