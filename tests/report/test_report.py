"""The lab report: one self-contained HTML page (and a Markdown twin) from result directories."""

import json
import re
from pathlib import Path

import pytest

from cnnlab.errors import DataError
from cnnlab.report import collect_results, write_report


def make_results(root: Path) -> Path:
    """Two experiments as `cnnlab lab run` leaves them (one with a figure) and a failed one."""
    from cnnlab.lab.experiment import Context
    from cnnlab.lab.style import new_figure

    base = {"mode": "quick", "config": {}, "config_hash": "abc123", "estimate_s": 10, "elapsed_s": 3.2,
            "load_average_start": [1.0, 1.0, 1.0], "load_average_end": [2.5, 1.0, 1.0],
            "finished_at": "2026-12-07T23:00:00+00:00"}
    ok = {**base, "name": "stack3x3", "status": "ok", "setup": "three 3x3 convs vs one 7x7",
          "claim": {"quote": "3x3 필터 3회 적용 ⇒ 7x7 필터 적용 효과", "paraphrase": "Three 3x3 see 7x7.",
                    "seed": "001_2f996cc2c9e949d3.txt"},
          "numbers": {"ratio": 27 / 49}, "table": [{"channels": 64, "stack_weights": 110592, "ratio": 27 / 49}],
          "verdict": {"status": "confirmed", "reason": "RF 7 with 27/49 of the weights"}, "figures": ["f.png"]}
    ctx = Context("stack3x3", "quick", {}, root / "stack3x3", root)
    (root / "stack3x3").mkdir(parents=True)
    fig, ax = new_figure()
    ax.plot([1, 2, 3], [3, 1, 2])
    ax.set(xlabel="x [units]", ylabel="y [units]")
    ctx.save_figure(fig, "f.png")
    second = {**ok, "name": "depthwise", "figures": [], "table": [],
              "verdict": {"status": "partly", "reason": "MACs 8.4x, time 2.8x"}}
    failed = {**base, "name": "zoo_chart", "status": "failed", "error": "RuntimeError: boom",
              "claim": {"quote": "연산은 줄이고, 정확도는 높임", "paraphrase": "EfficientNet.", "seed": "x.txt"}}
    for data in (ok, second, failed):
        (root / data["name"]).mkdir(parents=True, exist_ok=True)
        (root / data["name"] / "result.json").write_text(json.dumps(data, ensure_ascii=False))
    return root


def test_html_and_markdown_content(tmp_path):
    root = make_results(tmp_path / "lab")
    paths = write_report([root], tmp_path / "report")
    page = paths["html"].read_text(encoding="utf-8")
    assert paths["experiments"] == 3
    assert 'id="verdicts"' in page and page.index('id="verdicts"') < page.index('id="exp-stack3x3"')
    for name in ("stack3x3", "depthwise", "zoo_chart"):
        assert f'href="#exp-{name}"' in page and f'id="exp-{name}"' in page
    assert "3x3 필터 3회 적용" in page and "RF 7 with 27/49 of the weights" in page
    assert "experiment failed: RuntimeError: boom" in page
    assert page.count("data:image/png;base64,") == 1
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing may load from the network"
    assert "110,592" in page and "0.5510" in page  # table cells formatted
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| [stack3x3](#exp-stack3x3) | **confirmed** |" in md
    assert "![stack3x3: f](figures/stack3x3-f.png)" in md
    assert (tmp_path / "report" / "figures" / "stack3x3-f.png").stat().st_size > 1000
    assert not list((tmp_path / "report").glob(".*tmp*"))


def test_merges_roots_latest_wins_and_rejects_empty(tmp_path):
    a, b = make_results(tmp_path / "a"), make_results(tmp_path / "b")
    newer = json.loads((b / "depthwise" / "result.json").read_text())
    newer["finished_at"] = "2026-12-08T01:00:00+00:00"
    newer["verdict"] = {"status": "confirmed", "reason": "from machine b"}
    (b / "depthwise" / "result.json").write_text(json.dumps(newer))
    results = collect_results([a, b / "depthwise"])
    assert [r["name"] for r in results] == ["stack3x3", "depthwise", "zoo_chart"]  # the lab's order
    assert next(r for r in results if r["name"] == "depthwise")["verdict"]["reason"] == "from machine b"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no result.json"):
        collect_results([tmp_path / "empty"])


def test_cli_report(tmp_path, capsys):
    from cnnlab.cli import main

    root = make_results(tmp_path / "lab")
    assert main(["report", str(root), "--out", str(tmp_path / "out")]) == 0
    assert "3 experiments" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2


def test_report_in_the_browser(tmp_path, page):
    """Offline: every figure decoded, every section and the verdict table there, links jump, no request out."""
    root = make_results(tmp_path / "lab")
    paths = write_report([root], tmp_path / "report")
    page.goto(paths["html"].resolve().as_uri())
    assert page.locator("#verdicts tr").count() == 4  # header + 3 experiments
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert widths and all(w > 0 for w in widths)
    for name in ("stack3x3", "depthwise", "zoo_chart"):
        assert page.locator(f"section#exp-{name} h2").is_visible()
    page.click('#verdicts a[href="#exp-zoo_chart"]')
    page.wait_for_timeout(200)
    top = page.evaluate("document.getElementById('exp-zoo_chart').getBoundingClientRect().top")
    assert page.evaluate("window.scrollY") > 0 and 0 <= top < 200, f"the link did not scroll to the section ({top}px)"
    assert page.evaluate("location.hash") == "#exp-zoo_chart"
    page.evaluate("window.scrollTo(0, 0)")
    shots = Path("runs/report-screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "report-top.png"), full_page=False)
    page.screenshot(path=str(shots / "report-full.png"), full_page=True)
    print(f"screenshots: {shots.resolve()}/report-top.png, report-full.png")
    assert page.external_requests == []


def test_rows_with_other_keys_make_a_second_table():
    from cnnlab.report.render import fmt, render_markdown, table_groups

    rows = [{"channels": 16, "ratio": 0.55}, {"channels": 64, "ratio": 0.55}, {"arm": "stack", "top1": 0.9}]
    assert [len(g) for g in table_groups(rows)] == [2, 1]
    assert fmt(None) == "—" and fmt(1234567) == "1,234,567" and fmt(0.123456) == "0.1235"
    md = render_markdown([{"name": "x", "status": "ok", "claim": {}, "setup": "", "numbers": {}, "table": rows,
                           "figures": [], "_dir": ".", "verdict": {"status": "partly", "reason": "r"}}])
    assert "| channels | ratio |" in md and "| arm | top1 |" in md
