"""The Runs tab: every run directory under a folder as a table; one run's curves, pictures and
config; the curves of several runs overlaid.

A run directory is what :func:`cnnlab.train.fit` writes: ``config.yaml``, ``metrics.csv`` (one row
per epoch, :mod:`cnnlab.train.runlog`), ``result.json`` at the end, and the task's PNG plots.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PIL import Image

from cnnlab.errors import ConfigError
from cnnlab.train.runlog import plot_curves
from cnnlab.train.runs import MARKERS, RunRecord, find_runs, read_run, run_task
from cnnlab.ui.figures import figure_to_image

RUN_HEADERS = ["run", "task", "model", "data", "recipe", "best", "epochs", "wall (s)", "date"]
PICTURES = {"confusion_matrix.png": "confusion matrix", "predictions.png": "test predictions (segmentation)"}


def chosen_run(run_dir: str | None, task: str, tab: str, train_command: str) -> str:
    """The run directory (or checkpoint file) a tab was given, checked: chosen, existing, and of ``task``."""
    run_dir = (run_dir or "").strip()
    if not run_dir:
        raise ConfigError(f"no {task} run chosen: pick one, or train one with `{train_command}`")
    if not Path(run_dir).exists():
        raise ConfigError(f"run directory not found: {run_dir}")
    found = run_task(run_dir) if Path(run_dir).is_dir() else None
    if found not in (None, task):
        raise ConfigError(f"{run_dir} is a {found} run; the {tab} tab needs a {task} run")
    return run_dir


def _date(path: Path) -> str:
    stamp = max((path / m).stat().st_mtime for m in MARKERS if (path / m).exists())
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def runs_table(runs_dir: str | Path) -> list[list[Any]]:
    """One row per run under ``runs_dir``, in :data:`RUN_HEADERS` order (a run that cannot be read says so)."""
    root = Path(runs_dir)
    rows = []
    for path in find_runs(root):
        name = str(path.relative_to(root)) if path != root else path.name
        try:
            r = read_run(path)
        except ConfigError as e:
            rows.append([name, "?", "-", "-", "-", str(e), 0, 0.0, _date(path)])
            continue
        best = r.best
        rows.append([name, r.task, r.config.get("model", "-"), r.config.get("data", "-"), r.recipe,
                     f"{best['metric']} {best['value']:.4f} (epoch {best['epoch']})" if best else "-",
                     len(r.history), round(r.wall_s, 1), _date(path)])
    return rows


def run_summary_markdown(r: RunRecord) -> str:
    """The final metrics and the best epoch of a run, one line each."""
    lines = [f"**{r.path.name}**: {r.task}, {r.config.get('model', '?')} on {r.config.get('data', '?')}, "
             f"{len(r.history)} epochs, {r.wall_s:.1f} s"]
    final = {k: v for k, v in r.result.get("final", {}).items() if isinstance(v, (int, float)) and k != "n"}
    if final:
        lines.append("final (" + str(r.result["final"].get("split", "test")) + "): " +
                     ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    if r.best:
        lines.append(f"best: {r.best['metric']} {r.best['value']:.4f} at epoch {r.best['epoch']}")
    if not r.result:
        lines.append("no result.json yet: the run is in progress or was stopped")
    return "\n\n".join(lines)


def run_curves(r: RunRecord, out_dir: str | Path) -> Path | None:
    """The run's curves.png, or the same plot drawn from metrics.csv into ``out_dir`` when it has none."""
    if (r.path / "curves.png").is_file():
        return r.path / "curves.png"
    if not r.history:
        return None
    from cnnlab.train.task import get_task

    task = get_task(r.task)
    path = Path(out_dir) / f"curves-{abs(hash(str(r.path)))}.png"
    plot_curves(path, r.history, score=task.score, score_label=task.score_label, loss_label=task.loss_label)
    return path


def run_pictures(r: RunRecord) -> list[tuple[str, str]]:
    """``(png path, caption)`` of the task's pictures the run wrote (confusion matrix, predictions)."""
    return [(str(r.path / f), cap) for f, cap in PICTURES.items() if (r.path / f).is_file()]


def overlay_curves(run_dirs: list[str | Path]) -> Image.Image:
    """Training loss and validation (else test) score per epoch of several runs in one figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    records = [read_run(d) for d in run_dirs]
    if not records:
        raise ConfigError("no runs ticked: tick two or more rows to overlay their curves")
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, r in enumerate(records):
        color = plt.cm.tab10(i % 10)
        epochs = [h["epoch"] for h in r.history]
        ax_loss.plot(epochs, [h.get("train_loss") for h in r.history], "-o", color=color, label=r.path.name)
        split = "val" if any(h.get(f"val_{r.score}") is not None for h in r.history) else "test"
        values = [h.get(f"{split}_{r.score}") for h in r.history]
        ax_score.plot(epochs, [float("nan") if v is None else 100 * v for v in values], "--o", color=color,
                      label=f"{r.path.name} ({split}_{r.score})")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_score.set(xlabel="epoch", ylabel="score (%)", title="validation (else test) score")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_score):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_to_image(fig)
