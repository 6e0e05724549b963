"""Inference: images -> the tensors a model expects -> top-k class names with probabilities.

The eval transform is the one the model's weights were trained with (torchvision's
``ImageClassification``): resize the shorter side to ``resize_size``, center-crop ``input_size``,
scale to [0, 1], normalise with ``mean``/``std``. These values travel with the model as
``model.pretrained_cfg["weights"]`` (set when weights are loaded); a model without weights falls
back to its own ``mean``/``std`` at its ``img_size`` (crop fraction 0.875, none for small inputs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from cnnlab.errors import ConfigError, DataError
from cnnlab.models import IMAGENET_MEAN, IMAGENET_STD, SMALL_INPUT_MAX

ImageLike = Image.Image | str | os.PathLike

_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC,
                  "nearest": InterpolationMode.NEAREST}

__all__ = ["classify", "load_image", "preprocess", "preprocess_config"]


def preprocess_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The eval transform for a model's ``pretrained_cfg``: input/resize size, interpolation, mean, std.

    Weights' own values win (``cfg["weights"]``); otherwise the model's mean/std at its
    ``img_size`` with resize ``img_size / 0.875`` (``img_size`` itself for small inputs).
    """
    weights = cfg.get("weights") or {}
    size = int(weights.get("input_size") or cfg.get("img_size") or cfg.get("default_size") or 224)
    default_resize = size if size <= SMALL_INPUT_MAX else round(size / 0.875)
    out = {
        "input_size": size,
        "resize_size": int(weights.get("resize_size") or default_resize),
        "interpolation": weights.get("interpolation") or "bilinear",
        "mean": tuple(weights.get("mean") or cfg.get("mean") or IMAGENET_MEAN),
        "std": tuple(weights.get("std") or cfg.get("std") or IMAGENET_STD),
        "in_chans": int(cfg.get("in_chans", 3)),
    }
    if out["interpolation"] not in _INTERPOLATION:
        raise ConfigError(f"unknown interpolation {out['interpolation']!r}; use one of {', '.join(_INTERPOLATION)}")
    return out


def load_image(image: ImageLike) -> Image.Image:
    """Open an image file fully (decoded now, so a truncated file fails here with its name)."""
    if isinstance(image, Image.Image):
        return image
    path = Path(image)
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"cannot read image {path}: it is a directory") from None
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {path}: not an image format Pillow recognises") from None
    except (OSError, ValueError, SyntaxError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read image {path}: {reason}") from None


def image_tensor(image: ImageLike, channels: int) -> torch.Tensor:
    """An image file as uint8 ``[C, H, W]`` at its own size, in ``channels`` (1: grayscale, 3: RGB), the layout
    of the in-memory datasets (dense predictions are drawn and mapped back at this size)."""
    img = load_image(image).convert("L" if channels == 1 else "RGB")
    u8 = torch.from_numpy(np.asarray(img).copy())
    return u8[None] if u8.ndim == 2 else u8.permute(2, 0, 1)


def preprocess(image: ImageLike, cfg: dict[str, Any]) -> torch.Tensor:
    """One image (PIL image or path) -> a ``(C, H, W)`` float tensor for the model with ``cfg``.

    ``cfg`` is ``model.pretrained_cfg``. Resize shorter side -> center crop -> [0, 1] ->
    normalise. One-channel models get the grayscale image, normalised with the mean of the
    channel statistics (their first conv holds the summed RGB filters, see ``adapt_input_conv``).
    """
    p = preprocess_config(cfg)
    img = load_image(image)
    mean, std = p["mean"], p["std"]
    if p["in_chans"] == 1:
        img = img.convert("L")
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    elif p["in_chans"] == 3:
        img = img.convert("RGB")
    else:
        raise ConfigError(f"images have 1 or 3 channels; this model expects in_chans={p['in_chans']}")
    img = TF.resize(img, p["resize_size"], interpolation=_INTERPOLATION[p["interpolation"]], antialias=True)
    img = TF.center_crop(img, p["input_size"])
    x = TF.pil_to_tensor(img).float().div_(255)
    return TF.normalize(x, list(mean), list(std))


def _class_names(model: nn.Module, width: int, class_names: Sequence[str] | None) -> list[str]:
    if class_names is not None:
        if len(class_names) != width:
            raise ConfigError(f"{len(class_names)} class names given for a model with {width} outputs")
        return list(class_names)
    cats = (getattr(model, "pretrained_cfg", {}).get("weights") or {}).get("categories")
    if cats and len(cats) == width:
        return list(cats)
    return [str(i) for i in range(width)]


def classify(model: nn.Module, images: ImageLike | Sequence[ImageLike] | torch.Tensor, topk: int = 5,
             class_names: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
    """Top-``topk`` ``(class name, probability)`` for each image, most likely first.

    ``images``: one image/path, a list of them, or an already preprocessed ``(N, C, H, W)`` tensor.
    Names come from ``class_names``, else the weights' categories (when the head still has
    their width), else the class index. Runs in eval mode under ``torch.inference_mode`` and
    restores the model's train/eval mode afterwards.
    """
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ConfigError(f"topk must be an integer >= 1, got {topk!r}")
    if isinstance(images, torch.Tensor):
        batch = images if images.dim() == 4 else images.unsqueeze(0)
    else:
        items = [images] if isinstance(images, (Image.Image, str, os.PathLike)) else list(images)
        if not items:
            return []
        cfg = getattr(model, "pretrained_cfg", {})
        batch = torch.stack([preprocess(img, cfg) for img in items])
    param = next(model.parameters(), None)
    if param is not None:
        batch = batch.to(param.device, param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(batch)
    finally:
        model.train(was_training)
    logits = out.logits if hasattr(out, "logits") else out
    probs = F.softmax(logits.float(), dim=1)
    names = _class_names(model, probs.shape[1], class_names)
    values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [[(names[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())] for vs, ix in zip(values, indices)]
