"""The lab report: result directories -> one self-contained HTML page and its Markdown twin.

The page needs no network and no other file: CSS inline, figures embedded as ``data:image/png`` URIs.
On top, a verdict table linking to each experiment's section (claim / setup / numbers / figures /
verdict). The Markdown twin (``report.md``) has the same content with figures copied to ``figures/``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cnnlab._io import atomic_write
from cnnlab.errors import DataError

__all__ = ["collect_results", "render_html", "render_markdown", "write_report"]

# Okabe-Ito colours, and the word is always written beside the colour.
VERDICT_COLOURS = {"confirmed": "#0072B2", "partly": "#E69F00", "not confirmed": "#D55E00",
                   "not measurable": "#777777", "failed": "#000000"}


def collect_results(dirs: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every ``result.json`` in ``dirs`` (a results root holding one directory per experiment, or one
    experiment directory). The same experiment in several roots: the latest finished wins. Each result
    gets ``_dir``, where its figures are."""
    found: dict[str, dict[str, Any]] = {}
    for d in map(Path, dirs):
        if not d.is_dir():
            raise DataError(f"{d} is not a directory; give result directories written by `cnnlab lab run`")
        files = [d / "result.json"] if (d / "result.json").is_file() else sorted(d.glob("*/result.json"))
        for f in files:
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise DataError(f"{f} is not a readable result.json: {e}") from None
            data["_dir"] = str(f.parent)
            prev = found.get(data.get("name", f.parent.name))
            if prev is None or str(data.get("finished_at", "")) >= str(prev.get("finished_at", "")):
                found[data.get("name", f.parent.name)] = data
    if not found:
        raise DataError(f"no result.json under {', '.join(map(str, dirs))}; run `cnnlab lab run NAME --out DIR` first")
    return [found[n] for n in _order(list(found))]


def _order(names: list[str]) -> list[str]:
    """The lab's run order for known experiments, then the rest by name."""
    from cnnlab.lab import list_experiments

    known = [e.name for e in list_experiments()]
    return [n for n in known if n in names] + sorted(n for n in names if n not in known)


def status_of(r: dict[str, Any]) -> str:
    return r["verdict"]["status"] if r.get("status") == "ok" else "failed"


def reason_of(r: dict[str, Any]) -> str:
    return r["verdict"]["reason"] if r.get("status") == "ok" else f"experiment failed: {r.get('error', '?')}"


def fmt(value: Any) -> str:
    """A table cell: ints with separators, floats to 4 significant digits, nested values as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:.4g}"
    if isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def table_groups(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive rows with the same keys form one table (an experiment may list counts, then arms)."""
    groups: list[list[dict[str, Any]]] = []
    for row in rows:
        if groups and list(groups[-1][0]) == list(row):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _table_columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def _anchor(name: str) -> str:
    return f"exp-{name}"


def _figure_paths(r: dict[str, Any]) -> list[Path]:
    return [Path(r["_dir"]) / f for f in r.get("figures", []) if (Path(r["_dir"]) / f).is_file()]


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI','Noto Sans','Noto Sans CJK KR',sans-serif;font-size:18px;
 line-height:1.5;max-width:1200px;margin:0 auto;padding:1em 2em;color:#111;background:#fff}
h1{font-size:2em;margin-bottom:.2em} h2{font-size:1.6em;border-top:3px solid #0072B2;padding-top:.6em;margin-top:2em}
h3{font-size:1.2em;margin:1em 0 .3em} table{border-collapse:collapse;margin:.5em 0;font-size:16px}
th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left;vertical-align:top} th{background:#f0f4f8}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:.1em .6em;border-radius:.4em;color:#fff;font-weight:700;white-space:nowrap}
.badge.partly{color:#000}
blockquote{margin:.4em 0;padding:.4em 1em;border-left:5px solid #009E73;background:#f3faf7;font-size:1.1em}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:.5em 0} .meta{color:#555;font-size:15px}
.scroll{overflow-x:auto} pre{white-space:pre-wrap;font-size:14px;background:#f6f6f6;padding:.6em}
a{color:#0060a0} section{scroll-margin-top:1em} footer{height:70vh}
"""


def _badge(status: str) -> str:
    cls = status.replace(" ", "-")
    return (f'<span class="badge {cls}" style="background:{VERDICT_COLOURS.get(status, "#777")}">'
            f"{html.escape(status)}</span>")


def _html_tables(rows: list[dict[str, Any]]) -> str:
    return "".join(_html_table(group) for group in table_groups(rows))


def _html_table(rows: list[dict[str, Any]]) -> str:
    cols = _table_columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c, "")
            cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{html.escape(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _verdict_table_html(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        name = html.escape(r["name"])
        claim = html.escape(r.get("claim", {}).get("paraphrase", ""))
        took = f"{r['elapsed_s']:.0f} s" if "elapsed_s" in r else ""
        rows.append(f'<tr><td><a href="#{_anchor(r["name"])}">{name}</a></td><td>{_badge(status_of(r))}</td>'
                    f"<td>{claim}</td><td>{html.escape(reason_of(r))}</td><td class=\"num\">{took}</td></tr>")
    return ('<table id="verdicts"><tr><th>experiment</th><th>verdict</th><th>claim</th><th>key numbers</th>'
            f'<th>time</th></tr>{"".join(rows)}</table>')


def _section_html(r: dict[str, Any]) -> str:
    claim = r.get("claim", {})
    parts = [f'<section id="{_anchor(r["name"])}"><h2>{html.escape(r["name"])} {_badge(status_of(r))}</h2>',
             "<h3>Claim</h3>",
             f'<blockquote lang="ko">{html.escape(claim.get("quote", ""))}</blockquote>',
             f"<p>{html.escape(claim.get('paraphrase', ''))} <span class=\"meta\">(seed: "
             f"{html.escape(claim.get('seed', ''))})</span></p>"]
    if r.get("status") == "ok":
        parts += ["<h3>Setup</h3>", f"<p>{html.escape(r.get('setup', ''))}</p>",
                  "<h3>Numbers</h3>", _html_tables(r.get("table", [])),
                  "<details><summary>all measured numbers (JSON)</summary><pre>"
                  + html.escape(json.dumps(r.get("numbers", {}), indent=1, ensure_ascii=False, default=str))
                  + "</pre></details>"]
        figs = _figure_paths(r)
        if figs:
            parts.append("<h3>Figures</h3>")
            parts += [f'<img src="{_data_uri(p)}" alt="{html.escape(r["name"])}: {html.escape(p.stem)}">'
                      for p in figs]
    parts += ["<h3>Verdict</h3>", f"<p>{_badge(status_of(r))} {html.escape(reason_of(r))}</p>",
              f'<p class="meta">mode {html.escape(str(r.get("mode", "")))}, '
              f'config {html.escape(str(r.get("config_hash", "")))}'
              f", {r.get('elapsed_s', 0):.1f} s (estimate {r.get('estimate_s', 0):.0f} s), load average "
              f"{_load(r)}, finished {html.escape(str(r.get('finished_at', '')))} "
              '· <a href="#top">back to the verdict table</a></p></section>']
    return "\n".join(parts)


def _load(r: dict[str, Any]) -> str:
    la = r.get("load_average_end") or []
    return f"{la[0]:.1f}" if la else "?"


def _counts(results: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[status_of(r)] = counts.get(status_of(r), 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def render_html(results: list[dict[str, Any]], title: str = "cnnlab lab report") -> str:
    """The whole page as one string (figures embedded; no external URL anywhere)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f'<h1 id="top">{html.escape(title)}</h1>',
            f'<p class="meta">{len(results)} experiments ({_counts(results)}), rendered {stamp}. Each verdict is '
            "computed by a rule written in the experiment from the measured numbers; timings come from a shared "
            "machine (load average shown) and are indicative.</p>",
            _verdict_table_html(results)]
    body += [_section_html(r) for r in results]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n<footer></footer></body></html>\n")


def _md_cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for group in table_groups(rows):
        cols = _table_columns(group)
        out += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(_md_cell(row.get(c, "")) for c in cols) + " |" for row in group] + [""]
    return out


def render_markdown(results: list[dict[str, Any]], figure_dir: str = "figures",
                    title: str = "cnnlab lab report") -> str:
    """The Markdown twin; figures are referenced as ``figure_dir/NAME-FILE.png`` (copied by write_report)."""
    lines = [f"# {title}", "", f"{len(results)} experiments ({_counts(results)}). Verdicts are computed from the "
             "measured numbers by each experiment's rule.", "",
             "| experiment | verdict | claim | key numbers |", "|---|---|---|---|"]
    lines += [f"| [{r['name']}](#{_anchor(r['name'])}) | **{status_of(r)}** | "
              f"{_md_cell(r.get('claim', {}).get('paraphrase', ''))} | {_md_cell(reason_of(r))} |" for r in results]
    for r in results:
        claim = r.get("claim", {})
        lines += ["", f'<a id="{_anchor(r["name"])}"></a>', "", f"## {r['name']}: {status_of(r)}", "",
                  "### Claim", "", f"> {claim.get('quote', '')}", "",
                  f"{claim.get('paraphrase', '')} (seed: `{claim.get('seed', '')}`)", ""]
        if r.get("status") == "ok":
            lines += ["### Setup", "", r.get("setup", ""), "", "### Numbers", ""] + _md_table(r.get("table", []))
            figs = _figure_paths(r)
            if figs:
                lines += ["### Figures", ""] + [f"![{r['name']}: {p.stem}]({figure_dir}/{r['name']}-{p.name})"
                                                for p in figs] + [""]
        lines += ["### Verdict", "", f"**{status_of(r)}**: {reason_of(r)}", "",
                  f"_mode {r.get('mode', '')}, config {r.get('config_hash', '')}, {r.get('elapsed_s', 0):.1f} s, "
                  f"load average {_load(r)}_"]
    return "\n".join(lines) + "\n"


def write_report(dirs: list[str | os.PathLike], out: str | os.PathLike = "report") -> dict[str, Path]:
    """Write ``out/index.html`` (self-contained), ``out/report.md`` and ``out/figures/`` (for the Markdown)."""
    results = collect_results(dirs)
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for r in results:
        for p in _figure_paths(r):
            tmp = fig_dir / f".{r['name']}-{p.name}.tmp-{os.getpid()}"
            shutil.copyfile(p, tmp)
            os.replace(tmp, fig_dir / f"{r['name']}-{p.name}")
    atomic_write(out / "index.html", render_html(results).encode("utf-8"))
    atomic_write(out / "report.md", render_markdown(results).encode("utf-8"))
    return {"html": out / "index.html", "markdown": out / "report.md", "figures": fig_dir,
            "experiments": len(results)}
