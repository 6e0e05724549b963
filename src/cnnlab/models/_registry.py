"""Model registry: ``@register_model``, ``list_models``, ``create_model`` (the timm interface).

Every variant is a builder function ``name(num_classes=1000, in_chans=3, img_size=224, **kw)``
decorated with ``@register_model(...)``; the decorator records a :class:`ModelInfo` (family, paper,
reference parameter count, torchvision twin, classifier / first-conv names, pretrained sources) and
makes the builder attach that information to the model it returns as ``model.pretrained_cfg``.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from cnnlab.errors import UnknownModelError
from cnnlab.registry import TASKS, Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Below this img_size a builder returns its small-input (CIFAR-style) variant: 3x3 stride-1 stem,
# no early max-pool (kuangliu/pytorch-cifar, weiaicunzai/pytorch-cifar100).
SMALL_INPUT_MAX = 64


@dataclass(frozen=True)
class PretrainedSource:
    """One place ImageNet weights can come from, with the preprocessing they expect.

    kind: ``"hub"`` -- a torchvision checkpoint ``file`` in the torch hub cache
    (``torch.hub.get_dir()/checkpoints``); ``"package"`` -- an installed Python package, read by
    ``loader`` (``"module:function"`` returning a state_dict already in cnnlab's key layout).
    ``model_kwargs`` are passed to the builder so the architecture matches the weights
    (e.g. TF "same" padding for weights converted from TensorFlow).
    """

    kind: str
    file: str = ""
    loader: str = ""
    package: str = ""
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    top1: float | None = None
    source: str = ""
    tag: str = "IMAGENET1K"  # picks this checkpoint: weights="imagenet:TAG" (torchvision's enum member names)


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one variant (timm's ``pretrained_cfg`` plus references)."""

    name: str
    fn: Callable[..., nn.Module]
    family: str
    paper: str
    task: str = "classification"  # or "segmentation": forward returns [B, K, H, W] logits at the input size
    torchvision: str | None = None  # torchvision builder with the identical architecture/state_dict
    params: int | None = None  # reference parameter count at the defaults below (num_classes, in_chans)
    params_source: str = ""
    params_rtol: float = 0.0  # 0: exact; >0 when the reference is a rounded paper figure
    default_size: int = 224
    num_classes: int = 1000  # the dataset the architecture was published for: 10 for LeNet-5 / CIFAR nets
    in_chans: int = 3
    min_size: int = 28  # smallest img_size create_model accepts
    first_conv: str = "conv1"
    classifier: str = "fc"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    pretrained: tuple[PretrainedSource, ...] = ()  # sources beyond the torchvision twin's checkpoints
    tv_weight_kwargs: dict[str, Any] = field(default_factory=dict)  # builder kwargs torchvision's weights need

    def as_cfg(self) -> dict[str, Any]:
        cfg = asdict(self)
        cfg.pop("fn")
        return cfg


MODELS: Registry[ModelInfo] = Registry("model", UnknownModelError, hint="`cnnlab models` lists all {n}")


def register_model(
    fn: Callable[..., nn.Module] | None = None, **info: Any
) -> Callable[..., nn.Module] | Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder; keyword arguments fill :class:`ModelInfo`. Usable bare or with arguments."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__

        @functools.wraps(builder)
        def build(**kwargs: Any) -> nn.Module:
            info = MODELS.get(name)
            kwargs.setdefault("num_classes", info.num_classes)
            kwargs.setdefault("in_chans", info.in_chans)
            kwargs.setdefault("img_size", info.default_size)
            model = builder(**kwargs)
            cfg = info.as_cfg()
            cfg.update(img_size=kwargs["img_size"], in_chans=kwargs["in_chans"], num_classes=kwargs["num_classes"],
                       model_kwargs={k: v for k, v in kwargs.items()
                                     if k not in ("num_classes", "in_chans", "img_size")})
            model.pretrained_cfg = cfg
            return model

        info.setdefault("family", builder.__module__.rsplit(".", 1)[-1])
        info.setdefault("paper", "")
        MODELS.register(name, ModelInfo(name=name, fn=build, **info))
        return build

    return decorate(fn) if fn is not None else decorate


def list_models(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by an fnmatch ``pattern`` ("resnet*") and by
    ``task`` (a registered task: ``"classification"``, ``"segmentation"``, ...; ``None``: all)."""
    if task is not None:
        TASKS.get(task)  # an unknown task is one error naming the known ones
    names = [n for n, info in MODELS.items() if task is None or info.task == task]
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; unknown names raise with the closest matches."""
    return MODELS.get(name)
