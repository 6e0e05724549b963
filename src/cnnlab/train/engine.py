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
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab._io import atomic_write
from cnnlab.errors import ConfigError, NonFiniteLossError, TrainingError
from cnnlab.train import distributed as D
from cnnlab.train.checkpoint import (
    load_checkpoint,
    load_state,
)
from cnnlab.train.config import TrainConfig
from cnnlab.train.optim import l1_penalty
from cnnlab.train.process import StopFlag, process_settings, resolve_device
from cnnlab.train.run import FitResult, FitState, Run, set_dropout, setup
from cnnlab.train.rundir import default_run_dir
from cnnlab.train.runlog import plot_curves
from cnnlab.train.task import (
    StepOutput,
    Task,
    compute_loss,
    get_task,
)

__all__ = ["FitResult", "FitState", "NonFiniteLossError", "TrainingError", "compute_loss", "fit",
           "resolve_device", "set_dropout"]

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
        with process_settings(cfg, info, device) as stop_flag:
            return _fit(cfg, info, device, stop_flag, **hooks)
    finally:
        D.teardown(info)


def _fit(cfg: TrainConfig, info: D.DistInfo, device: torch.device, stop_flag: StopFlag, *, task, **hooks) -> FitResult:
    run = setup(cfg, info, device, stop_flag, task, **hooks)
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


def train_one_epoch(run: Run, epoch: int) -> bool:
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
                            state.epoch_score_sum / max(1e-9, state.epoch_score_count),
                            state.epoch_seen / max(1e-9, elapsed))
    state.epoch_time += time.perf_counter() - t0
    return False


def _accumulate_stats(run: Run, out: StepOutput, epoch: int, micro: int) -> tuple[float, float]:
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
    state.epoch_score_sum += score
    state.epoch_seen += count
    state.epoch_score_count += score_count
    for name, v in zip(parts, values[5:], strict=True):
        state.epoch_parts[name] = state.epoch_parts.get(name, 0.0) + v
    return stop_votes, loss_sum / max(1.0, count)


def _optimizer_step(run: Run) -> None:
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


def evaluate_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """The epoch's history row: training averages, then validation and test metrics (empty columns on the
    epochs that ``eval_every`` skips)."""
    state, task = run.state, run.task
    seen = max(1, state.epoch_seen)
    row: dict[str, Any] = {
        "epoch": epoch + 1, "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": state.epoch_loss_sum / seen,
        f"train_{task.train_score}": state.epoch_score_sum / max(1e-9, state.epoch_score_count),
        **{f"train_{k}": v / seen for k, v in state.epoch_parts.items()},
        "epoch_time_s": state.epoch_time, "train_img_per_s": state.epoch_seen / max(1e-9, state.epoch_time)}
    evaluate = is_eval_epoch(run.cfg, epoch)
    if run.data.val is not None:
        row.update(task.columns("val", run.evaluate(run.data.val)) if evaluate else task.empty_columns("val"))
    if run.data.test is not None:
        run.last_test = run.evaluate(run.data.test) if evaluate else None
        row.update(task.columns("test", run.last_test) if evaluate else task.empty_columns("test"))
    return row


def _end_of_epoch(run: Run, epoch: int, row: dict[str, Any]) -> bool:
    """Record the row, keep the best checkpoint, save ``last`` (and ``snapshot-K`` at the end of cycle K of
    the cyclic schedule), log; True when early stopping fires."""
    state, cfg = run.state, run.cfg
    state.history.append(row)
    state.epoch, state.micro_step = epoch + 1, 0
    state.epoch_loss_sum = state.epoch_score_sum = state.epoch_seen = state.epoch_time = 0.0
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


def _finish(run: Run, *, interrupted: bool, stopped_early: bool) -> FitResult:
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




# ============================================================================== multi-process
def _launch(cfg: TrainConfig, hooks: dict[str, Any]) -> FitResult:
    """``nproc`` local processes via torch.multiprocessing; rank 0's result is read back from disk."""
    import torch.multiprocessing as mp

    if hooks["resume"] is not None and cfg.out_dir is None:
        from cnnlab.train.checkpoint import resolve_checkpoint

        cfg = cfg.replace(out_dir=str(resolve_checkpoint(hooks["resume"], "last").parent))
    cfg = cfg.replace(out_dir=cfg.out_dir or str(default_run_dir(cfg.data, cfg.model)))
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
