"""Lab experiments transfer, skip_sharpness and bottleneck's accuracy arm: rules on planted numbers, exact counts."""

import pytest
import torch

from cnnlab.lab import Context, get_experiment


def run_tiny(name, config, tmp_path):
    exp = get_experiment(name)
    ctx = Context(name, "quick", config, tmp_path, tmp_path, log=lambda m: None)
    result = exp.run(ctx)
    for fig in ctx.figures:
        assert (tmp_path / fig).stat().st_size > 1000
    return result, exp.verdict(result.numbers)


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
