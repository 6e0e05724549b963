"""``MODEL|RUN``: the model a command works on, from a zoo name (with weights) or a training run.

``cnnlab viz`` and ``cnnlab export`` accept either a registered name (``efficientnet_lite0``, built
with ``weights``: ``"imagenet"``, a weights file, or ``None`` for random initialisation) or a run
directory / checkpoint file written by ``cnnlab train``. Both come back with the class names and
the eval preprocessing that belong to the weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.errors import CheckpointError, UnknownModelError
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.task import get_task

__all__ = ["LoadedModel", "load_model"]


@dataclass
class LoadedModel:
    """A model in eval mode on the CPU, with what is needed to feed it and read its output."""

    model: nn.Module
    name: str  # registry name (or the module's class name)
    origin: str  # where the weights came from: a package, a hub file, a checkpoint, "random init"
    class_names: list[str]

    @property
    def preprocess(self) -> dict[str, Any]:
        """The eval transform (:func:`cnnlab.predict.preprocess_config`) of the model's weights."""
        from cnnlab.predict import preprocess_config

        return preprocess_config(getattr(self.model, "pretrained_cfg", {}))


def _class_names(model: nn.Module, given: list[str] | None = None) -> list[str]:
    cfg = getattr(model, "pretrained_cfg", {})
    width = cfg.get("num_classes") or 0
    names = given or (cfg.get("weights") or {}).get("categories") or []
    return list(names) if len(names) == width else [str(i) for i in range(width)]


def load_model(source: str | os.PathLike | nn.Module | LoadedModel, weights: str | None = "imagenet",
               tasks: tuple[str, ...] = ("classification",)) -> LoadedModel:
    """``source``: a registered model name, a run directory / checkpoint file, or a module.

    ``tasks``: the kinds of run the caller can use (``viz`` and ``predict`` take classifiers; ``export`` any
    task whose model is one forward pass); another run is one error naming the command for it.

    A name is built with ``weights`` (``"imagenet"``, a file path, or ``None``: random init); a run
    loads its best checkpoint (EMA weights if kept) and preprocesses like training did (the
    dataset's mean/std at the trained size). A module is used as it is.
    """
    if isinstance(source, LoadedModel):
        return source
    if isinstance(source, nn.Module):
        return LoadedModel(source.eval(), type(source).__name__, "module", _class_names(source))
    path = Path(source)
    if path.exists():
        ckpt = load_checkpoint(path)
        if ckpt.task not in tasks:
            raise CheckpointError(f"{ckpt.path} is a {ckpt.task} checkpoint; this command takes "
                                  f"{' or '.join(tasks)} models (a zoo name or a run); see "
                                  f"`{get_task(ckpt.task).command} --help` for what works on it")
        model = ckpt.build_model()
        return LoadedModel(model, ckpt.meta.get("model") or type(model).__name__, str(ckpt.path),
                           _class_names(model, ckpt.classes or None))
    from cnnlab.models import create_model, get_model_info

    try:
        get_model_info(str(source))
    except UnknownModelError as e:
        raise UnknownModelError(f"{e}; {str(source)!r} is not a run directory or checkpoint file either") from None
    w = None if weights in (None, "none", "random") else weights
    model = create_model(str(source), weights=w).eval()
    origin = (model.pretrained_cfg.get("weights") or {}).get("origin", "random init") if w else "random init"
    return LoadedModel(model, str(source), origin, _class_names(model))
