"""A checkpoint on a split of its (or another) dataset, through its own task: ``cnnlab eval`` and
``cnnlab segment eval`` (and ``detect eval``) are this one function with the task's own metrics and report.
"""

from __future__ import annotations

from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.train.checkpoint import Checkpoint, load_checkpoint
from cnnlab.train.process import resolve_device
from cnnlab.train.task import DataSpec, Task, get_task

__all__ = ["evaluate_checkpoint", "load_eval_data"]


def load_eval_data(ckpt: Checkpoint, data: str | None = None, data_dir: str | None = None, split: str = "test"):
    """The dataset ``ckpt`` is evaluated on (its own unless ``data`` names another), normalised exactly as in
    training (the training split's statistics travel in the checkpoint); a mismatch is one clear error."""
    from cnnlab.data import load_dataset

    m = ckpt.meta
    name = data or m.get("data") or ckpt.config.data
    ds = load_dataset(name, split=split, data_dir=data_dir or ckpt.config.data_dir)
    if ds.num_classes != m["num_classes"] or ds.image_shape[0] != m["in_chans"]:
        raise ConfigError(f"{name} ({ds.num_classes} classes, {ds.image_shape[0]} channels) does not match the "
                          f"checkpoint ({m['num_classes']} classes, {m['in_chans']} channels)")
    ds.mean, ds.std = tuple(m["mean"]), tuple(m["std"])
    return name, ds


def evaluate_checkpoint(checkpoint: str | Checkpoint, *, data: str | None = None, data_dir: str | None = None,
                        split: str = "test", tta: str | None = None, batch_size: int = 64, device: str = "auto",
                        use_ema: bool = True, task: str | None = None) -> dict[str, Any]:
    """The metrics of ``checkpoint`` (a file or run directory) from the task it was trained for.

    ``task``: the task the caller expects (``cnnlab segment eval`` expects ``"segmentation"``); another
    checkpoint is one error naming the command for it. ``tta`` defaults to the run's own setting.
    Returns the task's metrics plus ``checkpoint``, ``data``, ``split``, ``tta``, ``classes``, ``task``.
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if task is not None:
        ckpt.require_task(task, "eval")
    owner: Task = get_task(ckpt.task)
    tta = ckpt.config.tta if tta is None else tta
    if tta not in owner.tta_modes:
        raise ConfigError(f"--tta {tta!r} is not available for {owner.name}; use {', '.join(owner.tta_modes)}")
    dev = resolve_device(device)
    model = owner.model_from_checkpoint(ckpt, use_ema).to(dev)
    name, ds = load_eval_data(ckpt, data, data_dir, split)
    owner.check_eval_data(ds, name, split)
    spec = DataSpec.from_meta(ckpt.meta, data_size=tuple(ds.image_shape[1:]))
    metrics = owner.evaluate(model, ds, spec, batch_size=batch_size, device=dev, amp="off", channels_last=False,
                             tta=tta)
    return {"checkpoint": str(ckpt.path), "task": owner.name, "data": name, "split": split, "tta": tta,
            "classes": spec.classes, "images": len(ds), **metrics}
