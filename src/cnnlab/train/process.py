"""Set-up of the training process: the device, threads, deterministic mode, signals, and the precision path.

:func:`process_settings` applies them for one run and restores them afterwards (tests and notebooks call
``fit`` many times in one interpreter); :func:`resolve_for_run` decides ``amp="auto"`` for this machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import torch

from cnnlab.errors import ConfigError
from cnnlab.train import distributed as D
from cnnlab.train.config import TrainConfig
from cnnlab.train.hardware import resolve_amp
from cnnlab.train.task import Task

__all__ = ["StopFlag", "process_settings", "resolve_device", "resolve_for_run"]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available here")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


class StopFlag:
    """Set by the first Ctrl-C/SIGTERM: finish the current step, save, exit. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def process_settings(cfg: TrainConfig, info: D.DistInfo, device: torch.device):
    """Threads, deterministic mode and signal handlers for the run; restored afterwards."""
    prev_threads = torch.get_num_threads()
    threads = cfg.threads
    if not threads and info.enabled and device.type == "cpu":
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        threads = max(1, (os.cpu_count() or 1) // local_world)
    if threads:
        torch.set_num_threads(threads)
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    if cfg.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    flag = StopFlag()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, flag.handler)
    try:
        yield flag
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)
        torch.backends.cudnn.benchmark = prev_bench


def resolve_for_run(cfg: TrainConfig, info: D.DistInfo, device: torch.device,
                     task: Task) -> tuple[TrainConfig, str | None]:
    """The config as this machine and task will run it (``amp=auto`` decided; the note says how), or a
    one-line ConfigError for settings the device, the process count or the task cannot take."""
    amp, reason = resolve_amp(cfg.amp, device)
    note = reason if cfg.amp == "auto" else None
    cfg = cfg.replace(amp=amp)
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp=fp16 needs a CUDA device (use bf16 or off on CPU)")
    if cfg.batch_size % info.world_size:
        raise ConfigError(f"batch_size={cfg.batch_size} must be divisible by the {info.world_size} processes")
    if cfg.train_sizes and task.name != "classification":
        raise ConfigError(f"train_sizes (progressive resizing) is for classification, not {task.name}")
    if cfg.tta not in task.tta_modes:
        raise ConfigError(f"tta={cfg.tta!r} is not available for {task.name}; use {', '.join(task.tta_modes)}")
    return cfg, note
