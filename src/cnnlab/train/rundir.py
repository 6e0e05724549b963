"""The run directory: its default name and its opening (config.yaml, the CSV/TensorBoard logger, progress)."""

from __future__ import annotations

import time
from pathlib import Path

from cnnlab._io import remove_stale_temps
from cnnlab.errors import ConfigError
from cnnlab.train import distributed as D
from cnnlab.train.config import TrainConfig
from cnnlab.train.runlog import Progress, RunLogger
from cnnlab.train.task import Task

__all__ = ["default_run_dir", "open_run_dir"]


def default_run_dir(data: str, *names: str) -> Path:
    """``runs/NAME…-DATA-YYYYmmdd-HHMMSS``: every command's default place for a new run (``fit``:
    ``MODEL``; ensembles: ``KIND-MODEL``; fine-tuning: ``MODEL-MODE``); a data path becomes one name."""
    data = data.replace("imagefolder:", "").rstrip("/").replace("/", "_").replace(":", "_")
    return Path("runs") / "-".join([*names, data, time.strftime("%Y%m%d-%H%M%S")])


def open_run_dir(cfg: TrainConfig, info: D.DistInfo, task: Task, resumed_at: int | None) -> tuple[RunLogger, Progress]:
    """Create the run directory (rank 0), write config.yaml, and open the logger and the progress display."""
    run_dir = Path(cfg.out_dir)
    if info.is_main:
        if resumed_at is not None:  # a kill inside a checkpoint write leaves its temp file behind
            remove_stale_temps(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the run directory {run_dir} ({e.strerror or e}); "
                              "out_dir must be a writable folder path") from None
        cfg.to_yaml(run_dir / "config.yaml")
    logger = RunLogger(run_dir, info.is_main, cfg.tensorboard, purge_step=resumed_at, columns=task.history_columns())
    progress = Progress(cfg.progress, cfg.epochs, enabled=info.is_main, score=task.score,
                        score_label=task.score_label, train_score=task.train_score)
    return logger, progress
