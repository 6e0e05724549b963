"""Run directories as records: what :func:`cnnlab.train.fit` (and the staged detectors) wrote, read back.

A run directory holds ``config.yaml``, ``metrics.csv`` (one row per epoch, :mod:`cnnlab.train.runlog`),
``result.json`` at the end (``task``, ``final``, ``best``, ``history``) and the task's PNG plots. The page's
Runs tab, the lab's experiments that read earlier runs, and anything else that lists runs use these.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.train.recipes import RECIPES
from cnnlab.train.runlog import read_history_csv

__all__ = ["MARKERS", "RunRecord", "find_runs", "read_run", "run_task"]

MARKERS = ("config.yaml", "metrics.csv", "result.json")


@dataclass(frozen=True)
class RunRecord:
    """What a run directory says about itself (empty fields where a file is missing)."""

    path: Path
    config: dict[str, Any]
    history: list[dict[str, Any]]
    result: dict[str, Any]

    @property
    def task(self) -> str:
        return self.result.get("task") or self.config.get("task") or "classification"

    @property
    def score(self) -> str:
        from cnnlab.train.task import get_task

        return get_task(self.task).score

    @property
    def recipe(self) -> str:
        """The recipe whose every setting the run's config carries (out_dir aside), else "-"."""
        for name, values in RECIPES.items():
            if all(self.config.get(k) == v for k, v in values.items() if k != "out_dir"):
                return name
        return "-"

    @property
    def best(self) -> dict[str, Any] | None:
        """result.json's best epoch; during a run, the best validation (else test) score so far."""
        if self.result.get("best"):
            return self.result["best"]
        for split in ("val", "test"):
            key = f"{split}_{self.score}"
            scored = [r for r in self.history if r.get(key) is not None]
            if scored:
                top = max(scored, key=lambda r: r[key])
                return {"epoch": top["epoch"], "metric": key, "value": top[key]}
        return None

    @property
    def wall_s(self) -> float:
        return sum(r.get("epoch_time_s") or 0.0 for r in self.history)


def run_task(run_dir: str | Path) -> str | None:
    """The task a run directory trained (result.json, else config.yaml); None for a folder that is no run."""
    run_dir = Path(run_dir)
    if not any((run_dir / m).is_file() for m in MARKERS):
        return None
    return read_run(run_dir).task


def read_run(run_dir: str | Path) -> RunRecord:
    """config.yaml, metrics.csv and result.json of ``run_dir``, each optional (a run in progress)."""
    import yaml

    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"run directory not found: {path}")
    if not any((path / m).is_file() for m in MARKERS):
        raise ConfigError(f"{path} is not a run directory (no {', '.join(MARKERS)})")
    try:
        config = (yaml.safe_load((path / "config.yaml").read_text()) or {}) if (path / "config.yaml").is_file() else {}
        history = read_history_csv(path / "metrics.csv") if (path / "metrics.csv").is_file() else []
        result = json.loads((path / "result.json").read_text()) if (path / "result.json").is_file() else {}
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read run {path}: {str(e).splitlines()[0]}") from None
    return RunRecord(path, config, history, result)


def find_runs(runs_dir: str | Path, max_depth: int = 3, task: str | None = None) -> list[Path]:
    """Run directories under ``runs_dir`` (itself included, ``max_depth`` levels down), newest first; with
    ``task``, only the runs that trained that task."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = []
    for here, dirs, files in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "tb") if depth < max_depth else []
        if any(m in files for m in MARKERS):
            found.append(Path(here))
    found = [p for p in found if task is None or run_task(p) == task]
    return sorted(found, key=lambda p: max((p / m).stat().st_mtime for m in MARKERS if (p / m).exists()),
                  reverse=True)
