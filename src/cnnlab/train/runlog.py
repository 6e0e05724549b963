"""What a run leaves behind and shows: metrics.csv, TensorBoard events, PNG plots, the progress display.

Only the main process (rank 0) writes; the others get a disabled logger.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
                   "test_loss", "test_top1", "test_top5", "epoch_time_s", "train_img_per_s")
"""The classification columns; each task names its own (``Task.history_columns``)."""


class RunLogger:
    """metrics.csv (rewritten from the history each epoch, so a resume never duplicates rows),
    TensorBoard scalars under ``tb/`` (purged past the resume step), and the plots."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, purge_step: int | None = None,
                 columns: tuple[str, ...] = HISTORY_COLUMNS):
        self.run_dir = run_dir
        self.enabled = enabled
        self.columns = columns
        self.tb = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=purge_step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.tb is not None:
            self.tb.add_scalar(tag, value, step)

    def epoch(self, history: list[dict[str, Any]], step: int) -> None:
        if not self.enabled:
            return
        write_history_csv(self.run_dir / "metrics.csv", history, self.columns)
        if self.tb is not None:
            row = history[-1]
            for key in self._all_columns(row):
                if row.get(key) is not None:
                    self.tb.add_scalar(f"epoch/{key}", row[key], step)
            self.tb.flush()

    def _all_columns(self, row: dict[str, Any]) -> list[str]:
        return [k for k in self.columns[1:]] + [k for k in row if k not in self.columns]

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def write_history_csv(path: Path, history: list[dict[str, Any]], columns: tuple[str, ...] = HISTORY_COLUMNS) -> None:
    """The history as CSV: ``columns`` first, then any extra keys the rows carry (named loss parts)."""
    import io

    from cnnlab._io import atomic_write

    extra = [k for row in history for k in row if k not in columns]
    names = list(columns) + list(dict.fromkeys(extra))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=names, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in names})
    atomic_write(Path(path), buf.getvalue().encode())


def read_history_csv(path: str | Path) -> list[dict[str, Any]]:
    """A metrics.csv read back (the inverse of :func:`write_history_csv`): ``epoch`` as int, the other
    cells as float, an empty cell as None."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (None if v in ("", None) else int(float(v)) if k == "epoch" else float(v)) for k, v in r.items()}
            for r in rows]


def _save_figure(fig: Any, path: Path) -> None:
    """PNG written atomically (temp file + rename), so a crash never leaves a half-written plot."""
    from cnnlab._io import save_figure

    save_figure(fig, path, dpi=110)


def plot_curves(path: Path, history: list[dict[str, Any]], score: str = "top1", score_label: str = "top-1 accuracy",
                loss_label: str = "cross-entropy loss") -> None:
    """Loss and the task's score (top-1 accuracy, mean IU, ...) per epoch for train/val/test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
        loss = [r.get(f"{split}_loss") for r in history]
        acc = [r.get(f"{split}_{score}") for r in history]
        if any(v is not None for v in loss):
            ax_l.plot(epochs, [float("nan") if v is None else v for v in loss], style, marker="o", label=split)
        if any(v is not None for v in acc):
            ax_a.plot(epochs, [float("nan") if v is None else 100 * v for v in acc], style, marker="o", label=split)
    label = "top-1 accuracy" if score == "top1" else score_label
    ax_l.set(xlabel="epoch", ylabel=loss_label, title="loss")
    ax_a.set(xlabel="epoch", ylabel=f"{label} (%)", title=label)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_l, ax_a):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_confusion(path: Path, confusion: list[list[int]], classes: list[str], title: str) -> None:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    k = len(cm)
    size = min(14, 3 + 0.55 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = classes if len(classes) == k else [str(i) for i in range(k)]
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


class Progress:
    """``bar``: a rich progress bar (epoch, step, img/s, loss, acc, ETA); ``line``: one line per
    epoch (logs, CI); ``none``: silent. ``auto`` picks bar on a terminal, else line."""

    def __init__(self, mode: str, epochs: int, enabled: bool = True, score: str = "top1", score_label: str = "acc",
                 train_score: str = "top1"):
        self.score, self.score_label, self.train_score = score, score_label, train_score
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "line"
        self.mode = mode if enabled else "none"
        self.epochs = epochs
        self._progress = None
        self._task = None
        self._t0 = 0.0

    def start_epoch(self, epoch: int, steps: int, done: int) -> None:
        self._t0 = time.perf_counter()
        if self.mode != "bar":
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        if self._progress is None:
            self._progress = RichProgress(
                TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[speed]} img/s  loss {task.fields[loss]}  "
                           f"{self.train_score.replace('top1', 'acc')} " "{task.fields[acc]}"),
                TimeRemainingColumn(), transient=False)
            self._progress.start()
        self._task = self._progress.add_task("train", total=steps, completed=done,
                                             epoch=f"{epoch + 1}/{self.epochs}", speed="-", loss="-", acc="-")

    def update(self, step: int, loss: float, acc: float, img_per_s: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=step, speed=f"{img_per_s:,.0f}", loss=f"{loss:.4f}",
                                  acc=f"{100 * acc:.2f}%")

    def end_epoch(self, row: dict[str, Any]) -> None:
        s, label, ts = self.score, self.score_label, self.train_score
        parts = [f"epoch {row['epoch']}/{self.epochs}", f"train loss {row['train_loss']:.4f}",
                 f"{ts.replace('top1', 'acc')} {100 * row[f'train_{ts}']:.2f}%"]
        for split in ("val", "test"):
            if row.get(f"{split}_{s}") is not None:
                parts.append(f"{split} loss {row[f'{split}_loss']:.4f} {label} {100 * row[f'{split}_{s}']:.2f}%")
        parts.append(f"{row['epoch_time_s']:.1f}s ({row['train_img_per_s']:,.0f} img/s)")
        line = " | ".join(parts)
        if self.mode == "bar" and self._progress is not None:
            self._progress.console.print(line)
            self._progress.remove_task(self._task)
            self._task = None
        elif self.mode == "line":
            print(line, flush=True)

    def message(self, text: str) -> None:
        if self.mode == "bar" and self._progress is not None:
            self._progress.console.print(text)
        elif self.mode != "none":
            print(text, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
