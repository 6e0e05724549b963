"""Combining trained classifiers from their checkpoints: soft vote, hard (majority) vote, weighted vote.

- soft vote: the class of the highest mean softmax probability, ``argmax_k (1/M) sum_m p_m(k | x)``
  (Hansen & Salamon 1990; Lakshminarayanan et al. 2017 average probabilities);
- hard vote: the class most members predict (Breiman 1996, *Bagging predictors*, §2); ties go to the
  tied class with the highest summed probability;
- weighted hard vote: ``argmax_k sum_m alpha_m [T_m(x) = k]`` (SAMME's final classifier, Zhu et al. 2009).

Any saved checkpoints combine: the run directories of ``cnnlab bag``/``boost``, ordinary
``cnnlab train`` runs from other machines, or single checkpoint files -- e.g. the snapshots of one
``schedule=cyclic`` run (:func:`snapshot_paths`; snapshot ensembles, Huang et al. 2017). Each member is
evaluated with its own normalisation (the mean/std saved in its checkpoint); all must share the
classes, the input channels and the input size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.train.config import canonical_tta
from cnnlab.train.task import resize_input

VOTES = ("soft", "hard")


@dataclass
class Member:
    """A loaded member: display name, checkpoint file, its metadata and the model (eval mode)."""

    name: str
    path: Path
    meta: dict
    model: nn.Module


def load_member(path: str | Path, name: str | None = None) -> Member:
    """A run directory's final weights (``result.json``'s ``final_weights``, else ``last``) or a checkpoint
    file; a directory without a checkpoint is a one-line :class:`~cnnlab.errors.CheckpointError`."""
    from cnnlab.train.checkpoint import load_checkpoint

    path = Path(path)
    prefer = "last"
    if path.is_dir() and (path / "result.json").is_file():
        try:
            prefer = json.loads((path / "result.json").read_text()).get("final_weights", "last")
        except (OSError, json.JSONDecodeError):
            prefer = "last"
    ckpt = load_checkpoint(path, prefer=prefer)
    ckpt.require_task("classification", "ensemble")  # members vote per image
    label = name or (path.name if path.is_dir() else f"{path.parent.name}/{path.stem}")
    return Member(label, ckpt.path, ckpt.meta, ckpt.build_model())


def snapshot_paths(run_dir: str | Path) -> list[Path]:
    """The ``snapshot-K.safetensors`` files of a ``schedule=cyclic`` run, K = 1..M in order (Huang et al. 2017:
    one snapshot at the end of each cosine cycle); none is a one-line :class:`~cnnlab.errors.CheckpointError`."""
    from cnnlab.errors import CheckpointError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory (snapshots are expanded from run directories)")
    found = [(int(m.group(1)), p) for p in run_dir.glob("snapshot-*.safetensors")
             if (m := re.fullmatch(r"snapshot-(\d+)\.safetensors", p.name))]
    if not found:
        raise CheckpointError(f"{run_dir} has no snapshot-K.safetensors checkpoints; train it with "
                              "--schedule cyclic --cycles M to save one at the end of each cycle")
    return [p for _, p in sorted(found)]


def check_compatible(members: Sequence[Member]) -> None:
    """Every member must have the first one's classes, input channels and input size."""
    if not members:
        raise ConfigError("an ensemble needs at least one member (run directory or checkpoint)")
    first = members[0]
    for m in members[1:]:
        for key, what in (("classes", "classes"), ("num_classes", "number of classes"),
                          ("in_chans", "input channels"), ("img_size", "input size")):
            if m.meta.get(key) != first.meta.get(key):
                a, b = first.meta.get(key), m.meta.get(key)
                if key == "classes":
                    a, b = _short(a), _short(b)
                raise ConfigError(f"cannot ensemble {first.path} and {m.path}: different {what} ({a} vs {b})")


def _short(classes: list | None) -> str:
    if not classes:
        return "[]"
    return "[" + ", ".join(map(str, classes[:4])) + (", ..." if len(classes) > 4 else "") + "]"


@torch.inference_mode()
def member_probs(member: Member, data: Any, *, tta: str = "none", batch_size: int = 512,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Softmax probabilities ``[N, K]`` (CPU, float32) of ``member`` on ``data`` in order, with the member's
    normalisation and input size; ``tta="flip"`` averages over the image and its mirror."""
    from cnnlab.data import build_loader
    from cnnlab.train.metrics import predict_probs

    device = torch.device(device)
    model = member.model.to(device).eval()
    size = member.meta["img_size"]
    loader = build_loader(data, batch_size=batch_size, shuffle=False, device=device,
                          mean=member.meta["mean"], std=member.meta["std"])
    out = []
    for x, _ in loader:
        x = resize_input(x, size)
        out.append(predict_probs(model, x, tta).float().cpu())
    return torch.cat(out) if out else torch.empty(0, member.meta["num_classes"])


def vote(probs: torch.Tensor, method: str = "soft", weights: Sequence[float] | torch.Tensor | None = None
         ) -> torch.Tensor:
    """Predicted classes ``[N]`` from member probabilities ``[M, N, K]``.

    ``soft``: argmax of the (weighted) mean probability. ``hard``: argmax of the (weighted) count of
    member predictions, ties broken by the summed probability of the tied classes."""
    if method not in VOTES:
        raise ConfigError(f"vote {method!r} is not one of {', '.join(VOTES)}")
    if probs.ndim != 3:
        raise ConfigError(f"vote needs member probabilities [M, N, K], got shape {tuple(probs.shape)}")
    m, _, k = probs.shape
    w = torch.ones(m, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (m,):
        raise ConfigError(f"vote needs one weight per member ({m}), got {tuple(w.shape)}")
    p = probs.double()
    psum = (w[:, None, None] * p).sum(0)
    if method == "soft":
        return psum.argmax(1)
    votes = (w[:, None, None] * F.one_hot(p.argmax(2), k).double()).sum(0)
    top = votes == votes.max(1, keepdim=True).values
    return torch.where(top, psum, torch.full_like(psum, -1.0)).argmax(1)


# ------------------------------------------------------------------------------------ scoring
@dataclass
class MemberScore:
    name: str
    path: str
    top1: float


@dataclass
class EnsembleResult:
    """Each member's accuracy, the ensemble's (``top1`` with ``vote``; ``votes`` has both), the accuracy of
    the ensemble of the first ``k`` members for ``k = 1..M`` (``by_size``) and the gain over the mean member."""

    members: list[MemberScore]
    top1: float
    vote: str
    votes: dict[str, float]
    by_size: list[float]
    per_class: list[float]
    classes: list[str]
    n: int
    data: str
    tta: str = "none"
    kind: str = "ensemble"
    out_dir: str | None = None
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def mean_member(self) -> float:
        return sum(m.top1 for m in self.members) / len(self.members)

    @property
    def best_member(self) -> float:
        return max(m.top1 for m in self.members)

    @property
    def gain(self) -> float:
        """Ensemble accuracy minus the mean member's."""
        return self.top1 - self.mean_member

    def to_dict(self) -> dict:
        return {**asdict(self), "mean_member": self.mean_member, "best_member": self.best_member, "gain": self.gain}


def score(probs: torch.Tensor, labels: torch.Tensor, members: Sequence[tuple[str, str]], *, vote_method: str = "soft",
          classes: Sequence[str], data: str = "", tta: str = "none", kind: str = "ensemble",
          weights: Sequence[float] | None = None) -> EnsembleResult:
    """Member and ensemble accuracies from member probabilities ``[M, N, K]`` and true ``labels``
    (``weights``: one vote weight per member, e.g. SAMME's alphas)."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    w = None if weights is None else torch.as_tensor(list(weights), dtype=torch.float64)
    member_acc = (probs.argmax(2) == labels).double().mean(1).tolist()
    votes = {v: float((vote(probs, v, w) == labels).double().mean()) for v in VOTES}
    by_size = [float((vote(probs[:k], vote_method, None if w is None else w[:k]) == labels).double().mean())
               for k in range(1, probs.shape[0] + 1)]
    pred = vote(probs, vote_method, w)
    k = probs.shape[2]
    hit = torch.bincount(labels[pred == labels], minlength=k).double()
    per_class = (hit / torch.bincount(labels, minlength=k).clamp_min(1).double()).tolist()
    scores = [MemberScore(n, str(p), a) for (n, p), a in zip(members, member_acc)]
    return EnsembleResult(scores, votes[vote_method], vote_method, votes, by_size, per_class, list(classes),
                          int(labels.numel()), data, tta, kind)


def evaluate_ensemble(members: Sequence[Member], data: Any, *, vote: str = "soft", tta: str = "none",
                      batch_size: int = 512, device: str | torch.device = "cpu", kind: str = "ensemble",
                      data_name: str = "") -> tuple[EnsembleResult, torch.Tensor]:
    """Score ``members`` on ``data``; returns the result and the member probabilities ``[M, N, K]``."""
    check_compatible(members)
    if data.num_classes != members[0].meta["num_classes"] or data.image_shape[0] != members[0].meta["in_chans"]:
        raise ConfigError(f"{data_name or 'the data'} ({data.num_classes} classes, {data.image_shape[0]} channels) "
                          f"does not match the members ({members[0].meta['num_classes']} classes, "
                          f"{members[0].meta['in_chans']} channels)")
    probs = torch.stack([member_probs(m, data, tta=tta, batch_size=batch_size, device=device) for m in members])
    classes = members[0].meta.get("classes") or list(data.classes)
    result = score(probs, data.labels, [(m.name, str(m.path)) for m in members], vote_method=vote,
                   classes=classes, data=data_name, tta=tta, kind=kind)
    return result, probs


def ensemble_runs(paths: Sequence[str | Path], *, data: str | None = None, data_dir: str | None = None,
                  split: str = "test", vote: str = "soft", tta: str = "none", batch_size: int = 512,
                  device: str = "auto", holdout: float = 0.2, holdout_seed: int = 0,
                  train_subset: int = 0) -> EnsembleResult:
    """Combine saved runs/checkpoints and evaluate them on ``data`` (default: the dataset the members were
    trained on) ``split``. For an image folder without ``test/`` the evaluation images are the same
    stratified hold-out ``cnnlab bag``/``boost`` used (``holdout``, ``holdout_seed``, ``train_subset``)."""
    import time

    from cnnlab.data import load_dataset
    from cnnlab.ensemble.members import DataSource, load_data
    from cnnlab.train.engine import resolve_device

    if vote not in VOTES:
        raise ConfigError(f"--vote {vote!r} is not one of {', '.join(VOTES)}")
    tta = canonical_tta(tta, "--tta")
    if not paths:
        raise ConfigError("an ensemble needs at least one member (run directory or checkpoint)")
    t0 = time.perf_counter()
    members = [load_member(p) for p in paths]
    names = [m.name for m in members]
    if len(set(names)) != len(names):  # e.g. bag-a/member-00 and bag-b/member-00
        members = [Member(f"{m.path.parent.parent.name}/{m.name}" if m.path.parent.name == m.name else str(m.path),
                          m.path, m.meta, m.model) for m in members]
    check_compatible(members)
    if data is None:
        names = {m.meta.get("data") for m in members}
        if len(names) != 1 or None in names:
            raise ConfigError(f"the members were trained on different data ({', '.join(sorted(map(str, names)))}); "
                              "choose the evaluation set with --data")
        data = names.pop()
    m0 = members[0].meta
    folder = data.startswith("imagefolder:")
    if folder and split == "test":
        ds = load_data(DataSource(data, data_dir, train_subset, holdout_seed, holdout)).test
    else:
        opts = dict(image_size=m0["img_size"], channels=m0["in_chans"]) if folder else {}
        ds = load_dataset(data, split=split, data_dir=data_dir, **opts)
    result, _ = evaluate_ensemble(members, ds, vote=vote, tta=tta, batch_size=batch_size,
                                  device=resolve_device(device), data_name=f"{data}/{split}")
    result.wall_s = time.perf_counter() - t0
    return result
