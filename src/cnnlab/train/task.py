"""Tasks: everything that differs between classification, segmentation and detection, in one object.

The engine (:mod:`cnnlab.train.engine`) owns optimisation, exact resume, DDP, progress, TensorBoard,
CSV and checkpoints; a :class:`Task` owns the data, the batch -> loss step, the metrics and what a
checkpoint must remember (timm's ``TrainingTask``; torchvision's ``references/`` keep the same split
between the loop and each task's criterion/evaluator). A new task (detection) is a new subclass;
the loop does not change.

What a task provides (``ctx`` is the engine's :class:`StepContext`):

==========================  ====================================================================
``load_data(cfg, ...)``     the train/val/test datasets (registry names, user folders, given sets)
``spec(train, cfg)``        :class:`DataSpec`: classes, channels, input size, normalisation
``build_model(cfg, spec)``  the registry model for ``cfg.model``
``check_model(...)``        one tiny forward so an impossible input size is one clear error
``loader(dataset, ...)``    a resumable, shardable batch loader (``set_epoch``, ``iter_from``)
``step(model, batch, ctx)`` -> :class:`StepOutput`: the loss to back-propagate (optionally a dict of
                            named parts, summed), and a running score for the progress display
``evaluate(model, data)``   the metrics dict over a whole split (``"loss"`` and ``score`` included)
``columns(prefix, m)``      the history/CSV columns of one evaluation
``plots(...)``              pictures at the end of a run (confusion matrix, overlays)
==========================  ====================================================================
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, DataError
from cnnlab.models._base import AuxOutputs
from cnnlab.registry import TASKS
from cnnlab.train.config import TTA_MODES


@dataclass
class DataSpec:
    """What the model and the checkpoint need to know about the data."""

    num_classes: int
    in_chans: int
    img_size: int  # the model's input size (the data is resized to it when they differ)
    data_size: tuple[int, int]  # the data's own (H, W)
    classes: list[str]
    mean: list[float]
    std: list[float]

    @classmethod
    def from_meta(cls, meta: dict[str, Any], data_size: tuple[int, int] | None = None) -> DataSpec:
        """The spec a checkpoint was trained with (its ``meta``, as :meth:`Task.meta` wrote it); ``data_size``:
        the (H, W) of the data it will now see (default: the trained input size)."""
        size = meta["img_size"]
        return cls(num_classes=meta["num_classes"], in_chans=meta["in_chans"], img_size=size,
                   data_size=tuple(data_size or (size, size)), classes=list(meta["classes"]),
                   mean=list(meta["mean"]), std=list(meta["std"]))


@dataclass
class StepContext:
    """What a training step may need besides the batch: the criterion, boosting weights, options."""

    cfg: Any  # TrainConfig
    spec: DataSpec
    criterion: Callable[..., torch.Tensor]
    sample_weights: torch.Tensor | None = None  # one weight per training sample, mean 1
    img_size: int | None = None  # this epoch's training input size (progressive resizing); None: spec's


@dataclass
class StepOutput:
    """One micro-batch: ``loss`` is back-propagated; ``parts`` are named, detached loss components
    (batch means) for the logs; ``score_sum / score_count`` is the running training score."""

    loss: torch.Tensor
    n: int  # images in the batch
    score_sum: torch.Tensor
    score_count: float
    parts: dict[str, torch.Tensor] | None = None


def sum_losses(losses: torch.Tensor | dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A loss or a dict of named losses (detection: ``{"rpn_box": …, "cls": …}``) -> (total, parts)."""
    if isinstance(losses, dict):
        if not losses:
            raise ValueError("empty loss dict")
        total = sum(losses.values())
        return total, {k: v.detach() for k, v in losses.items()}
    return losses, {}


def resize_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize to ``size x size`` when the data's size differs from the model's input size (the one
    place every task, evaluation, ensemble and feature extractor resizes a batch)."""
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


def resize_input_and_mask(x: torch.Tensor, mask: torch.Tensor | None,
                          size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`resize_input` for the image and nearest-neighbour for its label mask (labels must not be
    interpolated)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x, mask
    if mask is not None:
        mask = F.interpolate(mask[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()
    return resize_input(x, size), mask


def resize_input_and_boxes(x: torch.Tensor, boxes: list[torch.Tensor] | None,
                           size: int) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """:func:`resize_input` for the images and each image's xyxy boxes scaled with them."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x, boxes
    if boxes is not None:
        scale = torch.tensor([size / w, size / h, size / w, size / h])
        boxes = [b * scale.to(b.device) for b in boxes]
    return resize_input(x, size), boxes


def add_input_noise(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Input-noise injection (Bishop 1995: training with noise ~ Tikhonov regularisation)."""
    return x + sigma * torch.randn_like(x) if sigma > 0 else x


def autocast_for(device: torch.device, amp: str):
    if amp == "off" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


class Task:
    """Base class: the registry model, the standard datasets and a one-forward input check."""

    name = "task"
    score = "score"  # the evaluation metric that picks the best epoch (val_/test_ columns)
    score_label = "score"
    train_score = "score"  # the running training score of StepOutput (train_ column, progress)
    loss_label = "loss"
    tta_modes: tuple[str, ...] = ("none",)
    command = "cnnlab"  # the CLI whose eval/predict take this task's checkpoints ("cnnlab segment", ...)
    verbs: tuple[str, ...] = ("train", "eval", "predict")  # what `command VERB` offers for this task

    # ------------------------------------------------------------------ data
    def load_data(self, cfg, train: Any, val: Any, test: Any) -> tuple[Any, Any, Any]:
        """Datasets from ``cfg.data`` unless given; a seeded subset and validation split on request."""
        from cnnlab.data import load_dataset

        if train is None:
            train = load_dataset(cfg.data, split="train", data_dir=cfg.data_dir)
            if test is None and cfg.eval_test:
                test = load_dataset(cfg.data, split="test", data_dir=cfg.data_dir)
        if cfg.train_subset and cfg.train_subset < len(train):
            g = torch.Generator().manual_seed(cfg.seed)
            train = train.subset(torch.randperm(len(train), generator=g)[: cfg.train_subset].sort().values)
        if val is None and cfg.val_fraction > 0:
            train, val = self.split_val(train, cfg)
        if not cfg.eval_test:
            test = None
        if len(train) == 0:
            raise ConfigError("the training set is empty")
        return train, self._like_train(val, train), self._like_train(test, train)

    @staticmethod
    def _like_train(ds: Any, train: Any) -> Any:
        """``ds`` normalised with the training split's statistics (a folder's test split computes its own);
        a shallow copy, so a caller's dataset is never changed."""
        if ds is None or (tuple(ds.mean), tuple(ds.std)) == (tuple(train.mean), tuple(train.std)):
            return ds
        import copy

        ds = copy.copy(ds)
        ds.mean, ds.std = tuple(train.mean), tuple(train.std)
        return ds

    def split_val(self, train: Any, cfg) -> tuple[Any, Any]:
        n_val = max(1, round(len(train) * cfg.val_fraction))
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))
        return train.subset(perm[n_val:].sort().values), train.subset(perm[:n_val].sort().values)

    def spec(self, train: Any, cfg) -> DataSpec:
        c, h, w = train.image_shape
        return DataSpec(num_classes=train.num_classes, in_chans=c, img_size=cfg.img_size or h, data_size=(h, w),
                        classes=list(train.classes), mean=list(train.mean), std=list(train.std))

    def init_inputs(self, train: Any, spec: DataSpec, n: int = 5000, max_pixels: int = 4_000_000) -> torch.Tensor:
        """The first ``n`` training images (fewer for large images: at most ``max_pixels`` pixels in all) as the
        model sees them -- normalised, not augmented, at the input size -- for models with a data-dependent
        initialisation (``needs_data_init``; ``model.init_from_data(x)``: FastNet's whitened stem; airbench
        2024 whitens its first layer from 5,000 training images). A dataset that changes by epoch
        (``set_epoch``: fresh scenes) gives its epoch-0 images, whatever epoch an earlier run left it at."""
        if hasattr(train, "set_epoch"):
            train.set_epoch(0)
        n = min(n, len(train), max(1, max_pixels // (spec.img_size * spec.img_size)))
        from cnnlab.data.loader import BatchFinisher  # the loaders' own uint8 -> normalised float step

        part = train.subset(torch.arange(n))
        images = part.images if hasattr(part, "images") else part.to_array().images
        normalise = BatchFinisher(spec.mean, spec.std, None, "cpu", channels_last=False, normalize=True)
        return resize_input(normalise(images, None), spec.img_size)

    # ----------------------------------------------------------------- model
    def build_model(self, cfg, spec: DataSpec) -> tuple[nn.Module, str, dict]:
        """The registry model ``cfg.model`` for this data -> (module, registry name, builder kwargs)."""
        from cnnlab.models import create_model

        kwargs = dict(cfg.model_kwargs)
        try:
            model = create_model(cfg.model, num_classes=spec.num_classes, in_chans=spec.in_chans,
                                 img_size=spec.img_size, **kwargs)
        except TypeError as e:
            raise ConfigError(f"model {cfg.model} does not accept the options {sorted(kwargs)} ({e})") from None
        return model, cfg.model, kwargs

    def expected_output(self, spec: DataSpec, batch: int) -> tuple[int, ...]:
        raise NotImplementedError

    def check_model(self, model: nn.Module, spec: DataSpec, device: torch.device, name: str) -> None:
        """One tiny forward pass so that an input size the model cannot take is one clear error."""
        shape = (spec.in_chans, spec.img_size, spec.img_size)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(torch.zeros(2, *shape, device=device))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise ConfigError(f"model {name} cannot take {shape[0]}x{shape[1]}x{shape[2]} inputs ({first})") from None
        finally:
            model.train(was_training)
        self.check_output(out, spec, name)

    def check_output(self, out: Any, spec: DataSpec, name: str) -> None:
        """What the model returned for a batch of 2 is what this task reads (a shape by default)."""
        out = out.logits if isinstance(out, AuxOutputs) else out
        want = self.expected_output(spec, 2)
        if tuple(out.shape) != want:
            raise ConfigError(f"model {name} outputs shape {tuple(out.shape)}, expected {want} for the "
                              f"{self.name} task")

    # ------------------------------------------------------------ the step
    def criterion(self, cfg, weighted: bool) -> Callable[..., torch.Tensor]:
        raise NotImplementedError

    def loader(self, dataset: Any, cfg, *, batch_size: int, device: torch.device, rank: int, world_size: int,
               return_indices: bool):
        raise NotImplementedError

    def step(self, model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
        raise NotImplementedError

    # ------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, data: Any, spec: DataSpec, *, batch_size: int, device: torch.device,
                 amp: str, channels_last: bool, tta: str = "none") -> dict[str, Any]:
        raise NotImplementedError

    def columns(self, prefix: str, metrics: dict[str, Any]) -> dict[str, Any]:
        return {f"{prefix}_loss": metrics["loss"], f"{prefix}_{self.score}": metrics[self.score]}

    def empty_columns(self, prefix: str) -> dict[str, Any]:
        """The ``prefix`` columns with no values (an epoch that ``eval_every`` does not evaluate)."""
        return dict.fromkeys(self.columns(prefix, _Everything()))

    def history_columns(self) -> tuple[str, ...]:
        cols = ["epoch", "lr", "train_loss", f"train_{self.train_score}"]
        for split in ("val", "test"):
            cols += list(self.columns(split, _Everything()))
        return (*cols, "epoch_time_s", "train_img_per_s")

    def meta(self, spec: DataSpec) -> dict[str, Any]:
        """What a checkpoint must remember to rebuild, evaluate and predict."""
        return {"task": self.name, "num_classes": spec.num_classes, "in_chans": spec.in_chans,
                "img_size": spec.img_size, "classes": list(spec.classes), "mean": list(spec.mean),
                "std": list(spec.std)}

    def plots(self, run_dir: Path, final: dict[str, Any], *, model: nn.Module, data: Any, spec: DataSpec,
              title: str) -> None:
        """Task-specific pictures at the end of a run (the curves are drawn by the engine)."""

    pictures = ""  # what plots() writes into the run directory, for the closing line of `train`

    def final_line(self, f: dict[str, Any]) -> str:
        """One line of a run's final metrics ``f`` (``FitResult.final``)."""
        return f"final {f['split']} {self.score_label} {f[self.score]:.4f}, loss {f['loss']:.4f}"

    def model_from_checkpoint(self, ckpt: Any, use_ema: bool = True) -> nn.Module:
        """The trained model of ``ckpt`` (a :class:`~cnnlab.train.checkpoint.Checkpoint` of this task), in eval
        mode on the CPU; tasks whose runs are not one registry model (R-CNN's SVM stage) override it."""
        return ckpt.build_model(use_ema=use_ema)

    def check_eval_data(self, data: Any, name: str, split: str) -> None:
        """One clear error when ``data`` cannot be scored by this task (e.g. no boxes for detection)."""

    def report_lines(self, r: dict[str, Any]) -> list[str]:
        """The text report of :func:`~cnnlab.train.evaluation.evaluate_checkpoint`'s result ``r``."""
        return [f"{r['checkpoint']} on {r['data']}/{r['split']} ({r['images']} images, TTA {r['tta']}): "
                f"{self.score_label} {r[self.score]:.4f}, loss {r['loss']:.4f}"]


class DenseTask(Task):
    """A task on dense data (:class:`~cnnlab.data.DenseDataset`: masks and/or boxes), batched by
    :class:`~cnnlab.data.dense.DenseLoader` with joint image + mask + box augmentation."""

    # (DenseDataset flag, what it is called, datasets that have it): what every split must carry
    annotation: tuple[str, str, str] = ("has_masks", "masks", "fashion-scenes or voc:DIR")

    def load_data(self, cfg, train: Any, val: Any, test: Any) -> tuple[Any, Any, Any]:
        train, val, test = super().load_data(cfg, train, val, test)
        flag, what, hint = self.annotation
        for split, ds in (("train", train), ("val", val), ("test", test)):
            if ds is not None and not getattr(ds, flag, False):
                raise DataError(f"{cfg.data} ({split}) has no {what}; use {hint}")
        return train, val, test

    def loader(self, dataset: Any, cfg, *, batch_size: int, device: torch.device, rank: int, world_size: int,
               return_indices: bool):
        from cnnlab.data.dense import build_dense_loader

        return build_dense_loader(dataset, batch_size=batch_size, shuffle=True, drop_last=False,
                                  augment=None if cfg.augment == "none" else cfg.augment, seed=cfg.seed,
                                  device=device, rank=rank, world_size=world_size, channels_last=cfg.channels_last)


class _Everything(dict):
    """A metrics stand-in whose every key exists: lets ``columns`` list its column names."""

    def __missing__(self, key: str) -> None:
        return None


# ============================================================================ classification
def compute_loss(output: Any, target: torch.Tensor, criterion: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits). With auxiliary heads (GoogLeNet/Inception training mode):
    loss = CE(logits) + aux_weight * sum CE(aux_i)  (Szegedy et al. 2015, §5)."""
    if isinstance(output, AuxOutputs):
        loss = criterion(output.logits, target)
        for aux in output.aux:
            loss = loss + output.aux_weight * criterion(aux, target)
        return loss, output.logits
    return criterion(output, target), output


class ClassificationTask(Task):
    """Image -> one of K classes: cross-entropy (label smoothing, auxiliary heads, sample weights),
    top-1/top-5, per-class accuracy and the confusion matrix, flip/crop TTA."""

    name = "classification"
    score = "top1"
    score_label = "acc"
    train_score = "top1"
    loss_label = "cross-entropy loss"
    tta_modes = TTA_MODES

    def split_val(self, train: Any, cfg) -> tuple[Any, Any]:
        from cnnlab.data import stratified_split

        return stratified_split(train, val_fraction=cfg.val_fraction, seed=cfg.seed)

    def build_model(self, cfg, spec: DataSpec) -> tuple[nn.Module, str, dict]:
        """``batch_norm`` on/off: families with ``NAME``/``NAME_bn`` twins (VGG) switch variant; other
        builders receive ``batch_norm=`` as a keyword, and those without the switch say so."""
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
            model = create_model(name, num_classes=spec.num_classes, in_chans=spec.in_chans,
                                 img_size=spec.img_size, **kwargs)
        except TypeError as e:
            text = str(e)
            if "unexpected keyword" in text or "multiple values" in text:
                bad = text.split("'")[-2] if "'" in text else "?"
                hint = " (batch_norm on/off exists only for families that allow it)" if bad == "batch_norm" else ""
                raise ConfigError(f"model {cfg.model} does not accept the option {bad!r}{hint}") from None
            raise
        except ValueError as e:  # a builder rejecting an option's value (e.g. FastNet's stem)
            raise ConfigError(f"model {cfg.model}: {e} (from model_kwargs {kwargs})") from None
        return model, name, kwargs

    def expected_output(self, spec: DataSpec, batch: int) -> tuple[int, ...]:
        return (batch, spec.num_classes)

    def criterion(self, cfg, weighted: bool) -> Callable[..., torch.Tensor]:
        return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="none" if weighted else "mean")

    def loader(self, dataset: Any, cfg, *, batch_size: int, device: torch.device, rank: int, world_size: int,
               return_indices: bool):
        from cnnlab.data import build_loader

        return build_loader(dataset, batch_size=batch_size, shuffle=True, drop_last=False, augment=cfg.augment,
                            seed=cfg.seed, device=device, rank=rank, world_size=world_size,
                            channels_last=cfg.channels_last, return_indices=return_indices)

    def step(self, model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
        x, y = batch[0], batch[1]
        x = add_input_noise(resize_input(x, ctx.img_size or ctx.spec.img_size), ctx.cfg.input_noise)
        output = model(x)
        loss, logits = compute_loss(output, y, ctx.criterion)
        weights = None if ctx.sample_weights is None else ctx.sample_weights[batch[2].to(ctx.sample_weights.device)]
        if weights is not None:
            loss = (loss * weights).mean()
        loss, parts = sum_losses(loss)
        if isinstance(output, AuxOutputs):  # the main head's loss apart (train_main_loss), comparable to a net
            main = ctx.criterion(logits.detach(), y)  # without auxiliary heads
            parts = {"main_loss": (main * weights).mean() if weights is not None else main}
        return StepOutput(loss=loss, n=y.shape[0], score_sum=(logits.argmax(1) == y).sum().float(),
                          score_count=float(y.shape[0]), parts=parts or None)

    def evaluate(self, model: nn.Module, data: Any, spec: DataSpec, *, batch_size: int, device: torch.device,
                 amp: str, channels_last: bool, tta: str = "none") -> dict[str, Any]:
        from cnnlab.train.metrics import evaluate

        return evaluate(model, data, batch_size=batch_size, device=device, amp=amp, channels_last=channels_last,
                        prepare=lambda x: resize_input(x, spec.img_size), num_classes=spec.num_classes, tta=tta)

    def columns(self, prefix: str, metrics: dict[str, Any]) -> dict[str, Any]:
        return {f"{prefix}_loss": metrics["loss"], f"{prefix}_top1": metrics["top1"],
                f"{prefix}_top5": metrics["top5"]}

    pictures = "confusion_matrix.png"

    def final_line(self, f: dict[str, Any]) -> str:
        tta = f" with {f['tta']} TTA (without: {100 * f['top1_no_tta']:.2f}%)" if f.get("tta") else ""
        return (f"final {f['split']} top-1 {100 * f['top1']:.2f}%{tta}, top-5 {100 * f['top5']:.2f}%, "
                f"loss {f['loss']:.4f}")

    def report_lines(self, r: dict[str, Any]) -> list[str]:
        width = max(len(c) for c in r["classes"])
        return [f"{r['checkpoint']} on {r['data']}/{r['split']} ({r['n']} images, TTA {r['tta']}):",
                f"  loss {r['loss']:.4f}  top-1 {100 * r['top1']:.2f}%  top-5 {100 * r['top5']:.2f}%",
                *(f"  {name:<{width}}  {100 * acc:6.2f}%" for name, acc in zip(r["classes"], r["per_class"]))]

    def plots(self, run_dir: Path, final: dict[str, Any], *, model: nn.Module, data: Any, spec: DataSpec,
              title: str) -> None:
        from cnnlab.train.runlog import plot_confusion

        if final.get("confusion"):
            plot_confusion(run_dir / "confusion_matrix.png", final["confusion"], spec.classes,
                           f"{title}: top-1 {100 * final['top1']:.2f}%")


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make ``TrainConfig(task=name)`` build ``factory()``; each task package registers itself on import."""
    TASKS.register(name, factory)


def get_task(name: str) -> Task:
    """The task object for ``TrainConfig.task``; an unknown name is one error naming the known ones."""
    return TASKS.get(name)()


register_task("classification", ClassificationTask)
