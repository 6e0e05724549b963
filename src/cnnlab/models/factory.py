"""``create_model``: a registered architecture at a chosen size, optionally with pretrained weights (timm's
``create_model``). Kept apart from the registry so that the weights module can read the registry below it."""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models._registry import get_model_info
from cnnlab.models.weights import load_into, resolve_weights

__all__ = ["create_model"]


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    weights: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    ``num_classes``, ``in_chans`` and ``img_size`` default to what the architecture was published
    for (1000 / 3 / 224 for ImageNet nets; 10 / 1 / 32 for LeNet-5; 10 / 3 / 32 for CIFAR nets).
    ``img_size`` <= 64 selects the family's small-input variant. ``weights``: ``None``, a file (``.safetensors`` or a
    torchvision-layout ``.pth``/``.pt``), ``"imagenet"`` (the default checkpoint if it is installed, else
    another one with a warning), ``"imagenet:TAG"`` (exactly that checkpoint, e.g. ``IMAGENET1K_V2``) or a
    torchvision weights enum member (``ResNet50_Weights.IMAGENET1K_V2``). Never a download; which
    checkpoint was loaded is recorded in ``model.pretrained_cfg["weights"]["tag"]``.
    """
    info = get_model_info(name)
    img_size = info.default_size if img_size is None else img_size
    num_classes = info.num_classes if num_classes is None else num_classes
    in_chans = info.in_chans if in_chans is None else in_chans
    _check_int("num_classes", num_classes, 0)
    _check_int("in_chans", in_chans, 1)
    _check_int("img_size", img_size, 1)
    if info.task != "classification" and num_classes < 1:
        raise ConfigError(f"{name} is a {info.task} model: num_classes must be >= 1 (background included)")
    if img_size < info.min_size:
        raise ConfigError(
            f"img_size={img_size} is too small for {name}: it needs at least {info.min_size}x{info.min_size}"
        )
    source = None
    if weights is not None:
        source = resolve_weights(info, weights)
        kwargs = {**source.model_kwargs, **kwargs}
    head_classes = num_classes
    if source is not None and num_classes != source.num_classes:
        head_classes = source.num_classes  # load the pretrained head, then replace it
    model = info.fn(num_classes=head_classes or info.num_classes, in_chans=in_chans, img_size=img_size, **kwargs)
    if source is not None:
        load_into(model, source, in_chans=in_chans)
        if head_classes != num_classes:
            model.reset_classifier(num_classes)
            model.pretrained_cfg["num_classes"] = num_classes
    elif num_classes == 0:
        model.reset_classifier(0)
    return model


def _check_int(what: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
