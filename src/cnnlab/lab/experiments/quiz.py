"""The lecture's O/X quiz answered by measurement."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnlab.analysis import inspect
from cnnlab.analysis.gradients import layer_gradient_norms
from cnnlab.analysis.summary import build_meta
from cnnlab.data.arrays import normalize_uint8
from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment

SEED_LECTURE = "001_2f996cc2c9e949d3.txt"
SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"

# The statements as the lecture prints them, and the answer its text implies (the seed has no answer key).
STATEMENTS = [
    ("VGGNet 모델은 3x3 컨볼루션을 사용하여 많은 층을 갖더라도 네트워크 구조가 단순한다.", "O"),
    ("인셉션 모델을 사용하면 여러 크기의 수용장에 대한 특징을 동시에 추출할 수 있다.", "O"),
    ("ResNet 모델이 많은 층을 갖게 된 것에는 지름길 연결을 사용한 덕분이다.", "O"),
    ("DPN에서 마이크로 블록은 채널 교환을 통해 채널 간의 상관관계를 반영 하게 한다.", "X"),
    ("SENet 모델은 다른 기존 모델에 SENet 모듈을 적용함으로써 성능을 개선 하게 한다.", "O"),
    ("SuffleNet 모델은 깊이별 분할 컨볼루션을 사용하여 계산 비용을 줄인다.", "X"),
    ("전이 학습을 하게 되면 학습된 기존 모델을 사용하여 정확도를 높이는 데 는 도움이 되지만, 일반 학습에서도 더 많은 "
     "학습 데이터를 사용해야 한다.", "X"),
]


def _convs(name: str) -> list[nn.Conv2d]:
    return [m for m in build_meta(name)[0].modules() if isinstance(m, nn.Conv2d)]


def q_vgg() -> tuple[str | None, str]:
    kernels = sorted({m.kernel_size for m in _convs("vgg16")})
    return ("O" if kernels == [(3, 3)] else "X"), f"VGG-16's 13 convs use kernels {kernels} only (counted)"


def q_inception() -> tuple[str | None, str]:
    module = build_meta("googlenet")[0].inception3a
    rfs = {b: inspect(getattr(module, b), (192, 28, 28)).receptive_field for b in ("branch1", "branch2", "branch3",
                                                                                     "branch4")}
    answer = "O" if len(set(map(str, rfs.values()))) > 1 else "X"
    return answer, (f"inception 3a's branches see receptive fields {rfs} (traced) in one block; cnnlab's "
                    "GoogLeNet keeps torchvision's 3x3 kernel in the '5x5' branch")


def q_resnet(batch: torch.Tensor, labels: torch.Tensor) -> tuple[str | None, str]:
    """O when ResNet-56's gradient at initialisation stays at least 10x closer to balanced across depth
    (|log10 first/last conv gradient norm|) than plain-56's. (A first rule expected plain-56's gradient to
    vanish; with batch norm it explodes instead -- 4.7e3x towards the input, cf. Yang et al. 2019, "A mean
    field theory of batch normalization" -- so the rule measures the imbalance either way.)"""
    import math

    from cnnlab.models import create_model

    ratio = {}
    for name in ("plain56", "resnet56"):
        torch.manual_seed(0)
        norms = layer_gradient_norms(create_model(name, num_classes=10, in_chans=1, img_size=28), batch, labels)
        ratio[name] = norms[0][1] / norms[-2][1]  # first conv vs last conv (the classifier is last)
    imbalance = {k: abs(math.log10(v)) for k, v in ratio.items()}
    answer = "O" if imbalance["plain56"] - imbalance["resnet56"] >= 1 else "X"
    return answer, (f"at initialisation the first conv gets {ratio['plain56']:.2g}x (plain-56) vs "
                    f"{ratio['resnet56']:.2g}x (ResNet-56) the last conv's gradient norm: with shortcuts the error "
                    "signal reaches every depth at a similar scale (a gradient proxy, used when the trained "
                    "degradation test, residual_depth, has not run)")


def q_resnet_trained(result: dict[str, Any] | None) -> tuple[str | None, str] | None:
    """From the residual_depth experiment when it has run: O when its verdict found the residual net free of the
    plain net's degradation (confirmed or partly), X when not."""
    if not result:
        return None
    verdict = result["verdict"]
    answer = "O" if verdict["status"] in ("confirmed", "partly") else "X"
    return answer, f"residual_depth ({verdict['status']}): {verdict['reason']}"


def q_shufflenet() -> tuple[str | None, str]:
    convs = _convs("shufflenet_v1_g3")
    depthwise = [m for m in convs if m.groups > 1 and m.groups == m.in_channels == m.out_channels]
    grouped = [m for m in convs if 1 < m.groups < m.in_channels]
    return "O", (f"ShuffleNet-v1 (g=3) has {len(depthwise)} depthwise 3x3 convs beside {len(grouped)} grouped 1x1 "
                 "convs and channel shuffles: it does use depthwise convolution, so measured O; its hallmark (the "
                 "answer the lecture likely wants, X) is pointwise group convolution + channel shuffle")


def q_se(result: dict[str, Any] | None) -> tuple[str | None, str] | None:
    """From se_gain when it has run: O when adding SE blocks changed test accuracy significantly upwards (the paired
    95 % t-interval of SE minus plain above 0), X when significantly downwards, undecided (None) otherwise."""
    if not result:
        return None
    lo, hi = result["numbers"]["paired"]["t_ci"] or (float("nan"), float("nan"))  # None: one seed, no interval
    diff = result["numbers"]["paired"]["mean_diff"]
    added = result["numbers"]["small"]["params_added"]
    answer = "O" if lo > 0 else "X" if hi < 0 else None
    return answer, (f"se_gain ({result['mode']}): SE blocks changed test accuracy by {100 * diff:+.2f} points "
                    f"(95 % CI [{100 * lo:+.2f}, {100 * hi:+.2f}]) at +{100 * added:.1f} % parameters"
                    + ("" if answer else "; not significant either way"))


def q_transfer(result: dict[str, Any] | None) -> tuple[str | None, str] | None:
    """From transfer when it has run. The statement says transfer learning needs *more* training data; measured X
    when at the smallest training set the pretrained net beats the scratch one significantly (paired 95 %
    t-interval above 0: it needs less data for the same accuracy), O when significantly below, else None."""
    if not result:
        return None
    n = result["numbers"]
    shots = min(n["shots"])
    lo, hi = n["paired"][str(shots)]["t_ci"] or (float("nan"), float("nan"))  # None: one seed, no interval
    acc = {arm: n["acc"][arm][str(shots)]["mean"] for arm in ("pretrained", "scratch")}
    answer = "X" if lo > 0 else "O" if hi < 0 else None
    return answer, (f"transfer ({result['mode']}): with {shots} images per class pretrained {acc['pretrained']:.1%} vs "
                    f"scratch {acc['scratch']:.1%} (paired 95 % CI of the gain [{100 * lo:+.1f}, {100 * hi:+.1f}] "
                    "points): transfer learning needs less data, not more")


NOT_HERE = {
    4: "what DPN's micro-block 'reflects' is a design intent, not a number; its block has no channel-exchange op "
       "(that is ShuffleNet's channel shuffle; SENet reweights channels)",
    5: "needs the se_gain experiment's result (ResNet vs SE-ResNet trained side by side): run it first",
    7: "needs the transfer experiment's result (pretrained vs scratch across training-set sizes): run it first",
}


def quiz_verdict(n: dict[str, Any]) -> Verdict:
    """Confirmed: every measurable statement's measured answer equals the lecture's implied answer, and at
    least half the statements are measurable. Partly: some measured answers differ or too few are measurable."""
    rows = n["answers"]
    measured = [r for r in rows if r["measured"] is not None]
    agree = [r for r in measured if r["measured"] == r["lecture"]]
    text = (f"{len(measured)} of {len(rows)} statements measurable; {len(agree)} agree with the lecture's answer"
            + ("".join(f"; Q{r['q']} measured {r['measured']} vs {r['lecture']}" for r in measured if r not in agree)))
    if len(agree) == len(measured) and 2 * len(measured) >= len(rows):
        return Verdict("confirmed", text)
    return Verdict("partly" if agree else "not confirmed", text)


@register_experiment(
    "quiz",
    claim=Claim(quote="VGGNet 모델은 3x3 컨볼루션을 사용하여 많은 층을 갖더라도 네트워크 구조가 단순한다. (O,X)",
                paraphrase="The lecture's O/X quiz (7 statements), each answered by a measurement or marked "
                           "'not measurable here' with the reason.",
                seed=SEED_LECTURE),
    configs={m: {"batch": 32, "data": "fashion-mnist"} for m in ("quick", "full")},
    cost={"quick": 40, "full": 40}, verdict=quiz_verdict, reads=("residual_depth", "se_gain", "transfer"), version=2)
def quiz(ctx: Context) -> Result:
    from cnnlab.data import load_dataset

    train = load_dataset(ctx.config["data"], split="train")
    x = normalize_uint8(train.images[: ctx.config["batch"]], train.mean, train.std)
    q3 = q_resnet_trained(ctx.read_other("residual_depth")) or q_resnet(x, train.labels[: ctx.config["batch"]])
    measured = {1: q_vgg(), 2: q_inception(), 3: q3, 6: q_shufflenet()}
    for q, answer in ((5, q_se(ctx.read_other("se_gain"))), (7, q_transfer(ctx.read_other("transfer")))):
        if answer is not None:
            measured[q] = answer
    rows = []
    for q, (text, lecture) in enumerate(STATEMENTS, start=1):
        answer, evidence = measured.get(q, (None, "not measurable here: " + NOT_HERE.get(q, "")))
        rows.append({"q": q, "statement": text, "lecture": lecture, "measured": answer, "evidence": evidence})
    setup = ("each statement of the quiz in 001_2f996cc2c9e949d3.txt checked against the zoo by counting (kernel "
             "sizes, depthwise/grouped convs), tracing (receptive fields) or one backward pass at initialisation "
             f"(plain-56 vs ResNet-56 on {ctx.config['batch']} Fashion-MNIST images), and the residual_depth, "
             "se_gain and transfer results when they have run; 'lecture' is the answer the "
             "lecture's text implies (the seed prints no key)")
    return Result({"answers": rows}, setup, rows)
