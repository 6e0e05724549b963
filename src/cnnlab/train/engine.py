"""``fit()``: one readable training loop, and the few hooks later capabilities need.

Reading order: :func:`fit` (process setup) -> :func:`_fit` (data, model, optimizer, resume) ->
the epoch/step loop -> evaluation, history, checkpoints -> the end of the run.

Hooks (all optional keyword arguments of :func:`fit`):

- ``model=`` a ready ``nn.Module`` instead of ``cfg.model`` (transfer learning, custom nets);
- ``train_data=`` / ``val_data=`` / ``test_data=`` datasets instead of ``cfg.data`` (CV folds,
  bootstrap resamples for bagging -- any ``ArrayDataset`` or ``FolderDataset``);
- ``sample_weights=`` one weight per training sample (boosting): the loss is the weighted mean;
- ``loss_fn=`` ``loss_fn(output, target) -> scalar`` replacing cross-entropy (detection, distillation);
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
import torch.nn.functional as F
from torch import nn

from cnnlab._io import atomic_write
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.models._base import AuxOutputs
from cnnlab.train import distributed as D
from cnnlab.train.checkpoint import (
    get_rng_state,
    load_checkpoint,
    load_state,
    save_checkpoint,
    set_rng_state,
)
from cnnlab.train.config import TrainConfig
from cnnlab.train.metrics import evaluate, logits_of
from cnnlab.train.optim import build_optimizer, build_param_groups, build_scheduler, l1_penalty
from cnnlab.train.runlog import Progress, RunLogger, plot_confusion, plot_curves

# Options that may change when a run is resumed (they do not alter the optimisation).
RESUME_MUTABLE = ("epochs", "progress", "threads", "ckpt_every_steps", "log_every_steps", "plots",
                  "tensorboard", "device", "out_dir", "eval_batch_size")


class NonFiniteLossError(CnnlabError, FloatingPointError):
    """The training loss became NaN or infinite; the run stopped without overwriting good checkpoints."""


class TrainingError(CnnlabError, RuntimeError):
    """A worker process of a multi-process run failed."""


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
    epoch_loss_sum: float = 0.0
    epoch_correct: float = 0.0
    epoch_seen: float = 0.0
    epoch_time: float = 0.0
    stop: bool = False

    def bookkeeping(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("history", "best", "bad_epochs", "epoch_loss_sum",
                                                 "epoch_correct", "epoch_seen", "epoch_time")}


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
def fit(cfg: TrainConfig, *, model: nn.Module | None = None, train_data: Any = None, val_data: Any = None,
        test_data: Any = None, sample_weights: torch.Tensor | None = None,
        loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
        param_groups: Iterable[dict] | None = None, callbacks: Sequence[Any] = (),
        resume: str | Path | None = None) -> FitResult:
    """Train according to ``cfg`` (see the module docstring for the hooks); ``resume`` is a run
    directory or checkpoint to continue exactly. ``cfg.nproc > 1`` spawns that many processes."""
    cfg.validate()
    hooks = dict(model=model, train_data=train_data, val_data=val_data, test_data=test_data,
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

    def handler(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
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


def _prepare_data(cfg: TrainConfig, train: Any, val: Any, test: Any) -> _Data:
    from cnnlab.data import load_dataset, stratified_split

    if train is None:
        train = load_dataset(cfg.data, split="train", data_dir=cfg.data_dir)
        if test is None and cfg.eval_test:
            test = load_dataset(cfg.data, split="test", data_dir=cfg.data_dir)
    if cfg.train_subset and cfg.train_subset < len(train):
        g = torch.Generator().manual_seed(cfg.seed)
        train = train.subset(torch.randperm(len(train), generator=g)[: cfg.train_subset].sort().values)
    if val is None and cfg.val_fraction > 0:
        train, val = stratified_split(train, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if not cfg.eval_test:
        test = None
    if len(train) == 0:
        raise ConfigError("the training set is empty")
    return _Data(train, val, test)


def _build_model(cfg: TrainConfig, num_classes: int, in_chans: int, img_size: int) -> tuple[nn.Module, dict]:
    """The registry model. ``batch_norm`` on/off: families with ``NAME``/``NAME_bn`` twins (VGG) switch
    variant; other builders receive ``batch_norm=`` as a keyword, and those without the switch say so."""
    from cnnlab.models import create_model, list_models

    kwargs = dict(cfg.model_kwargs)
    name = cfg.model
    if cfg.batch_norm is not None:
        registered = set(list_models())
        if cfg.batch_norm and f"{name}_bn" in registered:
            name = f"{name}_bn"
        elif not cfg.batch_norm and name.endswith("_bn") and name[:-3] in registered:
            name = name[:-3]
        elif not (cfg.batch_norm and name.endswith("_bn")):
            kwargs["batch_norm"] = cfg.batch_norm
    try:
        model = create_model(name, num_classes=num_classes, in_chans=in_chans, img_size=img_size, **kwargs)
    except TypeError as e:
        text = str(e)
        if "unexpected keyword" in text or "multiple values" in text:
            bad = text.split("'")[-2] if "'" in text else "?"
            hint = " (batch_norm on/off exists only for families that allow it)" if bad == "batch_norm" else ""
            raise ConfigError(f"model {cfg.model} does not accept the option {bad!r}{hint}") from None
        raise
    return model, {**kwargs, "_registry_name": name} if name != cfg.model else kwargs


def set_dropout(model: nn.Module, p: float) -> int:
    """Set ``p`` of every dropout layer; returns how many were changed."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = p
            n += 1
    return n


def _check_input(model: nn.Module, shape: tuple[int, int, int], num_classes: int, device: torch.device,
                 name: str) -> None:
    """One tiny forward pass so that an input size the model cannot take is one clear error."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = logits_of(model(torch.zeros(2, *shape, device=device)))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"model {name} cannot take {shape[0]}x{shape[1]}x{shape[2]} inputs ({first})") from None
    finally:
        model.train(was_training)
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ConfigError(f"model {name} outputs shape {tuple(out.shape)}, expected (batch, {num_classes})")


def compute_loss(output: Any, target: torch.Tensor, criterion: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits). With auxiliary heads (GoogLeNet/Inception training mode):
    loss = CE(logits) + aux_weight * sum CE(aux_i)  (Szegedy et al. 2015, §5)."""
    if isinstance(output, AuxOutputs):
        loss = criterion(output.logits, target)
        for aux in output.aux:
            loss = loss + output.aux_weight * criterion(aux, target)
        return loss, output.logits
    return criterion(output, target), output


def _default_run_dir(cfg: TrainConfig) -> str:
    data = cfg.data.replace("imagefolder:", "").rstrip("/").replace("/", "_").replace(":", "_")
    return str(Path("runs") / f"{cfg.model}-{data}-{time.strftime('%Y%m%d-%H%M%S')}")


# ============================================================================== the training run
def _fit(cfg: TrainConfig, info: D.DistInfo, device: torch.device, stop_flag: _StopFlag, *, model, train_data,
         val_data, test_data, sample_weights, loss_fn, param_groups, callbacks, resume) -> FitResult:
    from cnnlab.data import build_loader

    ckpt = load_checkpoint(resume, prefer="last") if resume is not None else None
    if ckpt is not None and cfg.out_dir is None:
        cfg = cfg.replace(out_dir=str(ckpt.path.parent))
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp=fp16 needs a CUDA device (use bf16 or off on CPU)")
    if cfg.batch_size % info.world_size:
        raise ConfigError(f"batch_size={cfg.batch_size} must be divisible by the {info.world_size} processes")
    run_dir = Path(D.broadcast_object(cfg.out_dir or _default_run_dir(cfg), info))
    cfg = cfg.replace(out_dir=str(run_dir))

    # ---- data
    data = _prepare_data(cfg, train_data, val_data, test_data)
    c, h, w = data.train.image_shape
    img_size = cfg.img_size or h
    num_classes = data.train.num_classes

    def prepare(x: torch.Tensor) -> torch.Tensor:  # resize when the model runs at another size
        if x.shape[-1] != img_size or x.shape[-2] != img_size:
            x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
        return x

    # ---- model (same initialisation on every process), EMA, optimizer, schedule
    torch.manual_seed(cfg.seed)
    if model is None:
        net, model_kwargs = _build_model(cfg, num_classes, c, img_size)
        model_name = model_kwargs.pop("_registry_name", cfg.model)
    else:
        net, model_kwargs, model_name = model, {}, None
    if cfg.dropout is not None and set_dropout(net, cfg.dropout) == 0:
        raise ConfigError(f"dropout={cfg.dropout} given but {cfg.model} has no dropout layers")
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    _check_input(net, (c, img_size, img_size), num_classes, device, cfg.model if model is None else "model")
    ema = None
    if cfg.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    optimizer = build_optimizer(build_param_groups(net, cfg, param_groups), cfg)
    loader = build_loader(data.train, batch_size=cfg.batch_size // info.world_size, shuffle=True,
                          drop_last=False, augment=cfg.augment, seed=cfg.seed, device=device, rank=info.rank,
                          world_size=info.world_size, channels_last=cfg.channels_last,
                          return_indices=sample_weights is not None)
    micro_per_epoch = len(loader)
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.accum_steps)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)
                if cfg.amp != "off" else contextlib.nullcontext())
    criterion = loss_fn or nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing,
                                               reduction="none" if sample_weights is not None else "mean")
    if sample_weights is not None:
        sample_weights = torch.as_tensor(sample_weights, dtype=torch.float32)
        if sample_weights.shape != (len(data.train),) or (sample_weights < 0).any():
            raise ConfigError(f"sample_weights needs {len(data.train)} non-negative values")
        sample_weights = (sample_weights / sample_weights.mean()).to(device)

    state = FitState(cfg=cfg, run_dir=run_dir, model=net, optimizer=optimizer, steps_per_epoch=steps_per_epoch)
    if ckpt is not None:
        _restore(ckpt, info, net, ema, optimizer, scheduler, scaler, state)
    else:
        torch.manual_seed(cfg.seed + info.rank)  # the dropout/noise stream, distinct per process

    meta = {"model": model_name, "model_kwargs": model_kwargs, "num_classes": num_classes, "in_chans": c,
            "img_size": img_size, "classes": list(data.train.classes), "mean": list(data.train.mean),
            "std": list(data.train.std), "data": cfg.data, "eval_weights": "ema" if ema is not None else "model"}

    def save(name: str) -> Path:
        """Checkpoint ``name`` (rank 0 writes; every process contributes its RNG state)."""
        rng = D.gather_objects(get_rng_state(), info)
        path = run_dir / f"{name}.safetensors"
        if info.is_main:
            full = {**meta, "config": cfg.to_dict(), "epoch": state.epoch, "micro_step": state.micro_step,
                    "global_step": state.global_step, "world_size": info.world_size,
                    "scheduler": _json_safe(scheduler.state_dict()),
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "rng": rng, "fit_state": state.bookkeeping(), "torch_version": torch.__version__,
                    "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")}
            save_checkpoint(path, full, net.state_dict(), optimizer.state_dict(),
                            ema.state_dict() if ema is not None else None)
        return path

    # ---- run directory, logging, wrappers
    if info.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the run directory {run_dir} ({e.strerror or e}); "
                              "out_dir must be a writable folder path") from None
        cfg.to_yaml(run_dir / "config.yaml")
    logger = RunLogger(run_dir, info.is_main, cfg.tensorboard, purge_step=state.global_step if ckpt else None)
    progress = Progress(cfg.progress, cfg.epochs, enabled=info.is_main)
    train_model: nn.Module = net
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    eval_model = ema.module if ema is not None else net
    for cb in callbacks:
        getattr(cb, "on_fit_start", lambda s: None)(state)

    interrupted = stopped_early = False
    last_test: dict[str, Any] | None = None
    try:
        for epoch in range(state.epoch, cfg.epochs):
            # ------------------------------------------------------------ one epoch of training
            loader.set_epoch(epoch)
            train_model.train()
            progress.start_epoch(epoch, micro_per_epoch, state.micro_step)
            t0 = time.perf_counter()
            for micro, batch in enumerate(loader.iter_from(state.micro_step), start=state.micro_step):
                x, y = batch[0], batch[1]
                x = prepare(x)
                if cfg.input_noise > 0:  # input-noise injection (Bishop 1995: ~ Tikhonov regularisation)
                    x = x + cfg.input_noise * torch.randn_like(x)
                boundary = (micro + 1) % cfg.accum_steps == 0 or micro + 1 == micro_per_epoch
                sync = train_model.no_sync() if info.enabled and not boundary else contextlib.nullcontext()
                with sync:
                    with autocast:
                        output = train_model(x)
                        loss, logits = compute_loss(output, y, criterion)
                        if sample_weights is not None:
                            loss = (loss * sample_weights[batch[2].to(device)]).mean()
                        total = loss
                        if cfg.l1 > 0:
                            total = total + cfg.l1 * l1_penalty(optimizer)
                    scaled = total / cfg.accum_steps
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                # progress numbers, summed over processes; also carries the stop request
                n = y.shape[0]
                stats = torch.stack([loss.detach().float() * n, (logits.argmax(1) == y).sum().float(),
                                     torch.tensor(float(n), device=loss.device),
                                     torch.tensor(float(stop_flag.requested), device=loss.device)])
                loss_sum, correct, count, stop_votes = D.all_reduce_sum(stats, info).tolist()
                if not math.isfinite(loss_sum):
                    raise NonFiniteLossError(_nan_message(loss_sum, state, epoch, micro, optimizer, run_dir))
                state.epoch_loss_sum += loss_sum
                state.epoch_correct += correct
                state.epoch_seen += count
                if boundary:
                    if cfg.grad_clip > 0:
                        if scaler is not None:
                            scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                    if ema is not None:
                        ema.update_parameters(net)
                    state.global_step += 1
                    state.micro_step = micro + 1
                    if state.global_step % cfg.log_every_steps == 0:
                        logger.scalar("train/loss", loss_sum / count, state.global_step)
                        logger.scalar("train/lr", optimizer.param_groups[0]["lr"], state.global_step)
                    for cb in callbacks:
                        getattr(cb, "on_step_end", lambda s: None)(state)
                    if stop_votes > 0:  # Ctrl-C / SIGTERM on any process: save here and leave
                        state.epoch_time += time.perf_counter() - t0
                        save("last")
                        interrupted = True
                        break
                    if (cfg.ckpt_every_steps and state.global_step % cfg.ckpt_every_steps == 0
                            and state.micro_step < micro_per_epoch):
                        state.epoch_time += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        save("last")
                elapsed = state.epoch_time + time.perf_counter() - t0
                progress.update(micro + 1, state.epoch_loss_sum / max(1, state.epoch_seen),
                                state.epoch_correct / max(1, state.epoch_seen), state.epoch_seen / max(1e-9, elapsed))
            if interrupted:
                break
            state.epoch_time += time.perf_counter() - t0

            # ------------------------------------------------------------ evaluation and bookkeeping
            row: dict[str, Any] = {
                "epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                "train_loss": state.epoch_loss_sum / max(1, state.epoch_seen),
                "train_top1": state.epoch_correct / max(1, state.epoch_seen),
                "epoch_time_s": state.epoch_time, "train_img_per_s": state.epoch_seen / max(1e-9, state.epoch_time)}
            eval_kw = dict(batch_size=cfg.eval_batch_size, device=device, amp=cfg.amp,
                           channels_last=cfg.channels_last, prepare=prepare, num_classes=num_classes)
            if data.val is not None:
                v = evaluate(eval_model, data.val, **eval_kw)
                row.update(val_loss=v["loss"], val_top1=v["top1"], val_top5=v["top5"])
            if data.test is not None:
                last_test = evaluate(eval_model, data.test, **eval_kw)
                row.update(test_loss=last_test["loss"], test_top1=last_test["top1"], test_top5=last_test["top5"])
            state.history.append(row)
            state.epoch, state.micro_step = epoch + 1, 0
            state.epoch_loss_sum = state.epoch_correct = state.epoch_seen = state.epoch_time = 0.0
            metric, value, higher = _monitor(cfg, row)
            if state.best is None or (value > state.best["value"] if higher else value < state.best["value"]):
                state.best, state.bad_epochs = {"epoch": epoch + 1, "metric": metric, "value": value}, 0
                save("best")
            else:
                state.bad_epochs += 1
            save("last")
            logger.epoch(state.history, state.global_step)
            progress.end_epoch(row)
            for cb in callbacks:
                getattr(cb, "on_epoch_end", lambda s, r: None)(state, row)
            if cfg.early_stop_patience and state.bad_epochs >= cfg.early_stop_patience:
                stopped_early = True
                progress.message(f"early stopping: no {metric} improvement for {state.bad_epochs} epochs "
                                 f"(best {value if state.best is None else state.best['value']:.4f} "
                                 f"at epoch {state.best['epoch']})")
                break
            if state.stop:
                break
    finally:
        progress.close()
        logger.close()

    # ---------------------------------------------------------------- the end of the run
    restored = False
    if stopped_early and cfg.restore_best and state.best and state.best["epoch"] != state.epoch:
        D.barrier(info)
        best = load_checkpoint(run_dir / "best.safetensors")
        load_state(net, best.model_state, best.path)
        if ema is not None:
            ema.load_state_dict(best.ema_state)
        restored = True
    final: dict[str, Any] = {}
    if not interrupted:
        eval_kw = dict(batch_size=cfg.eval_batch_size, device=device, amp=cfg.amp,
                       channels_last=cfg.channels_last, prepare=prepare, num_classes=num_classes)
        final_data = data.test if data.test is not None else data.val
        if final_data is not None:
            if restored or last_test is None or data.test is None:
                final = evaluate(eval_model, final_data, **eval_kw)
            else:
                final = dict(last_test)
            final["split"] = "test" if data.test is not None else "val"
            if cfg.tta != "none":
                tta = evaluate(eval_model, final_data, tta=cfg.tta, **eval_kw)
                final = {**tta, "split": final["split"], "tta": cfg.tta, "top1_no_tta": final["top1"]}
    result = FitResult(run_dir=run_dir, model=eval_model, history=state.history, final=final, best=state.best,
                       stopped_early=stopped_early, interrupted=interrupted, epochs_run=state.epoch)
    if info.is_main:
        summary = {**result.summary(), "final_weights": "best" if restored else "last",
                   "checkpoint_step": {"epoch": state.epoch, "micro_step": state.micro_step,
                                       "global_step": state.global_step}}
        atomic_write(run_dir / "result.json", json.dumps(summary, indent=1).encode())
        if cfg.plots and state.history:
            plot_curves(run_dir / "curves.png", state.history)
            if final.get("confusion"):
                plot_confusion(run_dir / "confusion_matrix.png", final["confusion"], list(data.train.classes),
                               f"{cfg.model if model is None else 'model'} on {final['split']}: "
                               f"top-1 {100 * final['top1']:.2f}%")
    for cb in callbacks:
        getattr(cb, "on_fit_end", lambda s, r: None)(state, result)
    D.barrier(info)
    return result


def _monitor(cfg: TrainConfig, row: dict[str, Any]) -> tuple[str, float, bool]:
    """(metric name, value, higher is better) that picks the best epoch: validation if there is a
    validation split (as early stopping), else test top-1, else training loss."""
    if row.get("val_top1") is not None:
        name = cfg.early_stop_metric
    elif row.get("test_top1") is not None:
        name = "test_top1"
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
        D.launch(cfg, cfg.nproc, **child_hooks)
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
