"""``TrainConfig``: every knob of a training run as one plain dataclass (nanoGPT's style).

A YAML file (``--config run.yaml``) and the CLI flags map 1:1 onto the fields: the YAML keys are
the field names, the flags are ``--field-name``. Precedence: recipe < YAML file < CLI flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.registry import TASKS

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "step", "multistep", "cosine", "onecycle", "cyclic")
AMP_MODES = ("off", "bf16", "fp16", "auto")
PROGRESS_MODES = ("auto", "bar", "line", "none")
TTA_MODES = ("none", "flip", "crop", "flip,crop", "shift", "flip,shift")


def canonical_tta(text: str, what: str = "tta") -> str:
    """``text`` as one of :data:`TTA_MODES` (views in any order: ``crop,flip`` -> ``flip,crop``), else one
    clear ConfigError naming the accepted modes."""
    parts = sorted(str(text).replace(" ", "").split(","), key=lambda t: (t != "flip", t))
    mode = ",".join(parts)
    if mode not in TTA_MODES:
        raise ConfigError(f"{what} {text!r} is not one of {', '.join(TTA_MODES)}")
    return mode


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """One training run. Defaults give plain SGD on the model's default input.

    Batch size is the *global* batch per optimizer micro-step: with ``--nproc N`` each process
    takes ``batch_size / N`` of it, so a config means the same optimisation on 1 or N processes.
    The effective batch per optimizer step is ``batch_size * accum_steps``.
    """

    # what to train
    task: str = _f("classification", "a registered task: classification, segmentation, ... (what the data, "
                   "loss and metrics are)")
    model: str = _f("lenet5", "registered model name (`cnnlab models`)")
    model_kwargs: dict = _f({}, "extra builder keyword arguments, JSON on the CLI")
    data: str = _f("fashion-mnist", "dataset name or imagefolder:PATH (see `cnnlab data info`)")
    data_dir: str | None = _f(None, "dataset directory (default: the dataset's standard place)")
    train_subset: int = _f(0, "use only the first N training images of a seeded permutation (0 = all)")
    val_fraction: float = _f(0.0, "hold out this stratified fraction of the training set for validation")
    img_size: int | None = _f(None, "model input size (default: the dataset's image size)")
    train_sizes: str = _f("", "progressive resizing: SIZE:EPOCHS[,SIZE:EPOCHS...] trained at smaller inputs first, "
                              "then img_size (e.g. 20:6; Howard, fast.ai DAWNBench 2018)")
    # length and batch
    epochs: int = _f(10, "number of epochs")
    batch_size: int = _f(128, "global mini-batch size (split across processes)")
    accum_steps: int = _f(1, "gradient accumulation: micro-batches per optimizer step")
    eval_batch_size: int = _f(512, "batch size for evaluation")
    # optimizer
    optimizer: str = _f("sgd", "|".join(OPTIMIZERS))
    lr: float = _f(0.01, "peak learning rate")
    momentum: float = _f(0.0, "SGD momentum / RMSprop momentum (0 = plain SGD)")
    nesterov: bool = _f(False, "Nesterov momentum (SGD, needs momentum > 0)")
    betas: list = _f([0.9, 0.999], "Adam/AdamW betas, e.g. 0.9,0.999")
    eps: float = _f(1e-8, "Adam/AdamW/RMSprop/Adagrad epsilon")
    alpha: float = _f(0.99, "RMSprop smoothing constant")
    weight_decay: float = _f(0.0, "L2 weight decay (AdamW: decoupled decay)")
    no_decay_norm_bias: bool = _f(False, "exempt norm-layer weights and all biases from weight decay and L1")
    l1: float = _f(0.0, "L1 penalty coefficient: loss += l1 * sum|w| over the decayed weights")
    grad_clip: float = _f(0.0, "clip the global gradient norm to this value (0 = off)")
    # schedule
    schedule: str = _f("constant", "|".join(SCHEDULES))
    step_size: int = _f(7, "step schedule: decay every this many epochs (the seed's StepLR(7, 0.1))")
    gamma: float = _f(0.1, "step/multistep decay factor")
    milestones: list = _f([], "multistep: epochs at which lr *= gamma, e.g. 30,60")
    min_lr: float = _f(0.0, "cosine/cyclic: final learning rate (of each cycle)")
    cycles: int = _f(1, "cyclic schedule: number of cosine cycles; a snapshot checkpoint is saved at the end of "
                        "each (Huang et al. 2017)")
    warmup_epochs: float = _f(0.0, "linear warm-up from 0 over this many epochs (fractions allowed)")
    onecycle_pct: float = _f(0.3, "onecycle: fraction of the run spent rising to the peak lr")
    onecycle_div: float = _f(25.0, "onecycle: start lr = lr / onecycle_div")
    onecycle_final_div: float = _f(1e4, "onecycle: final lr = lr / (onecycle_div * onecycle_final_div)")
    # regularization
    label_smoothing: float = _f(0.0, "label smoothing epsilon of the cross-entropy")
    dropout: float | None = _f(None, "override p of every dropout layer in the model")
    batch_norm: bool | None = _f(None, "batch norm on/off: VGG switches NAME/NAME_bn, other builders get batch_norm=")
    augment: str = _f("none", "batched augmentation spec, e.g. crop,flip (see cnnlab.data.BatchAugment)")
    input_noise: float = _f(0.0, "std of Gaussian noise added to the normalized training inputs")
    ema_decay: float = _f(0.0, "exponential moving average of the weights (e.g. 0.999; 0 = off); evaluated with EMA")
    early_stop_patience: int = _f(0, "stop after this many epochs without validation improvement (0 = off)")
    early_stop_metric: str = _f("auto", "auto (the task's score: val_top1, val_mean_iu) | val_loss | any val_ metric")
    restore_best: bool = _f(True, "after early stopping, restore the best epoch's weights")
    # evaluation
    eval_test: bool = _f(True, "evaluate on the test split after each epoch")
    eval_every: int = _f(1, "evaluate validation/test every N epochs and after the last (the best checkpoint and "
                            "early stopping see the evaluated epochs only)")
    tta: str = _f("none", "test-time augmentation for evaluation: " + "|".join(TTA_MODES))
    # run directory, logging, checkpoints
    out_dir: str | None = _f(None, "run directory (default runs/MODEL-DATA-TIMESTAMP)")
    ckpt_every_steps: int = _f(0, "also checkpoint every N optimizer steps inside an epoch (0 = epoch ends)")
    log_every_steps: int = _f(50, "TensorBoard train-loss interval in optimizer steps")
    progress: str = _f("auto", "|".join(PROGRESS_MODES) + " (auto: bar on a terminal, else a line per epoch)")
    plots: bool = _f(True, "write curves.png and confusion_matrix.png at the end")
    tensorboard: bool = _f(True, "write TensorBoard events under RUN_DIR/tb")
    # reproducibility and speed
    seed: int = _f(0, "seed for initialisation, data order and augmentation")
    deterministic: bool = _f(False, "torch.use_deterministic_algorithms(True) (needed for bitwise resume on GPU)")
    device: str = _f("auto", "auto|cpu|cuda|cuda:N")
    threads: int = _f(0, "torch intra-op CPU threads (0 = torch's default: the physical cores, or OMP_NUM_THREADS)")
    amp: str = _f("off", "autocast: " + "|".join(AMP_MODES) + " (auto: bf16 where the CPU/GPU computes it natively)")
    channels_last: bool = _f(False, "NHWC memory format (tensor-core GPUs; oneDNN CPUs: 1.8x for FastNet in bf16)")
    compile: bool = _f(False, "torch.compile the model (30-50 s compile on CPU)")
    nproc: int = _f(1, "DistributedDataParallel processes on this machine (gloo on CPU, nccl on GPU)")

    def __post_init__(self) -> None:
        self.validate()

    def size_schedule(self) -> list[tuple[int, int]]:
        """``train_sizes`` as ``[(size, epochs), ...]``; they must leave the last epoch(s) at full size."""
        out = []
        for part in filter(None, str(self.train_sizes).replace(" ", "").split(",")):
            try:
                size, epochs = (int(v) for v in part.split(":"))
            except ValueError:
                size = epochs = 0
            if size < 1 or epochs < 1:
                raise ConfigError(f"train_sizes={self.train_sizes!r}: each part must be SIZE:EPOCHS with positive "
                                  "integers, e.g. 20:6 or 16:3,22:3")
            out.append((size, epochs))
        if sum(e for _, e in out) >= self.epochs:
            raise ConfigError(f"train_sizes={self.train_sizes!r} covers {sum(e for _, e in out)} of the "
                              f"{self.epochs} epochs; leave at least the last one at the full input size")
        return out

    def train_size_at(self, epoch: int) -> int | None:
        """The training input size of 0-based ``epoch`` under ``train_sizes`` (None: the full size)."""
        end = 0
        for size, epochs in self.size_schedule():
            end += epochs
            if epoch < end:
                return size
        return None

    # ------------------------------------------------------------------ checks
    def validate(self) -> TrainConfig:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")

        def at_least(name: str, minimum: float) -> None:
            value = getattr(self, name)
            integer = _FIELD_TYPES[name].startswith("int")
            kinds = int if integer else int | float
            if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
                what = "an integer" if integer else "a number"
                raise ConfigError(f"{name} must be {what} >= {minimum}, got {value!r}")

        for name in ("task", "model", "data", "augment", "early_stop_metric"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("data_dir", "out_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | Path):
                raise ConfigError(f"{name} must be a path (string), got {value!r}")
            if isinstance(value, Path):
                setattr(self, name, str(value))
        self.betas = _numbers(self.betas, "betas", float)
        self.milestones = _numbers(self.milestones, "milestones", int)
        if isinstance(self.tta, str):  # views in any order; an unknown mode is one error naming the known ones
            self.tta = canonical_tta(self.tta)
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("amp", AMP_MODES),
                              ("progress", PROGRESS_MODES), ("tta", TTA_MODES), ("task", TASKS.names())):
            choice(name, allowed)
        if self.early_stop_metric != "auto" and not self.early_stop_metric.startswith("val_"):
            raise ConfigError(f"early_stop_metric={self.early_stop_metric!r} must be auto or a validation "
                              "metric such as val_loss, val_top1, val_mean_iu")
        for name in ("epochs", "batch_size", "accum_steps", "eval_batch_size", "nproc", "step_size", "cycles",
                     "eval_every"):
            at_least(name, 1)
        for name in ("lr", "momentum", "weight_decay", "l1", "grad_clip", "label_smoothing", "input_noise",
                     "ema_decay", "warmup_epochs", "early_stop_patience", "ckpt_every_steps", "threads",
                     "train_subset", "min_lr", "eps", "log_every_steps"):
            at_least(name, 0)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        self.size_schedule()
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ConfigError("nesterov needs optimizer=sgd and momentum > 0")
        if len(self.betas) != 2:
            raise ConfigError(f"betas needs two values, got {self.betas}")
        if self.schedule == "multistep" and not self.milestones:
            raise ConfigError("schedule=multistep needs milestones, e.g. --milestones 30,60")
        self._check_cycles()
        if not 0.0 < self.onecycle_pct < 1.0:
            raise ConfigError(f"onecycle_pct must be in (0, 1), got {self.onecycle_pct}")
        if self.early_stop_patience and self.val_fraction <= 0:
            raise ConfigError("early stopping needs a validation split: set val_fraction (e.g. 0.1)")
        if self.img_size is not None:
            at_least("img_size", 1)
        if not isinstance(self.model_kwargs, dict):
            raise ConfigError(f"model_kwargs must be a mapping, got {self.model_kwargs!r}")
        return self

    def _check_cycles(self) -> None:
        """schedule=cyclic: whole epochs per cycle (snapshots at epoch ends), warm-up inside the first cycle."""
        if self.schedule != "cyclic":
            if self.cycles != 1:
                raise ConfigError(f"cycles={self.cycles} needs schedule=cyclic (cycles applies to no other schedule)")
            return
        if self.epochs % self.cycles:
            raise ConfigError(f"schedule=cyclic needs epochs to be a multiple of cycles (whole epochs per cycle); "
                              f"got epochs={self.epochs}, cycles={self.cycles}")
        if self.warmup_epochs >= self.epochs // self.cycles:
            raise ConfigError(f"schedule=cyclic needs warmup_epochs < epochs/cycles (warm-up inside the first "
                              f"cycle); got warmup_epochs={self.warmup_epochs}, {self.epochs // self.cycles} "
                              "epochs per cycle")

    # ------------------------------------------------------------- conversion
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
        """A config from ``values`` on top of ``base`` (default: the defaults); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = [k for k in values if k not in names]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown training option {key!r}{hint}")
        merged = base.to_dict() if base is not None else {}
        merged.update(values)
        return cls(**merged)

    @classmethod
    def from_yaml(cls, path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
        import yaml

        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config file {path}: {str(e).splitlines()[0]}") from None
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping of option: value")
        return cls.from_dict(values, base)

    def to_yaml(self, path: str | Path) -> None:
        import yaml

        from cnnlab._io import atomic_write

        atomic_write(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False).encode())

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict(changes, self)


_FIELD_TYPES = {f.name: str(f.type) for f in fields(TrainConfig)}


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list, got {value!r}")
    return value


def _numbers(value: Any, name: str, kind: type) -> list:
    out = []
    for v in _as_list(value, name):
        try:
            if isinstance(v, bool) or (kind is int and isinstance(v, float) and not v.is_integer()):
                raise ValueError
            out.append(kind(v))
        except (TypeError, ValueError):
            what = "integers" if kind is int else "numbers"
            raise ConfigError(f"{name} must be a list of {what}, e.g. {'30,60' if kind is int else '0.9,0.999'}; "
                              f"got {value!r}") from None
    return out


def cli_overrides(args: Any) -> dict[str, Any]:
    """The TrainConfig fields that were given on the command line (argparse dest == field name)."""
    out = {}
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if f.name == "model_kwargs" and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--model-kwargs must be a JSON object: {e}") from None
        out[f.name] = value
    return out


def add_config_arguments(parser: Any) -> None:
    """One ``--field-name`` flag per TrainConfig field (default None = not given)."""
    import argparse

    group = parser.add_argument_group("training options (same names as TrainConfig / YAML keys)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text += f" [default: {default}]"
        kind = f.type if isinstance(f.type, str) else str(f.type)
        if kind.startswith("bool"):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        elif kind.startswith("int"):
            group.add_argument(flag, dest=f.name, type=int, default=None, metavar="N", help=help_text)
        elif kind.startswith("float"):
            group.add_argument(flag, dest=f.name, type=float, default=None, metavar="X", help=help_text)
        else:  # str, list (comma-separated), dict (JSON)
            group.add_argument(flag, dest=f.name, type=str, default=None, metavar="S", help=help_text)
