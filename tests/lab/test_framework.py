"""The lab's framework: cache by configuration, failure isolation, verdicts from numbers, Ctrl-C, workers, CLI."""

import json

import pytest

from cnnlab.lab import Claim, Result, Verdict, register_experiment, run_experiment, run_experiments
from cnnlab.lab.experiment import list_experiments, unregister_experiment
from cnnlab.lab.stats import mean_std, paired_comparison

CLAIM = Claim(quote="테스트", paraphrase="A test claim.", seed="none.txt")


def above_half(n):
    """The rule: confirmed when the measured value exceeds 0.5."""
    ok = n["value"] > 0.5
    return Verdict("confirmed" if ok else "not confirmed", f"value {n['value']:.2f}")


@pytest.fixture
def fake_lab(tmp_path):
    """Throw-away experiments: t_square (value = x*x/10, counts its runs), t_fail (raises), t_interrupt."""
    calls = []
    configs = {"quick": {"x": 3}, "full": {"x": 5}}

    @register_experiment("t_square", claim=CLAIM, configs=configs, cost={"quick": 1, "full": 1}, verdict=above_half)
    def t_square(ctx):
        calls.append(ctx.config["x"])
        (ctx.out_dir / "data.txt").write_text("made")
        return Result({"value": ctx.config["x"] ** 2 / 10}, f"x = {ctx.config['x']}", [{"x": ctx.config["x"]}])

    @register_experiment("t_fail", claim=CLAIM, configs={"quick": {}, "full": {}}, cost={"quick": 1, "full": 1},
                         verdict=above_half)
    def t_fail(ctx):
        raise RuntimeError("planted failure")

    yield {"calls": calls, "configs": configs, "root": tmp_path / "lab"}
    for name in ("t_square", "t_fail", "t_interrupt"):
        unregister_experiment(name)


def test_a_changed_outside_input_reruns_the_experiment(tmp_path):
    """An experiment that reads files outside the lab (detection_speed reads detection runs) declares
    ``inputs``; a new or changed file is a cache miss, not the old verdict."""
    inbox = tmp_path / "inbox.txt"
    inbox.write_text("1")
    calls = []

    @register_experiment("t_inputs", claim=CLAIM, configs={"quick": {}, "full": {}}, cost={"quick": 1, "full": 1},
                         verdict=above_half, inputs=lambda config: inbox.read_text())
    def t_inputs(ctx):
        calls.append(inbox.read_text())
        return Result({"value": float(inbox.read_text())}, "reads inbox.txt")

    try:
        root = tmp_path / "lab"
        run_experiment("t_inputs", "quick", root=root, log=lambda m: None)
        assert run_experiment("t_inputs", "quick", root=root, log=lambda m: None).get("cached")
        inbox.write_text("0.25")
        again = run_experiment("t_inputs", "quick", root=root, log=lambda m: None)
        assert not again.get("cached") and calls == ["1", "0.25"] and again["verdict"]["status"] == "not confirmed"
    finally:
        unregister_experiment("t_inputs")


def test_cache_hit_then_miss_on_config_change(fake_lab):
    root = fake_lab["root"]
    first = run_experiment("t_square", "quick", root=root, log=lambda m: None)
    assert first["status"] == "ok" and first["numbers"] == {"value": 0.9}
    assert (root / "t_square" / "data.txt").read_text() == "made"
    again = run_experiment("t_square", "quick", root=root, log=lambda m: None)
    assert again.get("cached") and fake_lab["calls"] == [3]  # not rerun
    fake_lab["configs"]["quick"]["x"] = 4  # the configuration changed -> a new hash -> rerun
    changed = run_experiment("t_square", "quick", root=root, log=lambda m: None)
    assert not changed.get("cached") and fake_lab["calls"] == [3, 4]
    assert changed["config_hash"] != first["config_hash"]
    run_experiment("t_square", "full", root=root, log=lambda m: None)  # another mode is another configuration
    assert fake_lab["calls"] == [3, 4, 5]
    assert not list(root.glob(".*")), "no temporary directories left behind"


def test_verdict_is_computed_from_numbers(fake_lab):
    root = fake_lab["root"]
    assert run_experiment("t_square", "quick", root=root)["verdict"] == {"status": "confirmed", "reason": "value 0.90"}
    fake_lab["configs"]["quick"]["x"] = 1  # value 0.1: the same rule now says no
    assert run_experiment("t_square", "quick", root=root)["verdict"]["status"] == "not confirmed"


def test_typed_in_verdict_is_overruled_by_the_rule(fake_lab):
    """Plant a wrong verdict (and a wrong number) in result.json: reading it back re-applies the rule."""
    root = fake_lab["root"]
    run_experiment("t_square", "quick", root=root)
    path = root / "t_square" / "result.json"
    data = json.loads(path.read_text())
    data["numbers"]["value"] = 0.2
    data["verdict"] = {"status": "confirmed", "reason": "typed in"}
    path.write_text(json.dumps(data))
    hit = run_experiment("t_square", "quick", root=root)
    assert hit["cached"] and hit["verdict"] == {"status": "not confirmed", "reason": "value 0.20"}
    assert json.loads(path.read_text())["verdict"]["status"] == "not confirmed"


def test_broken_rule_is_reported_not_hidden(fake_lab):
    @register_experiment("t_interrupt", claim=CLAIM, configs={"quick": {}, "full": {}}, cost={"quick": 1, "full": 1},
                         verdict=lambda n: "confirmed")  # a rule must return a Verdict
    def t_bad_rule(ctx):
        return Result({"value": 1.0}, "")

    out = run_experiment("t_interrupt", "quick", root=fake_lab["root"])
    assert out["verdict"]["status"] == "not measurable" and "verdict rule failed" in out["verdict"]["reason"]


def test_one_failure_does_not_lose_the_others(fake_lab):
    root = fake_lab["root"]
    lines = []
    summary = run_experiments(["t_fail", "t_square"], "quick", root=root, log=lines.append)
    assert summary.failed == ["t_fail"]
    assert summary.results["t_square"]["status"] == "ok"
    failed = json.loads((root / "t_fail" / "result.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: planted failure"
    assert "planted failure" in (root / "t_fail" / "error.txt").read_text()
    assert any("FAILED" in line for line in lines) and any("confirmed" in line for line in lines)


def test_ctrl_c_keeps_what_finished(fake_lab):
    @register_experiment("t_interrupt", claim=CLAIM, configs={"quick": {}, "full": {}}, cost={"quick": 1, "full": 1},
                         verdict=above_half)
    def t_interrupt(ctx):
        (ctx.out_dir / "half.txt").write_text("half-written")
        raise KeyboardInterrupt

    root = fake_lab["root"]
    summary = run_experiments(["t_square", "t_interrupt"], "quick", root=root, log=lambda m: None)
    assert summary.interrupted
    assert (root / "t_square" / "result.json").is_file()
    assert not (root / "t_interrupt").exists() and not list(root.glob(".t_interrupt*"))


def test_workers_run_in_processes(fake_lab):
    root = fake_lab["root"]
    summary = run_experiments(["t_square", "t_fail"], "quick", root=root, workers=2, log=lambda m: None)
    assert summary.results["t_square"]["status"] == "ok" and summary.failed == ["t_fail"]
    assert fake_lab["calls"] == []  # ran in the worker processes, not here


def test_stats_mean_std_and_paired_comparison():
    from scipy import stats

    assert mean_std([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "n": 3}
    a, b = [0.80, 0.81, 0.79, 0.82], [0.85, 0.84, 0.86, 0.88]
    cmp = paired_comparison(a, b)
    assert cmp["mean_diff"] == pytest.approx(0.0525)
    assert cmp["p_value"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert cmp["t_ci"][0] < 0.0525 < cmp["t_ci"][1] and cmp["bootstrap_ci"][0] <= 0.0525 <= cmp["bootstrap_ci"][1]
    same = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert same["mean_diff"] == 0 and same["p_value"] is None


def test_builtin_experiments_are_complete():
    """Every listed experiment has a Korean quote, a seed file that exists, both modes and a verdict rule."""
    import re
    from pathlib import Path

    exps = list_experiments()
    assert {"stack3x3", "bottleneck", "depthwise", "fc_share", "zoo_chart", "deconvolution", "optimizers",
            "vanishing_gradients", "relu_vs_tanh", "convolutionalization"} <= {e.name for e in exps}
    seeds = Path("/work/shared/seeds")
    for e in exps:
        assert any("\uac00" <= ch <= "\ud7a3" for ch in e.claim.quote), e.name  # Hangul in the quote
        assert set(e.configs) == {"quick", "full"} and set(e.cost) == {"quick", "full"}
        if seeds.is_dir():
            assert (seeds / e.claim.seed).is_file(), e.claim.seed
            text = " ".join((seeds / e.claim.seed).read_text(encoding="utf-8").split())
            text = re.sub(r"[•\-] ", "", text)  # bullets between the quoted lines
            for part in re.split(r" \.\.\. | / |^\(\w+\) ", e.claim.quote):  # "(ReLU) " names the bullet's head
                assert " ".join(part.split()) in text, (e.name, part)  # every fragment verbatim


def test_cli_list_and_run(fake_lab, capsys):
    from cnnlab.cli import main

    assert main(["lab", "list"]) == 0
    out = capsys.readouterr().out
    assert "stack3x3" in out and "depthwise" in out and "t_square" in out
    root = fake_lab["root"]
    assert main(["lab", "run", "t_square", "t_fail", "--out", str(root)]) == 1  # one failed
    out = capsys.readouterr().out
    assert "t_fail: RuntimeError: planted failure" in out
    assert json.loads((root / "t_square" / "result.json").read_text())["verdict"]["status"] == "confirmed"
    assert main(["lab", "run", "nope", "--out", str(root)]) == 2  # unknown name: one clear line
    assert "unknown experiment 'nope'" in capsys.readouterr().err


def test_saved_figures_have_projection_sized_text(tmp_path):
    from cnnlab.lab import Context
    from cnnlab.lab.style import OKABE_ITO, new_figure

    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set(xlabel="time [s]", ylabel="loss")
    ax.legend(fontsize=8)
    ax.text(0.5, 0.5, "note", fontsize=6)
    ctx = Context("t", "quick", {}, tmp_path, tmp_path)
    assert ctx.save_figure(fig, "f.png") == "f.png" and ctx.figures == ["f.png"]
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text()]
    assert sizes and min(sizes) >= 14
    assert ax.lines[0].get_color() == OKABE_ITO[0]
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
