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
