"""``fit()``: one readable training loop for every task, and the few hooks later capabilities need.

Reading order (torchvision's ``references/classification/train.py`` split): :func:`fit` (processes,
threads, signals) -> :func:`_setup` (data, model, optimizer, resume, logging) -> per epoch
:func:`train_one_epoch`, :func:`evaluate_epoch` and :func:`_end_of_epoch` (history, best/last/snapshot
checkpoints, early stopping) -> :func:`_finish` (final evaluation, result.json, plots).

What is task-specific -- the data, the batch -> loss step, the metrics, what a checkpoint remembers --
lives in a :class:`~cnnlab.train.task.Task` (``TrainConfig.task`` or ``fit(task=...)``):
classification, segmentation, and detection next. Resume, SIGKILL safety, DDP, progress,
TensorBoard, CSV and plots work for every task without task code.

Hooks (all optional keyword arguments of :func:`fit`):

- ``task=`` a :class:`~cnnlab.train.task.Task` instance instead of ``get_task(cfg.task)``;
- ``model=`` a ready ``nn.Module`` instead of ``cfg.model`` (transfer learning, custom nets); a model
  made by ``create_model`` is recorded by registry name, kwargs and pretrained preprocessing, so its
  checkpoints rebuild with ``load_checkpoint(...).build_model()``;
- ``train_data=`` / ``val_data=`` / ``test_data=`` datasets instead of ``cfg.data`` (CV folds,
  bootstrap resamples for bagging -- any ``ArrayDataset`` or ``FolderDataset``);
- ``sample_weights=`` one weight per training sample (boosting): the loss is the weighted mean;
- ``loss_fn=`` ``loss_fn(output, target) -> scalar`` (or a dict of named losses, summed) replacing
  the task's criterion (distillation, focal loss);
- ``param_groups=`` torch-style parameter groups (discriminative learning rates, frozen layers);
- ``callbacks=`` objects with any of ``on_fit_start(state)``, ``on_step_end(state)``,
  ``on_epoch_end(state, row)``, ``on_fit_end(state, result)``; setting ``state.stop = True``
  ends the run after the current epoch.

Exact resume: everything that determines the next step is in the checkpoint -- weights, optimizer
tensors, the scheduler's step, EMA, every process's global RNG state, the position in the epoch --
and the data order/augmentation of a batch depend only on ``(seed, epoch, step, rank)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab._io import atomic_write, remove_stale_temps
from cnnlab.errors import ConfigError, NonFiniteLossError, TrainingError
from cnnlab.train import distributed as D
from cnnlab.train.checkpoint import (
    get_rng_state,
    load_checkpoint,
    load_state,
    save_checkpoint,
    set_rng_state,
)
from cnnlab.train.config import TrainConfig
from cnnlab.train.hardware import resolve_amp
from cnnlab.train.optim import build_optimizer, build_param_groups, build_scheduler, l1_penalty
from cnnlab.train.runlog import Progress, RunLogger, plot_curves
from cnnlab.train.task import (
    DataSpec,
    StepContext,
    StepOutput,
    Task,
    autocast_for,
    compute_loss,
    get_task,
)

__all__ = ["FitResult", "FitState", "NonFiniteLossError", "TrainingError", "compute_loss", "fit",
           "resolve_device", "set_dropout"]

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
    epoch_correct: float = 0.0  # the task's training score summed (correct images, correct pixels)
    epoch_seen: float = 0.0  # images
    epoch_score_count: float = 0.0  # what the score is averaged over (images, labelled pixels)
    epoch_parts: dict[str, float] = field(default_factory=dict)  # named loss parts, summed like the loss
    epoch_time: float = 0.0
    stop: bool = False

    def bookkeeping(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("history", "best", "bad_epochs", "epoch_loss_sum", "epoch_correct",
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


# ============================================================================ the public entry
def fit(cfg: TrainConfig, *, task: Task | None = None, model: nn.Module | None = None, train_data: Any = None,
        val_data: Any = None,
        test_data: Any = None, sample_weights: torch.Tensor | None = None,
        loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
        param_groups: Iterable[dict] | None = None, callbacks: Sequence[Any] = (),
        resume: str | Path | None = None) -> FitResult:
    """Train according to ``cfg`` (see the module docstring for the hooks); ``resume`` is a run
    directory or checkpoint to continue exactly. ``cfg.nproc > 1`` spawns that many processes."""
    cfg.validate()
    task = task if task is not None else get_task(cfg.task)
    hooks = dict(task=task, model=model, train_data=train_data, val_data=val_data, test_data=test_data,
                 sample_weights=sample_weights, loss_fn=loss_fn, param_groups=param_groups,
                 callbacks=callbacks, resume=resume)
    if cfg.nproc > 1 and D.env_world_size() <= 1:
        return _launch(cfg, hooks)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.device, local_rank)
    info = D.setup(device)
    try:
        with _process_settings(cfg, info, device) as stop_flag:
            return _fit(cfg, info, device, stop_flag, **hooks)
    finally:
        D.teardown(info)


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


class _StopFlag:
    """Set by the first Ctrl-C/SIGTERM: finish the current step, save, exit. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def _process_settings(cfg: TrainConfig, info: D.DistInfo, device: torch.device):
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
    flag = _StopFlag()
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


# ========================================================================= data and the model
@dataclass
class _Data:
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


def _default_run_dir(cfg: TrainConfig) -> str:
    data = cfg.data.replace("imagefolder:", "").rstrip("/").replace("/", "_").replace(":", "_")
    return str(Path("runs") / f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}")


# ============================================================================== the training run
@dataclass
class _Run:
    """Everything :func:`_setup` builds for one run; the loop functions below read and update it."""

    cfg: TrainConfig
    info: D.DistInfo
    device: torch.device
    task: Task
    spec: DataSpec
    data: _Data
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
    stop_flag: _StopFlag
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
                    "scheduler": _json_safe(self.scheduler.state_dict()),
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


def _fit(cfg: TrainConfig, info: D.DistInfo, device: torch.device, stop_flag: _StopFlag, *, task, **hooks) -> FitResult:
    run = _setup(cfg, info, device, stop_flag, task, **hooks)
    interrupted = stopped_early = False
    try:
        for epoch in range(run.state.epoch, run.cfg.epochs):
            if train_one_epoch(run, epoch):
                interrupted = True
                break
            row = evaluate_epoch(run, epoch)
            stopped_early = _end_of_epoch(run, epoch, row)
            if stopped_early or run.state.stop:
                break
    finally:
        run.progress.close()
        run.logger.close()
    return _finish(run, interrupted=interrupted, stopped_early=stopped_early)


def _resolve_for_run(cfg: TrainConfig, info: D.DistInfo, device: torch.device,
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


def _setup(cfg: TrainConfig, info: D.DistInfo, device: torch.device, stop_flag: _StopFlag, task: Task, *,
           model, train_data, val_data, test_data, sample_weights, loss_fn, param_groups, callbacks,
           resume) -> _Run:
    """Data, model (same initialisation on every process), EMA, optimizer, schedule, resume, logging."""
    ckpt = load_checkpoint(resume, prefer="last") if resume is not None else None
    if ckpt is not None and cfg.out_dir is None:
        cfg = cfg.replace(out_dir=str(ckpt.path.parent))
    cfg, amp_note = _resolve_for_run(cfg, info, device, task)
    run_dir = Path(D.broadcast_object(cfg.out_dir or _default_run_dir(cfg), info))
    cfg = cfg.replace(out_dir=str(run_dir))

    data = _Data(*task.load_data(cfg, train_data, val_data, test_data))
    spec = task.spec(data.train, cfg)

    torch.manual_seed(cfg.seed)
    if model is None:
        net, model_name, model_kwargs = task.build_model(cfg, spec)
        arch_size = spec.img_size
    else:
        net = model
        model_name, model_kwargs, arch_size = _registry_origin(model, spec)
    if cfg.dropout is not None and set_dropout(net, cfg.dropout) == 0:
        raise ConfigError(f"dropout={cfg.dropout} given but {cfg.model} has no dropout layers")
    net.to(device)
    if getattr(net, "needs_data_init", False):  # data-dependent init (FastNet's whitened stem)
        net.init_from_data(task.init_inputs(data.train, spec).to(device))
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    title = cfg.model if model is None else (model_name or "model")
    task.check_model(net, spec, device, title)
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
        sample_weights = torch.as_tensor(sample_weights, dtype=torch.float32)
        if sample_weights.shape != (len(data.train),) or (sample_weights < 0).any():
            raise ConfigError(f"sample_weights needs {len(data.train)} non-negative values")
        sample_weights = (sample_weights / sample_weights.mean()).to(device)
    ctx = StepContext(cfg=cfg, spec=spec, criterion=criterion, sample_weights=sample_weights)

    state = FitState(cfg=cfg, run_dir=run_dir, model=net, optimizer=optimizer, steps_per_epoch=steps_per_epoch)
    if ckpt is not None:
        _restore(ckpt, info, net, ema, optimizer, scheduler, scaler, state)
    else:
        torch.manual_seed(cfg.seed + info.rank)  # the dropout/noise stream, distinct per process
    meta = {**task.meta(spec), "model": model_name, "model_kwargs": model_kwargs, "data": cfg.data,
            "eval_weights": "ema" if ema is not None else "model"}
    if arch_size != spec.img_size:
        meta["model_img_size"] = arch_size
    if model is not None and getattr(model, "pretrained_cfg", {}).get("weights"):
        meta["pretrained"] = _json_safe(model.pretrained_cfg["weights"])

    logger, progress = _open_run_dir(cfg, info, task, resumed_at=state.global_step if ckpt else None)
    train_model: nn.Module = net
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    run = _Run(cfg=cfg, info=info, device=device, task=task, spec=spec, data=data, net=net,
               train_model=train_model, eval_model=ema.module if ema is not None else net, ema=ema,
               optimizer=optimizer, scheduler=scheduler, scaler=scaler, loader=loader,
               autocast=autocast_for(device, cfg.amp), ctx=ctx, state=state, meta=meta, logger=logger,
               progress=progress, callbacks=callbacks, stop_flag=stop_flag, title=title)
    if amp_note:
        progress.message(amp_note)
    run.callback("on_fit_start")
    return run


def _open_run_dir(cfg: TrainConfig, info: D.DistInfo, task: Task, resumed_at: int | None) -> tuple[RunLogger, Progress]:
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


def _registry_origin(model: nn.Module, spec: DataSpec) -> tuple[str | None, dict, int]:
    """(registry name, builder kwargs, built img_size) of a model made by ``create_model``, so a checkpoint
    of ``fit(model=...)`` can be rebuilt by name (transfer learning); (None, {}, size) for a custom module."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, dict) or not cfg.get("name"):
        return None, {}, spec.img_size
    from cnnlab.models import list_models

    if cfg["name"] not in list_models():
        return None, {}, spec.img_size
    return cfg["name"], dict(_json_safe(cfg.get("model_kwargs") or {})), int(cfg.get("img_size", spec.img_size))


def train_one_epoch(run: _Run, epoch: int) -> bool:
    """Train from the saved position to the end of ``epoch``; True when a stop request interrupted it."""
    cfg, state, info = run.cfg, run.state, run.info
    micro_per_epoch = run.micro_per_epoch
    run.loader.set_epoch(epoch)
    run.ctx.img_size = cfg.train_size_at(epoch)
    run.train_model.train()
    run.progress.start_epoch(epoch, micro_per_epoch, state.micro_step)
    t0 = time.perf_counter()
    for micro, batch in enumerate(run.loader.iter_from(state.micro_step), start=state.micro_step):
        boundary = (micro + 1) % cfg.accum_steps == 0 or micro + 1 == micro_per_epoch
        sync = run.train_model.no_sync() if info.enabled and not boundary else contextlib.nullcontext()
        with sync:
            with run.autocast:
                out = run.task.step(run.train_model, batch, run.ctx)
                total = out.loss
                if cfg.l1 > 0:
                    total = total + cfg.l1 * l1_penalty(run.optimizer)
            scaled = total / cfg.accum_steps
            (run.scaler.scale(scaled) if run.scaler is not None else scaled).backward()
        stop_votes, batch_loss = _accumulate_stats(run, out, epoch, micro)
        if boundary:
            _optimizer_step(run)
            state.global_step += 1
            state.micro_step = micro + 1
            if state.global_step % cfg.log_every_steps == 0:
                run.logger.scalar("train/loss", batch_loss, state.global_step)
                run.logger.scalar("train/lr", run.optimizer.param_groups[0]["lr"], state.global_step)
            run.callback("on_step_end")
            if stop_votes > 0:  # Ctrl-C / SIGTERM on any process: save here and leave
                state.epoch_time += time.perf_counter() - t0
                run.save("last")
                return True
            if (cfg.ckpt_every_steps and state.global_step % cfg.ckpt_every_steps == 0
                    and state.micro_step < micro_per_epoch):
                state.epoch_time += time.perf_counter() - t0
                t0 = time.perf_counter()
                run.save("last")
        elapsed = state.epoch_time + time.perf_counter() - t0
        run.progress.update(micro + 1, state.epoch_loss_sum / max(1, state.epoch_seen),
                            state.epoch_correct / max(1e-9, state.epoch_score_count),
                            state.epoch_seen / max(1e-9, elapsed))
    state.epoch_time += time.perf_counter() - t0
    return False


def _accumulate_stats(run: _Run, out: StepOutput, epoch: int, micro: int) -> tuple[float, float]:
    """Sum the step's loss, score and named loss parts over processes (this also carries the stop
    request); stop on a non-finite loss. Returns (processes asking to stop, the batch's mean loss)."""
    state = run.state
    dev = out.loss.device
    parts = out.parts or {}
    stats = torch.stack([out.loss.detach().float() * out.n, out.score_sum.float(),
                         torch.tensor(float(out.n), device=dev), torch.tensor(float(out.score_count), device=dev),
                         torch.tensor(float(run.stop_flag.requested), device=dev),
                         *[v.float() * out.n for v in parts.values()]])
    values = D.all_reduce_sum(stats, run.info).tolist()
    loss_sum, score, count, score_count, stop_votes = values[:5]
    if not math.isfinite(loss_sum):
        raise NonFiniteLossError(_nan_message(loss_sum, state, epoch, micro, run.optimizer, state.run_dir))
    state.epoch_loss_sum += loss_sum
    state.epoch_correct += score
    state.epoch_seen += count
    state.epoch_score_count += score_count
    for name, v in zip(parts, values[5:], strict=True):
        state.epoch_parts[name] = state.epoch_parts.get(name, 0.0) + v
    return stop_votes, loss_sum / max(1.0, count)


def _optimizer_step(run: _Run) -> None:
    """Clip, step (through the fp16 scaler if any), zero the gradients, advance the schedule and EMA."""
    opt, scaler = run.optimizer, run.scaler
    if run.cfg.grad_clip > 0:
        if scaler is not None:
            scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(run.net.parameters(), run.cfg.grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    opt.zero_grad(set_to_none=True)
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.net)


def is_eval_epoch(cfg: TrainConfig, epoch: int) -> bool:
    """Whether 0-based ``epoch`` is evaluated: every ``eval_every``-th and the last."""
    return (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs


def evaluate_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """The epoch's history row: training averages, then validation and test metrics (empty columns on the
    epochs that ``eval_every`` skips)."""
    state, task = run.state, run.task
    seen = max(1, state.epoch_seen)
    row: dict[str, Any] = {
        "epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": state.epoch_loss_sum / seen,
        f"train_{task.train_score}": state.epoch_correct / max(1e-9, state.epoch_score_count),
        **{f"train_{k}": v / seen for k, v in state.epoch_parts.items()},
        "epoch_time_s": state.epoch_time, "train_img_per_s": state.epoch_seen / max(1e-9, state.epoch_time)}
    evaluate = is_eval_epoch(run.cfg, epoch)
    if run.data.val is not None:
        row.update(task.columns("val", run.evaluate(run.data.val)) if evaluate else task.empty_columns("val"))
    if run.data.test is not None:
        run.last_test = run.evaluate(run.data.test) if evaluate else None
        row.update(task.columns("test", run.last_test) if evaluate else task.empty_columns("test"))
    return row


def _end_of_epoch(run: _Run, epoch: int, row: dict[str, Any]) -> bool:
    """Record the row, keep the best checkpoint, save ``last`` (and ``snapshot-K`` at the end of cycle K of
    the cyclic schedule), log; True when early stopping fires."""
    state, cfg = run.state, run.cfg
    state.history.append(row)
    state.epoch, state.micro_step = epoch + 1, 0
    state.epoch_loss_sum = state.epoch_correct = state.epoch_seen = state.epoch_time = 0.0
    state.epoch_score_count = 0.0
    state.epoch_parts = {}
    metric, value, higher = _monitor(cfg, row, run.task)
    # an epoch that eval_every skips is neither a best candidate nor a bad epoch (without val/test data the
    # training loss picks the best, every epoch)
    scored = is_eval_epoch(cfg, epoch) or (run.data.val is None and run.data.test is None)
    if scored and (state.best is None or (value > state.best["value"] if higher else value < state.best["value"])):
        state.best, state.bad_epochs = {"epoch": epoch + 1, "metric": metric, "value": value}, 0
        run.save("best")
    elif scored:
        state.bad_epochs += 1
    per_cycle = cfg.epochs // cfg.cycles
    if cfg.schedule == "cyclic" and state.epoch % per_cycle == 0:  # Huang et al. 2017; written before `last`,
        run.save(f"snapshot-{state.epoch // per_cycle}")  # so a kill in between redoes this epoch on resume
    run.save("last")
    run.logger.epoch(state.history, state.global_step)
    run.progress.end_epoch(row)
    run.callback("on_epoch_end", row)
    if cfg.early_stop_patience and state.bad_epochs >= cfg.early_stop_patience:
        run.progress.message(f"early stopping: no {metric} improvement for {state.bad_epochs} epochs "
                             f"(best {state.best['value']:.4f} at epoch {state.best['epoch']})")
        return True
    return False


def _finish(run: _Run, *, interrupted: bool, stopped_early: bool) -> FitResult:
    """Restore the best weights after early stopping, the final (TTA) evaluation, result.json, plots."""
    cfg, state, info, data = run.cfg, run.state, run.info, run.data
    restored = False
    if stopped_early and cfg.restore_best and state.best and state.best["epoch"] != state.epoch:
        D.barrier(info)
        best = load_checkpoint(state.run_dir / "best.safetensors")
        load_state(run.net, best.model_state, best.path)
        if run.ema is not None:
            run.ema.load_state_dict(best.ema_state)
        restored = True
    final: dict[str, Any] = {}
    final_data = data.test if data.test is not None else data.val
    if not interrupted and final_data is not None:
        if restored or run.last_test is None or data.test is None:
            final = run.evaluate(final_data)
        else:
            final = dict(run.last_test)
        final["split"] = "test" if data.test is not None else "val"
        if cfg.tta != "none":
            tta = run.evaluate(final_data, tta=cfg.tta)
            final = {**tta, "split": final["split"], "tta": cfg.tta,
                     f"{run.task.score}_no_tta": final[run.task.score]}
    result = FitResult(run_dir=state.run_dir, model=run.eval_model, history=state.history, final=final,
                       best=state.best, stopped_early=stopped_early, interrupted=interrupted,
                       epochs_run=state.epoch)
    if info.is_main:
        summary = {**result.summary(), "task": run.task.name, "final_weights": "best" if restored else "last",
                   "checkpoint_step": {"epoch": state.epoch, "micro_step": state.micro_step,
                                       "global_step": state.global_step}}
        atomic_write(state.run_dir / "result.json", json.dumps(summary, indent=1).encode())
        if cfg.plots and state.history:
            plot_curves(state.run_dir / "curves.png", state.history, score=run.task.score,
                        score_label=run.task.score_label, loss_label=run.task.loss_label)
            if final:
                run.task.plots(state.run_dir, final, model=run.eval_model, data=final_data, spec=run.spec,
                               title=f"{run.title} on {final['split']}")
    run.callback("on_fit_end", result)
    D.barrier(info)
    return result


def _monitor(cfg: TrainConfig, row: dict[str, Any], task: Task) -> tuple[str, float, bool]:
    """(metric name, value, higher is better) that picks the best epoch: validation if there is a
    validation split (as early stopping), else the test score, else the training loss."""
    if row.get("val_loss") is not None:
        name = f"val_{task.score}" if cfg.early_stop_metric == "auto" else cfg.early_stop_metric
        if name not in row:
            scores = ", ".join(k for k in row if k.startswith("val_"))
            raise ConfigError(f"early_stop_metric={name!r} is not a {task.name} metric; use auto or one of {scores}")
    elif row.get(f"test_{task.score}") is not None:
        name = f"test_{task.score}"
    else:
        name = "train_loss"
    return name, row[name], not name.endswith("loss")


def _nan_message(value: float, state: FitState, epoch: int, micro: int, optimizer, run_dir: Path) -> str:
    last = run_dir / "last.safetensors"
    keep = (f"the last good checkpoint {last} is kept (resume with `cnnlab train --resume {run_dir}` "
            "after lowering the learning rate)") if last.exists() else "no checkpoint had been written yet"
    return (f"training loss became {value} at epoch {epoch + 1}, step {micro + 1} "
            f"(lr {optimizer.param_groups[0]['lr']:.3g}); stopped -- {keep}")


def _restore(ckpt, info: D.DistInfo, net, ema, optimizer, scheduler, scaler, state: FitState) -> None:
    """Load everything a checkpoint holds so the next step is the one the original run would take."""
    from cnnlab.errors import CheckpointError

    m = ckpt.meta
    load_state(net, ckpt.model_state, ckpt.path)
    if ema is not None:
        if ckpt.ema_state is None:
            raise CheckpointError(f"{ckpt.path} has no EMA weights but the run uses ema_decay")
        ema.load_state_dict(ckpt.ema_state)
    try:
        optimizer.load_state_dict(ckpt.optimizer_state)
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{ckpt.path}: optimizer state does not match ({e})") from None
    scheduler.load_state_dict(m["scheduler"])
    if scaler is not None and m.get("scaler"):
        scaler.load_state_dict(m["scaler"])
    state.epoch, state.micro_step, state.global_step = m["epoch"], m["micro_step"], m["global_step"]
    for k, v in m["fit_state"].items():
        setattr(state, k, v)
    rng = m["rng"]
    if len(rng) != info.world_size:
        import warnings

        warnings.warn(f"resuming a {len(rng)}-process run with {info.world_size} processes: "
                      "data sharding and random streams differ, so the result will not be bit-identical",
                      stacklevel=2)
    set_rng_state(rng[info.rank % len(rng)])


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return None  # functions (lr_lambdas) are rebuilt from the config


# ============================================================================== multi-process
def _launch(cfg: TrainConfig, hooks: dict[str, Any]) -> FitResult:
    """``nproc`` local processes via torch.multiprocessing; rank 0's result is read back from disk."""
    import torch.multiprocessing as mp

    if hooks["resume"] is not None and cfg.out_dir is None:
        from cnnlab.train.checkpoint import resolve_checkpoint

        cfg = cfg.replace(out_dir=str(resolve_checkpoint(hooks["resume"], "last").parent))
    cfg = cfg.replace(out_dir=cfg.out_dir or _default_run_dir(cfg))
    child_hooks = {k: v for k, v in hooks.items()}
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # children handle Ctrl-C and save
    try:
        D.launch(fit, cfg, cfg.nproc, **child_hooks)
    except mp.ProcessRaisedException as e:
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else "a worker failed"
        raise TrainingError(f"worker process failed: {last.split(': ', 1)[-1] if 'Error' in last else last}") from None
    except mp.ProcessExitedException as e:
        raise TrainingError(f"worker process exited: {e}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    run_dir = Path(cfg.out_dir)
    summary = json.loads((run_dir / "result.json").read_text())
    ckpt = load_checkpoint(run_dir, prefer=summary.get("final_weights", "last"))
    model = ckpt.build_model(model=hooks["model"])
    return FitResult(run_dir=run_dir, model=model, history=summary["history"], final=summary["final"],
                     best=summary["best"], stopped_early=summary["stopped_early"],
                     interrupted=summary["interrupted"], epochs_run=summary["epochs_run"])
