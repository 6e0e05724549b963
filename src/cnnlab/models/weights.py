"""Loading pretrained weights: files (safetensors / torchvision ``.pth``), weight packages, hub cache.

Never downloads. ``.pth`` files are read with ``torch.load(weights_only=True)``, so no pickle code
runs. The preprocessing the weights expect (mean, std, sizes) travels with the model as
``model.pretrained_cfg["weights"]`` so ``predict`` and transfer learning apply it.
"""

from __future__ import annotations

import importlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import WeightsError
from cnnlab.models._registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, PretrainedSource


@dataclass
class ResolvedWeights:
    """A state_dict ready to load, with where it came from and how inputs must be prepared."""

    state_dict: dict[str, torch.Tensor]
    origin: str
    num_classes: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names shipped inside torchvision (no download)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.safetensors`` or a ``.pth``/``.pt``/``.bin`` file, safely.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` containers and DataParallel's
    ``module.`` prefix.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"weights {path} is a directory; pass a .safetensors or .pth/.pt file")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (accepted: \"imagenet\" or a path to a "
                           ".safetensors or .pth/.pt file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"cannot read weights file {path}: {first}") from None
    except Exception as e:  # e.g. safetensors_rust.SafetensorError, pickle.UnpicklingError
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"cannot read weights file {path} ({type(e).__name__}): {first}") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _meta(info: ModelInfo, src: PretrainedSource | None) -> dict[str, Any]:
    if src is None:
        return {"mean": list(info.mean), "std": list(info.std), "input_size": info.default_size,
                "resize_size": round(info.default_size / 0.875), "interpolation": "bilinear"}
    return {"mean": list(src.mean), "std": list(src.std), "input_size": src.input_size,
            "resize_size": src.resize_size, "interpolation": src.interpolation,
            "categories": imagenet_categories(), "top1": src.top1, "source": src.source}


def _head_classes(info: ModelInfo, sd: dict[str, torch.Tensor]) -> int:
    w = sd.get(f"{info.classifier}.weight")
    return int(w.shape[0]) if w is not None else 1000


def torchvision_sources(tv_name: str, model_kwargs: dict[str, Any] | None = None) -> list[PretrainedSource]:
    """Hub-cache sources for every ImageNet checkpoint torchvision publishes for ``tv_name``,
    torchvision's default first.

    File names, preprocessing and accuracy come from torchvision's own weight enums, so they
    stay exact without a copy here. ``model_kwargs`` are what the builder needs to match those
    checkpoints (e.g. ``transform_input=True`` for GoogLeNet / Inception-v3).
    """
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(tv_name)
    except (ValueError, KeyError):
        return []
    sources = []
    for w in sorted(enum, key=lambda w: w is not enum.DEFAULT):
        tf = w.transforms()
        metrics = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
        crop = tf.crop_size[0] if isinstance(tf.crop_size, list | tuple) else tf.crop_size
        resize = tf.resize_size[0] if isinstance(tf.resize_size, list | tuple) else tf.resize_size
        sources.append(PretrainedSource(
            kind="hub", file=w.url.rsplit("/", 1)[-1], mean=tuple(tf.mean), std=tuple(tf.std),
            input_size=int(crop), resize_size=int(resize), interpolation=tf.interpolation.value,
            model_kwargs=dict(model_kwargs or {}), top1=metrics.get("acc@1"), source=f"torchvision {w}"))
    return sources


def resolve_weights(info: ModelInfo, weights: str | os.PathLike) -> ResolvedWeights:
    """Find the weights named by ``weights`` (``"imagenet"`` or a path) for model ``info``.

    ``"imagenet"`` tries the model's registered sources (weight packages first), then every
    checkpoint of its torchvision twin in the torch hub cache.
    """
    if str(weights) != "imagenet":
        sd = read_state_dict(weights)
        return ResolvedWeights(sd, str(weights), _head_classes(info, sd), meta=_meta(info, None))
    looked: list[str] = []
    sources = list(info.pretrained)
    if info.torchvision:
        sources += torchvision_sources(info.torchvision, info.tv_weight_kwargs)
    for src in sources:
        if src.kind == "package":
            mod_name, _, fn_name = src.loader.partition(":")
            try:
                loader = getattr(importlib.import_module(mod_name), fn_name)
                sd = loader()
            except ImportError:
                looked.append(f"package {src.package} (not installed: pip install {src.package})")
                continue
            return ResolvedWeights(sd, f"package {src.package}", _head_classes(info, sd),
                                   dict(src.model_kwargs), _meta(info, src))
        if src.kind == "hub":
            path = hub_checkpoint_dir() / src.file
            if path.is_file():
                sd = read_state_dict(path)
                return ResolvedWeights(sd, str(path), _head_classes(info, sd),
                                       dict(src.model_kwargs), _meta(info, src))
            if str(path) not in looked:  # torchvision lists one file under several weight names
                looked.append(str(path))
    if not sources:
        raise WeightsError(f"no ImageNet weights are known for {info.name}; pass a file path instead")
    raise WeightsError(f"no ImageNet weights for {info.name} found; looked in: {'; '.join(looked)}")


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """RGB first-conv weights for ``in_chans`` inputs: summed for 1 channel, else tiled and rescaled."""
    if weight.shape[1] == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def load_into(model: nn.Module, weights: ResolvedWeights, in_chans: int = 3) -> None:
    """Load strictly; the first conv is adapted when ``in_chans`` differs from the weights'."""
    cfg = getattr(model, "pretrained_cfg", {})
    sd = dict(weights.state_dict)
    first = f"{cfg.get('first_conv', 'conv1')}.weight"
    if first in sd:
        sd[first] = adapt_input_conv(sd[first], in_chans)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if own[k].shape != sd[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {what} (e.g. {keys[0]})")
        raise WeightsError(f"weights from {weights.origin} do not fit {cfg.get('name', type(model).__name__)}: "
                           + ", ".join(parts))
    model.load_state_dict(sd, strict=True)
    if hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg["weights"] = {**weights.meta, "origin": weights.origin}


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ResolvedWeights", "adapt_input_conv", "imagenet_categories",
           "load_into", "read_state_dict", "resolve_weights"]
