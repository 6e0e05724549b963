"""Checkpoints without pickle: tensors in ``.safetensors``, everything else as JSON, written atomically.

One checkpoint is one file, ``NAME.safetensors``:

- tensors ``model/<key>`` (the model's state_dict), ``ema/<key>`` (the weight EMA, if any) and
  ``optim/<param index>/<key>`` (optimizer tensors: momentum buffers, Adam moments, step counts);
- the safetensors header's metadata ``{"format": "cnnlab-checkpoint", "version": "1", "meta": JSON}``
  holds the rest: model name/kwargs, class names, normalisation, the TrainConfig, epoch and step,
  scheduler state, optimizer hyper-parameters, RNG states (as lists of ints), metric history.

Keeping the JSON inside the tensor file makes a checkpoint a single file, so ``os.replace`` of a
fully written temporary file is atomic: a run killed at any instant leaves either the old or the
new checkpoint, never a mix. A readable copy of the JSON is written next to it as ``NAME.json``
(informational only; loading never reads it).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab._io import atomic_write
from cnnlab.errors import CheckpointError

FORMAT = "cnnlab-checkpoint"
VERSION = "1"


# ---------------------------------------------------------------- RNG states as JSON
def get_rng_state() -> dict[str, Any]:
    """Every global RNG the training loop can touch (dropout, noise), as JSON-able lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# ------------------------------------------------------------- optimizer state split
def split_optimizer_state(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch optimizer state_dict -> (tensors for safetensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, dict[str, Any]] = {}
    for idx, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                extra.setdefault(str(idx), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "extra": extra}


def join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, values in meta.get("extra", {}).items():
        state.setdefault(int(idx), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ------------------------------------------------------------------------ writing
def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", copy=True).contiguous()


def save_checkpoint(path: str | Path, meta: dict[str, Any], model_state: dict[str, torch.Tensor],
                    optimizer_state: dict[str, Any] | None = None,
                    ema_state: dict[str, torch.Tensor] | None = None, sidecar: bool = True) -> Path:
    """Write ``path`` (``.safetensors``) atomically: temp file in the same directory, fsync, os.replace."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {f"model/{k}": _cpu(v) for k, v in model_state.items()}
    if ema_state is not None:
        tensors.update({f"ema/{k}": _cpu(v) for k, v in ema_state.items()})
    meta = dict(meta)
    if optimizer_state is not None:
        opt_tensors, opt_meta = split_optimizer_state(optimizer_state)
        tensors.update({k: _cpu(v) for k, v in opt_tensors.items()})
        meta["optimizer"] = opt_meta
    meta_json = json.dumps(meta, allow_nan=True)
    data = save(tensors, metadata={"format": FORMAT, "version": VERSION, "meta": meta_json})
    atomic_write(path, data)
    if sidecar:
        readable = {k: v for k, v in meta.items() if k not in ("rng", "optimizer")}
        atomic_write(path.with_suffix(".json"), json.dumps(readable, indent=1).encode())
    return path




# ------------------------------------------------------------------------ reading
@dataclass
class Checkpoint:
    """A loaded checkpoint: ``meta`` (the JSON) and ``tensors`` (name -> CPU tensor)."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def _prefixed(self, prefix: str) -> dict[str, torch.Tensor]:
        n = len(prefix)
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    @property
    def model_state(self) -> dict[str, torch.Tensor]:
        return self._prefixed("model/")

    @property
    def ema_state(self) -> dict[str, torch.Tensor] | None:
        state = self._prefixed("ema/")
        return state or None

    @property
    def optimizer_state(self) -> dict[str, Any] | None:
        if "optimizer" not in self.meta:
            return None
        return join_optimizer_state(self.tensors, self.meta["optimizer"])

    @property
    def config(self):  # -> TrainConfig
        from cnnlab.train.config import TrainConfig

        return TrainConfig.from_dict(self.meta["config"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or [])

    @property
    def task(self) -> str:
        """The task the checkpoint was trained for (checkpoints before tasks existed are classification)."""
        return self.meta.get("task", "classification")

    def require_task(self, task: str, verb: str) -> None:
        """One clear error when a command for ``task`` checkpoints is given another kind: it names the
        command that takes this one (``cnnlab segment eval`` for a segmentation run, ...)."""
        if self.task != task:
            from cnnlab.train.task import get_task

            own = get_task(self.task)
            hint = f"; use `{own.command} {verb}` for it" if verb in own.verbs else ""
            raise CheckpointError(f"{self.path} is a {self.task} checkpoint, but `{get_task(task).command} "
                                  f"{verb}` takes {task} checkpoints{hint}")

    def eval_state(self) -> dict[str, torch.Tensor]:
        """The weights to evaluate: the EMA's if the run kept one, else the model's."""
        ema = self.ema_state
        if ema is not None:
            return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}
        return self.model_state

    def build_model(self, model: nn.Module | None = None, use_ema: bool = True) -> nn.Module:
        """The trained model in eval mode on CPU (rebuilt from the registry unless ``model`` is given)."""
        if model is None:
            name = self.meta.get("model")
            if not name:
                raise CheckpointError(f"{self.path} holds a custom model; pass the module to load it into")
            from cnnlab.models import create_model

            m = self.meta
            model = create_model(name, num_classes=m["num_classes"], in_chans=m["in_chans"],
                                 img_size=m.get("model_img_size", m["img_size"]), **m.get("model_kwargs", {}))
        state = self.eval_state() if use_ema else self.model_state
        load_state(model, state, self.path)
        m = self.meta  # preprocess like training: the dataset's mean/std at the trained size
        model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), "weights": None, "img_size": m["img_size"],
                                "mean": tuple(m["mean"]), "std": tuple(m["std"]), "in_chans": m["in_chans"],
                                "num_classes": m["num_classes"]}
        return model.eval()


def load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        detail = " ".join(line.strip() for line in str(e).splitlines()[1:3])
        raise CheckpointError(f"{path} does not match the model ({first} {detail})".strip()) from None


def resolve_checkpoint(path: str | Path, prefer: str = "best") -> Path:
    """A checkpoint file from a file or a run directory (``best`` or ``last`` inside it)."""
    path = Path(path)
    if path.is_dir():
        order = ("best", "last") if prefer == "best" else ("last", "best")
        for name in order:
            candidate = path / f"{name}.safetensors"
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{path} holds no checkpoint (expected last.safetensors or best.safetensors)")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | Path, prefer: str = "best") -> Checkpoint:
    """Read a checkpoint file (or a run directory's best/last). Anything wrong -> CheckpointError."""
    from safetensors import safe_open

    path = resolve_checkpoint(path, prefer)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            if header.get("format") != FORMAT:
                raise CheckpointError(f"{path} is a safetensors file but not a cnnlab checkpoint "
                                      "(no cnnlab metadata); for bare weights use create_model(weights=...)")
            if header.get("version") != VERSION:
                raise CheckpointError(f"{path} has checkpoint format version {header.get('version')!r}; "
                                      f"this cnnlab reads version {VERSION}")
            meta = json.loads(header["meta"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except Exception as e:  # OSError, SafetensorError, JSON and key errors: all mean an unreadable file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated: {msg})") from None
    return Checkpoint(path=path, meta=meta, tensors=tensors)


def json_safe(obj: Any) -> Any:
    """``obj`` as JSON-able values (tensors as lists); what JSON cannot hold (functions) becomes None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return None  # functions (lr_lambdas) are rebuilt from the config
