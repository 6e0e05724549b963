"""Experiments 14-18 of issue 23 (se_gain, compound_scaling, lenet, alexnet_tricks, googlenet_aux): their counts
are exact, their verdict rules reach every status on planted numbers, and each runs end to end at a tiny size."""

import re
from pathlib import Path

import lab_helpers
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.lab import get_experiment
from cnnlab.lab.experiments.architectures import added_cost, scaled_arms
from cnnlab.lab.experiments.architectures_classic import epochs_to, main_loss_curve, registry_googlenet_aux
from cnnlab.models import AuxOutputs, create_model
from cnnlab.models.probes import alexnet_like_net, aux_head_net, kernel_stack_net, residual_se_net

NAMES = ("se_gain", "compound_scaling", "lenet", "alexnet_tricks", "googlenet_aux")
SEEDS = Path("/work/shared/seeds")
TINY = {"data": "synthetic", "train_subset": 100, "test_subset": 100, "epochs": 1, "batch_size": 100,
        "optimizer": "adam", "lr": 3e-3, "threads": 1}



def run_tiny(name, config, tmp_path):
    return lab_helpers.run_tiny(name, config, tmp_path, require_figure=True)


def params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------- claims
@pytest.mark.skipif(not SEEDS.is_dir(), reason="the course seeds are not on this machine")
@pytest.mark.parametrize("name", NAMES)
def test_claim_quotes_are_verbatim_from_the_seed(name):
    """As tests/lab/test_framework.py checks every experiment: whitespace and bullets aside, each fragment is in the
    seed; a leading "(풀링) " names the bullet's bold head (the seed writes **풀링**:)."""
    claim = get_experiment(name).claim
    text = re.sub(r"[•\-] ", "", " ".join((SEEDS / claim.seed).read_text(encoding="utf-8").split()))
    for part in re.split(r" / |^\(\w+\) ", claim.quote):
        assert " ".join(part.split()) in text, part


# ---------------------------------------------------------------------------- probes
def test_residual_se_net_adds_exactly_the_se_weights():
    plain, se = residual_se_net((8, 16, 32), 1, 0), residual_se_net((8, 16, 32), 1, 4)
    assert params(plain) == 19_074
    # one SE block per residual branch: C*C/r + C/r + C/r*C + C (two 1x1 convs with bias)
    assert params(se) - params(plain) == sum(2 * c * (c // 4) + c // 4 + c for c in (8, 16, 32)) == 742
    assert sum(type(m).__name__ == "SqueezeExcitation" for m in se.modules()) == 3
    assert se(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_resnet50_se_cost_counted_exactly():
    cost = added_cost(create_model("resnet50"), create_model("se_resnet50"), (3, 224, 224))
    assert cost["params"] == [25_557_032, 28_088_024]
    assert cost["macs"] == [4_089_184_256, 4_091_699_200]
    assert cost["params_added"] == pytest.approx(0.0990, abs=1e-4)  # the paper: ~10 %
    assert cost["macs_added"] == pytest.approx(6.15e-4, abs=1e-5)


def test_alexnet_like_net_switches_lrn_and_overlap_at_equal_size():
    x = torch.randn(2, 1, 28, 28)
    sizes = {}
    for lrn in (True, False):
        for overlap in (True, False):
            net = alexnet_like_net((4, 8, 8), lrn=lrn, overlap=overlap, hidden=16)
            pools = [m for m in net if isinstance(m, nn.MaxPool2d)]
            assert [p.kernel_size for p in pools] == [3 if overlap else 2] * 3 and all(p.stride == 2 for p in pools)
            assert sum(isinstance(m, nn.LocalResponseNorm) for m in net) == (2 if lrn else 0)
            h, maps = x, []
            for m in net:
                h = m(h)
                if isinstance(m, nn.MaxPool2d):
                    maps.append(h.shape[-1])
            sizes[lrn, overlap] = (maps, params(net), h.shape)
    weights = (25 * 4 + 4) + (25 * 4 * 8 + 8) + (9 * 8 * 8 + 8) + (8 * 16 * 16 + 16) + (16 * 10 + 10)
    assert set(map(str, sizes.values())) == {str(([14, 7, 4], weights, torch.Size([2, 10])))}


def test_aux_head_net_returns_aux_logits_in_training_only():
    torch.manual_seed(0)
    net = aux_head_net(9, 8, aux=True)
    assert net.taps == (3, 6)
    out = net.train()(torch.randn(4, 1, 28, 28))
    assert isinstance(out, AuxOutputs) and out.aux_weight == 0.3
    assert out.logits.shape == (4, 10) and [a.shape for a in out.aux] == [(4, 10), (4, 10)]
    assert isinstance(net.eval()(torch.randn(4, 1, 28, 28)), torch.Tensor)
    plain = aux_head_net(9, 8, aux=False)
    assert isinstance(plain.train()(torch.randn(4, 1, 28, 28)), torch.Tensor)
    assert sum(isinstance(m, nn.Conv2d) for m in plain.modules()) == 9
    # the heads are the only difference: 2 x (4*8*64 + 64 + 64*10 + 10)
    assert params(net) - params(plain) == 2 * (4 * 8 * 64 + 64 + 64 * 10 + 10)


def test_engine_logs_main_head_loss_apart_for_aux_nets(tmp_path):
    from cnnlab.train import TrainConfig, fit

    common = dict(data="synthetic", train_subset=200, epochs=1, batch_size=100, optimizer="adam", lr=1e-3,
                  threads=1, progress="none", plots=False, tensorboard=False, eval_test=False)
    torch.manual_seed(0)
    aux = fit(TrainConfig(model="aux", out_dir=str(tmp_path / "a"), **common), model=aux_head_net(6, 4)).history[0]
    torch.manual_seed(0)
    plain = fit(TrainConfig(model="plain", out_dir=str(tmp_path / "p"), **common),
                model=aux_head_net(6, 4, aux=False)).history[0]
    assert "train_main_loss" not in plain
    # total = main + 0.3 * (two aux losses, each ~ln 10 at the start): clearly above the main loss alone
    assert aux["train_loss"] - aux["train_main_loss"] == pytest.approx(0.3 * 2 * 2.30, abs=0.15)
    assert aux["train_main_loss"] == pytest.approx(2.30, abs=0.1)
    assert main_loss_curve([aux]) == [aux["train_main_loss"]] and main_loss_curve([plain]) == [plain["train_loss"]]


def test_main_head_loss_matches_cross_entropy_of_the_logits():
    from cnnlab.train import TrainConfig
    from cnnlab.train.task import ClassificationTask, DataSpec, StepContext

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]]) + self.w
            return AuxOutputs(logits, (torch.zeros(2, 2) + self.w,), 0.3)

    spec = DataSpec(num_classes=2, in_chans=1, img_size=4, data_size=(4, 4), classes=["a", "b"], mean=[0.0],
                    std=[1.0])
    ctx = StepContext(cfg=TrainConfig(data="synthetic"), spec=spec, criterion=nn.CrossEntropyLoss())
    y = torch.tensor([0, 0])
    out = ClassificationTask().step(Fixed(), (torch.zeros(2, 1, 4, 4), y), ctx)
    main = F.cross_entropy(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), y)
    assert torch.allclose(out.parts["main_loss"], main)
    assert torch.allclose(out.loss, main + 0.3 * F.cross_entropy(torch.zeros(2, 2), y))


def test_registry_googlenet_has_two_aux_heads_used_in_training_only():
    zoo = registry_googlenet_aux()
    assert zoo == {"params_with_aux": 9_951_806, "params_without_aux": 5_601_322, "train_returns_aux": True,
                   "aux_heads": 2, "aux_weight": 0.3, "eval_returns_logits": True}


# ---------------------------------------------------------------------------- compound scaling
def test_scaled_arms_follow_efficientnet_coefficients():
    arms = scaled_arms({"layers": 5, "widths": [8, 16], "resolution": 20}, 2.0,
                       {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}, 1.0)
    shape = {a: (s["layers"], s["widths"], s["resolution"]) for a, s in arms.items()}
    assert shape == {"base": (5, [8, 16], 20), "depth": (10, [8, 16], 20), "width": (5, [11, 23], 20),
                     "resolution": (5, [8, 16], 28), "compound": (6, [9, 18], 23)}
    assert arms["compound"]["factors"] == pytest.approx([1.2, 1.1, 1.15])
    macs = {a: get_macs(s) for a, s in arms.items()}
    ratios = {a: round(m / macs["base"], 3) for a, m in macs.items()}
    assert ratios == {"base": 1.0, "depth": 2.159, "width": 1.97, "resolution": 1.96, "compound": 1.968}
    assert 1.2 * 1.1 ** 2 * 1.15 ** 2 == pytest.approx(1.9203, abs=1e-4)  # alpha·beta²·gamma² ≈ 2


def get_macs(spec):
    from cnnlab.analysis import inspect

    net = kernel_stack_net(3, spec["layers"], tuple(spec["widths"]))
    return inspect(net, (1, spec["resolution"], spec["resolution"])).total_macs


# ---------------------------------------------------------------------------- verdict rules
def acc(**means):
    return {k: {"mean": v, "std": 0.01, "n": 3} for k, v in means.items()}


def paired(diff, ci):
    return {"mean_diff": diff, "t_ci": ci, "p_value": 0.01 if ci else None, "n": 3}


def test_se_gain_rule():
    rule = get_experiment("se_gain").verdict
    base = {"imagenet": {"params_added": 0.099, "macs_added": 0.0006}, "small": {"params_added": 0.039},
            "acc": acc(plain=0.80, se=0.81)}
    assert rule({**base, "paired": paired(0.01, [0.002, 0.018])}).status == "confirmed"
    assert rule({**base, "paired": paired(0.01, [-0.01, 0.03])}).status == "partly"
    assert rule({**base, "paired": paired(-0.01, [-0.03, 0.01])}).status == "not confirmed"
    worse = rule({**base, "paired": paired(-0.02, [-0.03, -0.01])})
    assert worse.status == "not confirmed" and "beyond seed noise" in worse.reason
    costly = {**base, "imagenet": {"params_added": 0.099, "macs_added": 0.05}}
    assert rule({**costly, "paired": paired(0.01, [0.002, 0.018])}).status == "not confirmed"


def test_compound_scaling_rule():
    rule = get_experiment("compound_scaling").verdict
    ratios = {"base": 1.0, "depth": 2.16, "width": 1.97, "resolution": 1.96, "compound": 1.97}
    n = {"budget": 2.0, "mac_ratio": ratios, "acc": acc(base=0.7, depth=0.75, width=0.76, resolution=0.74,
                                                         compound=0.78)}
    assert rule({**n, "paired_vs_best": paired(0.02, [0.01, 0.03])}).status == "confirmed"
    assert rule({**n, "paired_vs_best": paired(0.02, [-0.01, 0.05])}).status == "partly"
    worse = {**n, "acc": acc(base=0.7, depth=0.75, width=0.80, resolution=0.74, compound=0.78)}
    assert rule({**worse, "paired_vs_best": paired(-0.02, [-0.03, -0.01])}).status == "not confirmed"
    underfit = {**n, "acc": acc(base=0.80, depth=0.75, width=0.76, resolution=0.74, compound=0.78)}
    assert rule({**underfit, "paired_vs_best": paired(0.02, [0.01, 0.03])}).status == "not measurable"
    unequal = {**n, "mac_ratio": {**ratios, "depth": 2.5}}
    assert rule({**unequal, "paired_vs_best": paired(0.02, [0.01, 0.03])}).status == "not measurable"


def test_lenet_rule():
    rule = get_experiment("lenet").verdict
    n = {"threshold": 0.8, "epochs_to_threshold": {"lenet5": {"mean": 3.0}, "lenet5_modern": {"mean": 2.0}}}
    fast = {"lenet5": [0.8, 0.7, 0.9], "lenet5_modern": [0.6, 0.6, 0.7]}
    mixed = {"lenet5": [0.8, 0.5, 0.9], "lenet5_modern": [0.6, 0.6, 0.7]}
    assert rule({**n, "mean_train_loss": fast, "acc": acc(lenet5=0.8, lenet5_modern=0.82)}).status == "confirmed"
    assert rule({**n, "mean_train_loss": mixed, "acc": acc(lenet5=0.8, lenet5_modern=0.82)}).status == "partly"
    assert rule({**n, "mean_train_loss": fast, "acc": acc(lenet5=0.8, lenet5_modern=0.79)}).status == "partly"
    assert rule({**n, "mean_train_loss": mixed, "acc": acc(lenet5=0.8, lenet5_modern=0.79)}).status == "not confirmed"


def test_alexnet_tricks_rule():
    rule = get_experiment("alexnet_tricks").verdict
    n = {"spread": 0.01, "paper": {"lrn": 1.4, "overlap": 0.4}, "lrn_term": [0.01, 0.02]}
    sig, unsure = paired(0.012, [0.004, 0.02]), paired(0.004, [-0.01, 0.018])
    assert rule({**n, "gain": {"lrn": sig, "overlap": sig}}).status == "confirmed"
    assert rule({**n, "gain": {"lrn": sig, "overlap": unsure}}).status == "partly"
    verdict = rule({**n, "gain": {"lrn": unsure, "overlap": paired(-0.003, [-0.02, 0.014])}})
    assert verdict.status == "not confirmed" and "3 seeds" in verdict.reason and "+1.4" in verdict.reason
    hurt = rule({**n, "gain": {"lrn": paired(-0.014, [-0.018, -0.01]), "overlap": unsure}})
    assert hurt.status == "not confirmed" and "LRN raises the error" in hurt.reason and "overlap:" in hurt.reason
    assert "near-constant" in hurt.reason
    strong = rule({**n, "lrn_term": [0.5, 3.0], "gain": {"lrn": paired(-0.014, [-0.018, -0.01]), "overlap": unsure}})
    assert "near-constant" not in strong.reason


def test_lrn_neighbour_term_is_read_back_exactly():
    from cnnlab.lab.experiments.architectures_classic import lrn_neighbour_term

    net = nn.Sequential(nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0))
    x = torch.full((1, 5, 1, 1), 3.0)  # centre channel: 5 neighbours of 9 -> alpha/n * sum = 1e-4 * 45
    terms = lrn_neighbour_term(net, x)
    assert len(terms) == 1
    # channels see 3, 4, 5, 4, 3 neighbours (zero-padded at the ends): median term 1e-4 * 4 * 9
    assert terms[0] == pytest.approx(1e-4 * 4 * 9, rel=1e-3)


def test_googlenet_aux_rule():
    rule = get_experiment("googlenet_aux").verdict
    faster = {"aux": [1.9, 2.0, 2.1], "no_aux": [2.3, 2.3, 2.3]}
    on_mean = {"aux": [1.9, 2.4, 2.1], "no_aux": [2.3, 2.3, 2.3]}
    slower = {"aux": [2.4, 2.4, 2.2], "no_aux": [2.3, 2.3, 2.3]}
    assert rule({"mean_main_loss": faster, "acc": acc(aux=0.5, no_aux=0.4)}).status == "confirmed"
    assert rule({"mean_main_loss": on_mean, "acc": acc(aux=0.5, no_aux=0.4)}).status == "partly"
    assert rule({"mean_main_loss": faster, "acc": acc(aux=0.3, no_aux=0.4)}).status == "partly"
    assert rule({"mean_main_loss": slower, "acc": acc(aux=0.5, no_aux=0.4)}).status == "not confirmed"


def test_epochs_to_threshold_counts_from_one_and_censors():
    history = [{"epoch": e, "train_top1": a} for e, a in ((1, 0.5), (2, 0.79), (3, 0.81), (4, 0.9))]
    assert epochs_to(history, 0.8) == 3 and epochs_to(history, 0.5) == 1 and epochs_to(history, 0.95) == 5


# ---------------------------------------------------------------------------- tiny end-to-end runs
def test_se_gain_tiny_run(tmp_path):
    result, verdict = run_tiny("se_gain", {"size": 32, "widths": [4, 8], "blocks": 1, "reduction": 2, "seeds": 2,
                                           "train": TINY}, tmp_path)
    n = result.numbers
    assert n["small"]["params"][1] - n["small"]["params"][0] == (2 * 4 * 2 + 2 + 4) + (2 * 8 * 4 + 4 + 8)
    assert len(n["per_seed"]["se"]) == 2 and (tmp_path / "runs" / "se-s1" / "metrics.csv").is_file()
    assert verdict.status in ("confirmed", "partly", "not confirmed") and "SE-ResNet-50" in verdict.reason
    from cnnlab.lab.experiments.quiz import q_se  # the quiz reads this very result (statement 5)

    answer, evidence = q_se({"mode": "quick", "numbers": n})
    lo, hi = n["paired"]["t_ci"]
    assert answer == ("O" if lo > 0 else "X" if hi < 0 else None) and "se_gain (quick)" in evidence


def test_compound_scaling_tiny_run(tmp_path):
    cfg = {"base": {"layers": 5, "widths": [2, 4], "resolution": 20}, "budget": 2.0, "phi": 1.0,
           "coefficients": {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}, "seeds": 1, "train": {**TINY, "epochs": 1}}
    result, verdict = run_tiny("compound_scaling", cfg, tmp_path)
    n = result.numbers
    assert set(n["acc"]) == {"base", "depth", "width", "resolution", "compound"}
    assert n["arms"]["resolution"]["resolution"] == 28 and n["mac_ratio"]["base"] == 1.0
    meta = (tmp_path / "runs" / "resolution-s0" / "metrics.csv").read_text()
    assert meta and verdict.status in ("confirmed", "partly", "not confirmed", "not measurable")


def test_classic_tiny_runs(tmp_path):
    result, verdict = run_tiny("lenet", {"threshold": 0.5, "seeds": 2, "train": TINY}, tmp_path / "lenet")
    assert result.numbers["params"] == {"lenet5": 60_850, "lenet5_modern": 61_706}
    result, verdict = run_tiny("alexnet_tricks", {"widths": [4, 8, 8], "hidden": 16, "seeds": 2, "train": TINY},
                               tmp_path / "alex")
    assert set(result.numbers["gain"]) == {"lrn", "overlap"} and result.numbers["gain"]["lrn"]["n"] == 2
    result, verdict = run_tiny("googlenet_aux", {"kind": "probe", "depth": 6, "width": 4, "seeds": 2, "train": TINY},
                               tmp_path / "aux")
    assert result.numbers["registry"]["aux_heads"] == 2 and len(result.numbers["mean_main_loss"]["aux"]) == 2
