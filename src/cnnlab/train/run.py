"""One training run as data: :class:`FitState` (position and bookkeeping), :class:`FitResult`, and :class:`Run`,
everything :func:`setup` builds (data, model, EMA, optimizer, schedule, resume, logging) for the loop in
:mod:`cnnlab.train.engine` to read and update.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train import distributed as D
from cnnlab.train.checkpoint import get_rng_state, json_safe, load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.optim import build_optimizer, build_param_groups, build_scheduler
from cnnlab.train.process import StopFlag, resolve_for_run
from cnnlab.train.restore import restore_state
from cnnlab.train.rundir import default_run_dir, open_run_dir
from cnnlab.train.runlog import Progress, RunLogger
from cnnlab.train.task import DataSpec, StepContext, Task, autocast_for

__all__ = ["RESUME_MUTABLE", "FitResult", "FitState", "Run", "set_dropout", "setup"]

# Options that may change when a run is resumed (they do not alter the optimisation).
RESUME_MUTABLE = ("epochs", "progress", "threads", "ckpt_every_steps", "log_every_steps", "plots",
                  "tensorboard", "device", "out_dir", "eval_batch_size")


@dataclass
class FitState:
    """The loop's position and bookkeeping; what a callback sees and what a checkpoint restores."""

    cfg: TrainConfig
    run_dir: Path
    model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    epoch: int = 0  # completed epochs
    micro_step: int = 0  # micro-batches done in the current epoch
    global_step: int = 0  # optimizer steps done
    steps_per_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # {"epoch", "metric", "value"}
    bad_epochs: int = 0
    epoch_loss_sum: float = 0.0  # loss summed over the epoch's images so far (all processes)
    epoch_score_sum: float = 0.0  # the task's training score summed (correct images, correct pixels)
    epoch_seen: float = 0.0  # images
    epoch_score_count: float = 0.0  # what the score is averaged over (images, labelled pixels)
    epoch_parts: dict[str, float] = field(default_factory=dict)  # named loss parts, summed like the loss
    epoch_time: float = 0.0
    stop: bool = False

    def bookkeeping(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("history", "best", "bad_epochs", "epoch_loss_sum", "epoch_score_sum",
                                                 "epoch_seen", "epoch_score_count", "epoch_parts", "epoch_time")}


@dataclass
class FitResult:
    """What :func:`fit` returns: the run directory, the trained model (the EMA copy when the run kept
    one), the per-epoch history, the final test metrics (with TTA if configured) and the best epoch."""

    run_dir: Path
    model: nn.Module | None
    history: list[dict[str, Any]]
    final: dict[str, Any]
    best: dict[str, Any] | None
    stopped_early: bool = False
    interrupted: bool = False
    epochs_run: int = 0

    def summary(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "final": self.final, "best": self.best, "history": self.history,
                "stopped_early": self.stopped_early, "interrupted": self.interrupted,
                "epochs_run": self.epochs_run}


@dataclass
class RunData:
    train: Any
    val: Any
    test: Any


def set_dropout(model: nn.Module, p: float) -> int:
    """Set ``p`` of every dropout layer; returns how many were changed."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = p
            n += 1
    return n


@dataclass
class Run:
    """Everything :func:`_setup` builds for one run; the loop functions below read and update it."""

    cfg: TrainConfig
    info: D.DistInfo
    device: torch.device
    task: Task
    spec: DataSpec
    data: RunData
    net: nn.Module
    train_model: nn.Module
    eval_model: nn.Module
    ema: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    loader: Any
    autocast: Any
    ctx: StepContext
    state: FitState
    meta: dict[str, Any]
    logger: RunLogger
    progress: Progress
    callbacks: Sequence[Any]
    stop_flag: StopFlag
    title: str
    last_test: dict[str, Any] | None = None

    @property
    def micro_per_epoch(self) -> int:
        return len(self.loader)

    def save(self, name: str) -> Path:
        """Checkpoint ``name`` (rank 0 writes; every process contributes its RNG state)."""
        rng = D.gather_objects(get_rng_state(), self.info)
        path = self.state.run_dir / f"{name}.safetensors"
        if self.info.is_main:
            s = self.state
            full = {**self.meta, "config": self.cfg.to_dict(), "epoch": s.epoch, "micro_step": s.micro_step,
                    "global_step": s.global_step, "world_size": self.info.world_size,
                    "scheduler": json_safe(self.scheduler.state_dict()),
                    "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                    "rng": rng, "fit_state": s.bookkeeping(), "torch_version": torch.__version__,
                    "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")}
            save_checkpoint(path, full, self.net.state_dict(), self.optimizer.state_dict(),
                            self.ema.state_dict() if self.ema is not None else None)
        return path

    def evaluate(self, data: Any, tta: str = "none") -> dict[str, Any]:
        return self.task.evaluate(self.eval_model, data, self.spec, batch_size=self.cfg.eval_batch_size,
                                  device=self.device, amp=self.cfg.amp, channels_last=self.cfg.channels_last,
                                  tta=tta)

    def callback(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, event, None)
            if fn is not None:
                fn(self.state, *args)


def setup(cfg: TrainConfig, info: D.DistInfo, device: torch.device, stop_flag: StopFlag, task: Task, *,
           model, train_data, val_data, test_data, sample_weights, loss_fn, param_groups, callbacks,
           resume) -> Run:
    """Data, model (same initialisation on every process), EMA, optimizer, schedule, resume, logging."""
    ckpt = load_checkpoint(resume, prefer="last") if resume is not None else None
    if ckpt is not None and cfg.out_dir is None:
        cfg = cfg.replace(out_dir=str(ckpt.path.parent))
    cfg, amp_note = resolve_for_run(cfg, info, device, task)
    run_dir = Path(D.broadcast_object(cfg.out_dir or str(default_run_dir(cfg.data, cfg.model)), info))
    cfg = cfg.replace(out_dir=str(run_dir))

    data = RunData(*task.load_data(cfg, train_data, val_data, test_data))
    spec = task.spec(data.train, cfg)

    net, (model_name, model_kwargs, arch_size), title = build_net(cfg, task, spec, data.train, model, device)
    ema = None
    if cfg.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    optimizer = build_optimizer(build_param_groups(net, cfg, param_groups), cfg)
    loader = task.loader(data.train, cfg, batch_size=cfg.batch_size // info.world_size, device=device,
                         rank=info.rank, world_size=info.world_size, return_indices=sample_weights is not None)
    steps_per_epoch = math.ceil(len(loader) / cfg.accum_steps)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    criterion = loss_fn or task.criterion(cfg, weighted=sample_weights is not None)
    if sample_weights is not None:
        sample_weights = mean_one_weights(sample_weights, len(data.train), device)
    ctx = StepContext(cfg=cfg, spec=spec, criterion=criterion, sample_weights=sample_weights)

    state = FitState(cfg=cfg, run_dir=run_dir, model=net, optimizer=optimizer, steps_per_epoch=steps_per_epoch)
    if ckpt is not None:
        restore_state(ckpt, info, net, ema, optimizer, scheduler, scaler, state)
    else:
        torch.manual_seed(cfg.seed + info.rank)  # the dropout/noise stream, distinct per process
    meta = {**task.meta(spec), "model": model_name, "model_kwargs": model_kwargs, "data": cfg.data,
            "eval_weights": "ema" if ema is not None else "model"}
    if arch_size != spec.img_size:
        meta["model_img_size"] = arch_size
    if model is not None and getattr(model, "pretrained_cfg", {}).get("weights"):
        meta["pretrained"] = json_safe(model.pretrained_cfg["weights"])

    logger, progress = open_run_dir(cfg, info, task, resumed_at=state.global_step if ckpt else None)
    run = Run(cfg=cfg, info=info, device=device, task=task, spec=spec, data=data, net=net,
              train_model=wrap_for_training(net, cfg, info, device),
              eval_model=ema.module if ema is not None else net, ema=ema,
              optimizer=optimizer, scheduler=scheduler, scaler=scaler, loader=loader,
              autocast=autocast_for(device, cfg.amp), ctx=ctx, state=state, meta=meta, logger=logger,
              progress=progress, callbacks=callbacks, stop_flag=stop_flag, title=title)
    if amp_note:
        progress.message(amp_note)
    run.callback("on_fit_start")
    return run


def registry_origin(model: nn.Module, spec: DataSpec) -> tuple[str | None, dict, int]:
    """(registry name, builder kwargs, built img_size) of a model made by ``create_model``, so a checkpoint
    of ``fit(model=...)`` can be rebuilt by name (transfer learning); (None, {}, size) for a custom module."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, dict) or not cfg.get("name"):
        return None, {}, spec.img_size
    from cnnlab.models import list_models

    if cfg["name"] not in list_models():
        return None, {}, spec.img_size
    return cfg["name"], dict(json_safe(cfg.get("model_kwargs") or {})), int(cfg.get("img_size", spec.img_size))


def build_net(cfg: TrainConfig, task: Task, spec: DataSpec, train_data: Any, model: nn.Module | None,
              device: torch.device) -> tuple[nn.Module, tuple[str | None, dict, int], str]:
    """The model on ``device`` (built from ``cfg.model`` with seed ``cfg.seed``, or the given one), its
    registry origin (name, kwargs, built size), and its title; dropout, data init and layout applied."""
    torch.manual_seed(cfg.seed)
    if model is None:
        net, model_name, model_kwargs = task.build_model(cfg, spec)
        origin = (model_name, model_kwargs, spec.img_size)
    else:
        net = model
        origin = registry_origin(model, spec)
    if cfg.dropout is not None and set_dropout(net, cfg.dropout) == 0:
        raise ConfigError(f"dropout={cfg.dropout} given but {cfg.model} has no dropout layers")
    net.to(device)
    if getattr(net, "needs_data_init", False):  # data-dependent init (FastNet's whitened stem)
        net.init_from_data(task.init_inputs(train_data, spec).to(device))
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    title = cfg.model if model is None else (origin[0] or "model")
    task.check_model(net, spec, device, title)
    return net, origin, title


def mean_one_weights(weights: Any, n: int, device: torch.device) -> torch.Tensor:
    """Per-sample loss weights (boosting) rescaled to mean 1, so the learning rate means the same."""
    weights = torch.as_tensor(weights, dtype=torch.float32)
    if weights.shape != (n,) or (weights < 0).any():
        raise ConfigError(f"sample_weights needs {n} non-negative values")
    return (weights / weights.mean()).to(device)


def wrap_for_training(net: nn.Module, cfg: TrainConfig, info: D.DistInfo, device: torch.device) -> nn.Module:
    """What the training step calls: ``net``, in DDP across processes, compiled on request."""
    train_model: nn.Module = net
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    return train_model
