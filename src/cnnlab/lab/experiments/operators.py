"""Claims about the operators of FCN: deconvolution as zero insertion + convolution, and
convolutionalization keeping "where".
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.analysis.transposed import transposed_conv_by_zero_insertion, transposed_conv_output_size, zero_insert
from cnnlab.lab.arms import train_arms
from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment
from cnnlab.lab.experiments.design import QUICK_TRAIN, train_setup
from cnnlab.lab.style import new_figure
from cnnlab.models.probes import fc_head_net

SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"


# ============================================================================ deconvolution
def deconvolution_verdict(n: dict[str, Any]) -> Verdict:
    """Confirmed: for every (kernel, stride, padding, output padding) case zero insertion + convolution
    matches ConvTranspose2d to float32 round-off (max |diff| <= 1e-4 x output scale) and the output-size
    formula matches the measured shape."""
    bad_size = [c for c in n["cases"] if c["formula_size"] != c["torch_size"]]
    worst = max(c["rel_diff"] for c in n["cases"])
    if bad_size:
        return Verdict("not confirmed", f"{len(bad_size)} cases where (H-1)s - 2p + k + a != the measured size")
    if worst > 1e-4:
        return Verdict("not confirmed", f"zero insertion + conv differs from ConvTranspose2d by {worst:.2e} (relative)")
    return Verdict("confirmed", f"{len(n['cases'])} cases: equal to {worst:.1e} (relative, float32) and output size "
                                "(H-1)s - 2p + k + a exact in all")


@register_experiment(
    "deconvolution",
    claim=Claim(quote="Deconvolution은 아래와 같은 방식으로 동작한다. 1. 각각의 픽셀 주위에 zero-padding을 추가한다. "
                      "2. 이렇게 padding이된 것에 convolution 연산을 한다.",
                paraphrase="A transposed convolution (deconvolution) equals inserting zeros around each input pixel "
                           "and then running an ordinary convolution; its output is (H-1)s - 2p + k + a.",
                seed=SEED_BOOTCAMP),
    configs={"quick": {"sizes": [4, 7], "kernels": [2, 3, 4, 5], "strides": [1, 2, 3], "pads": [0, 1, 2]},
             "full": {"sizes": [1, 4, 7, 16], "kernels": [1, 2, 3, 4, 5, 7, 16], "strides": [1, 2, 3, 4, 8],
                      "pads": [0, 1, 2, 3, 4]}},
    cost={"quick": 5, "full": 30}, verdict=deconvolution_verdict)
def deconvolution(ctx: Context) -> Result:
    gen = torch.Generator().manual_seed(0)
    cases = []
    c = ctx.config
    for size, k, s, p in itertools.product(c["sizes"], c["kernels"], c["strides"], c["pads"]):
        for a in range(s):
            expected = (size - 1) * s - 2 * p + k + a
            if expected < 1:
                continue
            x = torch.randn(1, 3, size, size, generator=gen)
            w = torch.randn(3, 2, k, k, generator=gen)
            b = torch.randn(2, generator=gen)
            ref = F.conv_transpose2d(x, w, b, s, p, a)
            mine = transposed_conv_by_zero_insertion(x, w, b, s, p, a)
            scale = float(ref.abs().max()) or 1.0
            diff = float((ref - mine).abs().max())
            cases.append({"H": size, "k": k, "s": s, "p": p, "a": a, "torch_size": ref.shape[-1],
                          "formula_size": transposed_conv_output_size(size, k, s, p, a),
                          "max_abs_diff": diff, "rel_diff": diff / scale})
    _deconvolution_figure(ctx)
    setup = (f"{len(cases)} settings (input H in {c['sizes']}, kernel k in {c['kernels']}, stride s in {c['strides']}, "
             f"padding p in {c['pads']}, every output padding a < s): random 3->2-channel weights; "
             "torch's ConvTranspose2d vs cnnlab.analysis.transposed (insert s-1 zeros, pad k-1-p, convolve with the "
             "flipped kernel)")
    table = [r for r in cases if r["H"] == c["sizes"][0] and r["p"] <= 1 and r["a"] == 0][:12]
    return Result({"cases": cases}, setup, table)


def _deconvolution_figure(ctx: Context) -> None:
    x = torch.arange(1, 10, dtype=torch.float32).reshape(1, 1, 3, 3)
    w = torch.ones(1, 1, 3, 3)
    z = F.pad(zero_insert(x, 2), (2, 2, 2, 2))
    y = F.conv_transpose2d(x, w, stride=2)
    fig, axes = new_figure(1, 3, width=15, height=5)
    for ax, img, title in zip(axes, (x[0, 0], z[0, 0], y[0, 0]),
                              ("input 3x3", "zeros inserted (s=2) + padded (k-1=2)", "3x3 conv of it = 7x7 output"),
                              strict=True):
        ax.imshow(img, cmap="cividis")
        ax.set_title(title)
        ax.grid(False)
        ax.set(xticks=[], yticks=[])
        middle = float(img.min() + img.max()) / 2
        for (i, j), v in zip(itertools.product(range(img.shape[0]), range(img.shape[1])), img.flatten(), strict=True):
            if v or img.shape[0] <= 7:
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < middle else "black")
    ctx.save_figure(fig, "deconvolution.png")


# ============================================================================ convolutionalization
def convolutionalization_verdict(n: dict[str, Any]) -> Verdict:
    """Confirmed: at the training size the convolutionalized net equals the classifier (max |diff| < 1e-4)
    and on the larger scenes the score map of the item's class peaks within 8 px of the item's centre in at
    least 80 % of scenes (chance: ``chance_hit``). Partly: equal outputs and a hit rate at least twice chance."""
    text = (f"same outputs at 28x28 (max |diff| {n['max_abs_diff']:.1e}); peak within {n['radius']} px of the item in "
            f"{n['hit_rate']:.0%} of {n['scenes']} scenes (chance {n['chance_hit']:.0%}); classifier accuracy "
            f"{n['classifier_top1']:.1%}")
    if n["max_abs_diff"] >= 1e-4:
        return Verdict("not confirmed", text)
    if n["hit_rate"] >= 0.8:
        return Verdict("confirmed", text)
    return Verdict("partly" if n["hit_rate"] >= 2 * n["chance_hit"] else "not confirmed", text)


@register_experiment(
    "convolutionalization",
    claim=Claim(quote="이를 해결할 수 있는 방법은 FC Layer를 Convolutional Layer로 변환하는 Convolutionalization이다. "
                      "... 이를 통해 Input 이미지의 위치 정보를 끝까지 유지할 수 있다.",
                paraphrase="FC layers turned into convolutions keep 'where': the same classifier, convolutionalized, "
                           "gives a class-score map that peaks on the item in a larger scene.",
                seed=SEED_BOOTCAMP),
    configs={"quick": {"train": QUICK_TRAIN, "scene": 84, "scenes": 200, "radius": 8, "seeds": 1},
             "full": {"train": {**QUICK_TRAIN, "train_subset": 0, "test_subset": 0, "epochs": 8}, "scene": 112,
                      "scenes": 1000, "radius": 8, "seeds": 1}},
    cost={"quick": 40, "full": 300}, verdict=convolutionalization_verdict)
def convolutionalization(ctx: Context) -> Result:
    from cnnlab.data import load_dataset
    from cnnlab.segmentation.convolutionalize import convolutionalize

    cfg = ctx.config
    run = train_arms(ctx, {"fc_head_net": fc_head_net}, cfg["train"], ctx.seeds)["fc_head_net"][0]
    model = run["model"].eval()
    fcn = convolutionalize(model, (1, 28, 28)).eval()
    test = load_dataset(cfg["train"]["data"], split="test")
    mean, std = float(test.mean[0]), float(test.std[0])
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(test), generator=gen)[: cfg["scenes"]]
    items = test.images[idx].float() / 255
    with torch.inference_mode():
        same = (model((items[:64] - mean) / std) - fcn((items[:64] - mean) / std).flatten(1)).abs().max().item()
        hits, errors, maps = _locate(fcn, items, test.labels[idx], cfg, mean, std, gen)
    numbers = {"classifier_top1": run["top1"], "max_abs_diff": same, "scenes": len(idx), "radius": cfg["radius"],
               "hit_rate": sum(hits) / len(hits), "mean_error_px": sum(errors) / len(errors),
               "chance_hit": _chance_hit(cfg["scene"], cfg["radius"]), "score_map": list(maps[0][1].shape)}
    _convolutionalization_figure(ctx, maps)
    setup = (f"a conv-conv-FC-FC classifier (cnnlab.models.probes.fc_head_net) {train_setup(cfg['train'], 1)}; "
             f"convolutionalized with cnnlab.segmentation.convolutionalize; {cfg['scenes']} scenes of "
             f"{cfg['scene']}x{cfg['scene']} black canvas with one test item pasted at a random place; the arg-max "
             f"of the item's class-score map (one score per 28x28 window, stride 4) mapped to the window centre")
    return Result(numbers, setup, [{k: v for k, v in numbers.items() if k != "score_map"}])


def _chance_hit(scene: int, radius: int) -> float:
    """Probability that a random window (stride 4) lies within ``radius`` px of the item in both axes."""
    windows = (scene - 28) // 4 + 1
    return min(1.0, ((2 * radius) // 4 + 1) ** 2 / windows ** 2)


def _locate(fcn, items, labels, cfg, mean, std, gen):
    scene, radius = cfg["scene"], cfg["radius"]
    hits, errors, maps = [], [], []
    for img, label in zip(items, labels, strict=True):
        r, c = (int(v) for v in torch.randint(0, scene - 28 + 1, (2,), generator=gen))
        canvas = torch.zeros(1, 1, scene, scene)
        canvas[0, 0, r:r + 28, c:c + 28] = img[0]
        score = fcn((canvas - mean) / std)[0, int(label)]
        i, j = divmod(int(score.argmax()), score.shape[-1])
        # window (i, j) reads input rows 4i .. 4i+27: its centre is 4i + 13.5
        err = max(abs(4 * i - r), abs(4 * j - c))
        hits.append(err <= radius)
        errors.append(err)
        if len(maps) < 3:
            maps.append((canvas[0, 0], score, (r, c)))
    return hits, errors, maps


def _convolutionalization_figure(ctx: Context, maps) -> None:
    fig, axes = new_figure(2, 3, width=14, height=9)
    for col, (canvas, score, (r, c)) in enumerate(maps):
        axes[0, col].imshow(canvas, cmap="gray")
        axes[0, col].add_patch(__import__("matplotlib").patches.Rectangle((c - 0.5, r - 0.5), 28, 28, fill=False,
                                                                         edgecolor="#E69F00", linewidth=2.5))
        axes[0, col].set_title(f"scene {col + 1}: item at ({r}, {c}) px")
        axes[1, col].imshow(score, cmap="cividis")
        axes[1, col].set_title("item's class score map")
        axes[1, col].set_xlabel("window column (stride 4 px)")
        axes[1, col].set_ylabel("window row")
        for ax in axes[:, col]:
            ax.grid(False)
    ctx.save_figure(fig, "convolutionalization.png")
