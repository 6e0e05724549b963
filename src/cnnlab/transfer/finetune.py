"""Transfer learning: a pretrained zoo model, a new head, frozen or unfrozen backbone, one ``fit`` call.

The lectures' recipe (PyTorch's transfer-learning tutorial, Chilamkurthy 2017): an ImageNet ResNet-18
with every parameter frozen, ``fc`` replaced by ``Linear(num_ftrs, num_classes)``, SGD lr 0.001
momentum 0.9, ``StepLR(step_size=7, gamma=0.1)``, 25 epochs, batch 4 ("feature extraction"); and
fine-tuning, which trains the whole network from the pretrained weights (Yosinski et al. 2014, "How
transferable are features in deep neural networks?").

- ``mode="feature-extract"``: only the new classifier learns; ``mode="fine-tune"``: everything learns,
  or only ``unfreeze=["layer4", "fc"]`` (module prefixes; the head always learns).
- Frozen parts are frozen completely: ``requires_grad=False`` *and* their BatchNorm layers stay in eval
  mode (running statistics neither used from the batch nor updated) -- a forward pre-hook sets
  ``training=False`` on each frozen BN before it runs, whatever ``model.train()`` the loop calls.
  (The tutorial's feature extractor leaves BN in train mode, so its "frozen" backbone drifts.)
- Discriminative learning rates (Howard & Ruder 2018, ULMFiT): ``lr_backbone`` for the unfrozen
  backbone, ``lr`` for the head, as two optimizer parameter groups.
- ``features_cache=True`` (feature-extract only): the backbone's features are computed once and the head
  trains on them (:mod:`cnnlab.transfer.features`); the full model is reassembled and checkpointed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data.folder import FolderDataset
from cnnlab.errors import ConfigError, DataError, WeightsError
from cnnlab.train.config import TrainConfig
from cnnlab.train.rundir import default_run_dir
from cnnlab.transfer.data import (
    channel_stats_for,
    few_shot_indices,
    load_transfer_data,
    render_folder,
    with_stats,
)

MODES = ("feature-extract", "fine-tune")
_BN = nn.modules.batchnorm._BatchNorm


def lecture_config(**overrides: Any) -> TrainConfig:
    """The tutorial's optimisation: SGD lr 0.001, momentum 0.9, StepLR(7, 0.1), 25 epochs, batch 4."""
    base = dict(epochs=25, batch_size=4, optimizer="sgd", lr=1e-3, momentum=0.9, schedule="step", step_size=7,
                gamma=0.1)
    return TrainConfig(**{**base, **overrides})


# ============================================================================== freezing
@dataclass
class FreezeReport:
    """What :func:`freeze` did: the trainable module prefixes, parameter counts, frozen BN layers."""

    mode: str
    trainable: list[str]
    trainable_params: int
    frozen_params: int
    frozen_bn: list[str]
    handles: list[Any] = field(default_factory=list, repr=False)

    def remove(self) -> None:
        """Undo the BN hooks (parameters keep their ``requires_grad``)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()


def _keep_bn_frozen(module: nn.Module, args: Any) -> None:
    """Forward pre-hook: a frozen BN normalises with its running statistics and never updates them."""
    module.training = False


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def freeze(model: nn.Module, mode: str = "feature-extract", unfreeze: list[str] | None = None) -> FreezeReport:
    """Freeze ``model`` for ``mode``: parameters outside the trainable prefixes get ``requires_grad=False``
    and the BatchNorm layers among them keep their running statistics (see the module docstring).

    Trainable prefixes: the classifier (``model.classifier_name``) plus, in fine-tune mode, ``unfreeze``
    (default: the whole network). Unknown module names are an error listing the top-level ones.
    """
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    head = getattr(model, "classifier_name", None)
    if head is None:
        raise ConfigError(f"{type(model).__name__} has no classifier_name; transfer needs a zoo model")
    unfreeze = [u.strip() for u in (unfreeze or []) if u.strip()]
    if unfreeze and mode != "fine-tune":
        raise ConfigError("unfreeze selects layers to train in mode=fine-tune; feature-extract trains only the head")
    names = dict(model.named_modules())
    for u in unfreeze:
        if u not in names:
            top = ", ".join(n for n, _ in model.named_children())
            raise ConfigError(f"unfreeze: {type(model).__name__} has no module {u!r} (top-level modules: {top})")
    if mode == "fine-tune" and not unfreeze:
        prefixes = [""]
    else:
        prefixes = [head, *unfreeze]
    everything = prefixes == [""]
    trainable = frozen = 0
    for name, p in model.named_parameters():
        p.requires_grad_(everything or _under(name, prefixes))
        trainable += p.numel() if p.requires_grad else 0
        frozen += 0 if p.requires_grad else p.numel()
    frozen_bn = [] if everything else [n for n, m in model.named_modules()
                                        if isinstance(m, _BN) and not _under(n, prefixes)]
    handles = [names[n].register_forward_pre_hook(_keep_bn_frozen) for n in frozen_bn]
    if getattr(model, "aux_logits", False) and any("aux" in n.lower() and not p.requires_grad
                                                     for n, p in model.named_parameters()):
        model.aux_logits = False  # a frozen auxiliary head with a fresh classifier only adds noise
    return FreezeReport(mode, ["*"] if everything else prefixes, trainable, frozen, frozen_bn, handles)


def param_groups(model: nn.Module, lr: float, lr_backbone: float | None = None) -> list[dict]:
    """Two groups: the unfrozen backbone at ``lr_backbone`` (default ``lr``) and the head at ``lr``."""
    head = model.classifier_name
    backbone, top = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (top if _under(name, [head]) else backbone).append(p)
    groups = [{"params": top, "lr": lr}]
    if backbone:
        groups.insert(0, {"params": backbone, "lr": lr if lr_backbone is None else lr_backbone})
    return groups


# ============================================================================= the run
@dataclass
class FinetuneResult:
    """What :func:`finetune` returns. ``model`` is the full trained model (eval mode, CPU or the run's
    device); ``fit`` the engine's result (of the head alone with a features cache)."""

    run_dir: Path
    model: nn.Module
    final: dict[str, Any]
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    mode: str
    weights: dict[str, Any] | None
    freeze: FreezeReport
    img_size: int
    skipped_images: int = 0
    features: dict[str, Any] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    fit: Any = None

    def summary(self) -> dict[str, Any]:
        w = self.weights or {}
        return {"run_dir": str(self.run_dir), "mode": self.mode, "final": self.final, "best": self.best,
                "history": self.history, "img_size": self.img_size, "skipped_images": self.skipped_images,
                "weights": {k: w.get(k) for k in ("tag", "source", "origin")} if self.weights else None,
                "trainable": self.freeze.trainable, "trainable_params": self.freeze.trainable_params,
                "frozen_params": self.freeze.frozen_params, "frozen_bn_layers": len(self.freeze.frozen_bn),
                "features": self.features, "seconds": self.seconds, "notes": self.notes}


def _no_weights(weights: Any) -> bool:
    return weights is None or (isinstance(weights, str) and weights.lower() in ("none", "scratch"))


def _preprocessing(info, resolved, img_size: int | None) -> dict[str, Any]:
    """Input size, resize, interpolation, mean, std: the weights' (or the model's defaults from scratch),
    with the resize scaled along when ``img_size`` overrides the input size."""
    from cnnlab.models.weights import weights_meta

    meta = dict(resolved.meta) if resolved is not None else weights_meta(info, None)
    pre = {k: meta[k] for k in ("input_size", "resize_size", "interpolation", "mean", "std")}
    if img_size is not None and img_size != pre["input_size"]:
        pre["resize_size"] = round(img_size * pre["resize_size"] / pre["input_size"])
        pre["input_size"] = img_size
    return pre


def _run_dir(cfg: TrainConfig, model: str, mode: str) -> Path:
    if cfg.out_dir:
        return Path(cfg.out_dir)
    return default_run_dir(cfg.data, model, mode)


def finetune(model: str = "resnet18", weights: Any = "imagenet", data: str | None = None,
             mode: str = "feature-extract", *, unfreeze: list[str] | str | None = None,
             lr_backbone: float | None = None, features_cache: bool = False, cache_dir: str | Path | None = None,
             shots: int = 0, test_shots: int = 0, cfg: TrainConfig | None = None, train_data: Any = None,
             val_data: Any = None, test_data: Any = None, callbacks: tuple = (), **options: Any) -> FinetuneResult:
    """Adapt the zoo model ``model`` with ``weights`` to ``data`` by one ``fit`` call.

    ``weights``: ``"imagenet"``, ``"imagenet:TAG"``, a file, or ``None``/``"none"`` (from scratch, the
    baseline). ``data``: a dataset name or ``imagefolder:DIR`` (or pass ``train_data``/``val_data``/
    ``test_data`` datasets). ``shots``/``test_shots``: keep that many images per class of the
    train/test split (seeded by ``cfg.seed``; 0 = all). ``cfg`` defaults to :func:`lecture_config`;
    ``options`` override its fields (``epochs=5``, ``img_size=160``, ``out_dir=...``).
    The input size, resize and normalisation come from the weights unless ``img_size`` is given.
    """
    from cnnlab.models import get_model_info
    from cnnlab.models.weights import resolve_weights

    t0 = time.perf_counter()
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    if features_cache and mode != "feature-extract":
        raise ConfigError("a features cache needs mode=feature-extract (the backbone must be frozen)")
    if isinstance(unfreeze, str):
        unfreeze = unfreeze.split(",")
    cfg = (cfg or lecture_config()).replace(model=model, **({"data": data} if data else {}), **options)
    info = get_model_info(model)
    notes: list[str] = []

    # ---- weights first: they decide the input size and normalisation of the data
    resolved = None if _no_weights(weights) else resolve_weights(info, weights)
    pre = _preprocessing(info, resolved, cfg.img_size)

    cfg, pre, (train_data, val_data, test_data), skipped = _prepare_data(
        cfg, pre, train_data, val_data, test_data, shots, test_shots, notes)
    img_size = cfg.img_size
    net = _pretrained_model(model, resolved, pre, train_data, cfg, notes)
    plan = freeze(net, mode, unfreeze)
    groups = param_groups(net, cfg.lr, lr_backbone)
    run_dir = _run_dir(cfg, model, mode)
    cfg = cfg.replace(out_dir=str(run_dir))

    feats = None
    if features_cache:
        fit_result, feats = _fit_cached(net, cfg, train_data, val_data, test_data, cache_dir, callbacks)
    else:
        from cnnlab.train.engine import fit

        fit_result = fit(cfg, model=net, param_groups=groups, train_data=train_data, val_data=val_data,
                         test_data=test_data, callbacks=callbacks)
    plan.remove()
    net.eval()
    return FinetuneResult(run_dir=run_dir, model=net, final=fit_result.final, history=fit_result.history,
                          best=fit_result.best, mode=mode, weights=net.pretrained_cfg.get("weights"),
                          freeze=plan, img_size=img_size, skipped_images=skipped, features=feats,
                          seconds=time.perf_counter() - t0, notes=notes, fit=fit_result)


def _prepare_data(cfg: TrainConfig, pre: dict, train_data, val_data, test_data, shots: int, test_shots: int,
                  notes: list[str]):
    """The splits rendered to the weights' input size and normalisation, cut to ``shots`` per class; a 20 %
    holdout when nothing else can be evaluated. -> (cfg with img_size, pre, (train, val, test), skipped)."""
    skipped = 0
    if train_data is None:
        train_data, loaded_val, loaded_test, skipped = load_transfer_data(cfg.data, pre, cfg.data_dir)
        val_data = val_data if val_data is not None else loaded_val
        test_data = test_data if test_data is not None else loaded_test
    prepared = []
    for ds in (train_data, val_data, test_data):
        if isinstance(ds, FolderDataset):
            ds, bad = render_folder(ds, pre)
            skipped += bad
        elif ds is not None:
            ds = with_stats(ds, *channel_stats_for(pre, ds.image_shape[0]))
        prepared.append(ds)
    train_data, val_data, test_data = prepared
    if shots:
        train_data = train_data.subset(few_shot_indices(train_data.labels, shots, cfg.seed, train_data.num_classes))
    if test_shots and test_data is not None:
        test_data = test_data.subset(few_shot_indices(test_data.labels, test_shots, cfg.seed + 1,
                                                      test_data.num_classes))
    if train_data.num_classes < 2:
        raise DataError(f"{cfg.data}: transfer needs at least 2 classes, found {train_data.num_classes}")
    if val_data is None and test_data is None and cfg.val_fraction == 0:
        cfg = cfg.replace(val_fraction=0.2)
        notes.append("no validation or test data: held out a stratified 20% of the training images")
    if not cfg.eval_test:
        test_data = None
    img_size = int(pre["input_size"])
    cfg = cfg.replace(img_size=img_size)
    if train_data.image_shape[1:] != (img_size, img_size):  # fit resizes whole frames (no crop); so must predict
        pre = {**pre, "resize_size": img_size, "interpolation": "bilinear"}
    return cfg, pre, (train_data, val_data, test_data), skipped


def _pretrained_model(model: str, resolved, pre: dict, train_data, cfg: TrainConfig, notes: list[str]) -> nn.Module:
    """The zoo model with the resolved weights and a new head for the dataset's classes; its
    ``pretrained_cfg`` records the preprocessing training used (what predict must feed it)."""
    from cnnlab.models import create_model

    in_chans, img_size = train_data.image_shape[0], cfg.img_size
    if in_chans == 1 and resolved is not None:
        notes.append("1-channel images: the first conv holds the summed RGB filters and inputs use the weights' "
                     "mean/std averaged over channels (a grey image seen as RGB)")
    torch.manual_seed(cfg.seed)  # the new head's initialisation
    try:
        net = create_model(model, num_classes=train_data.num_classes, in_chans=in_chans, img_size=img_size,
                           weights=resolved, **cfg.model_kwargs)
    except WeightsError as e:
        from cnnlab.models import SMALL_INPUT_MAX

        if img_size <= SMALL_INPUT_MAX:
            raise WeightsError(f"{e} -- at img_size <= {SMALL_INPUT_MAX} the zoo builds {model}'s small-input "
                               "variant, which ImageNet weights do not fit; use a larger img_size") from None
        raise
    if resolved is not None:
        weights_cfg = {**net.pretrained_cfg["weights"], **pre}
        weights_cfg.pop("categories", None)  # the new head predicts the dataset's classes, not ImageNet's
        net.pretrained_cfg["weights"] = weights_cfg
    return net


def _fit_cached(net: nn.Module, cfg: TrainConfig, train, val, test, cache_dir, callbacks):
    """Feature-extract mode over cached features: fit the head alone (run_dir/head), then put it back
    into ``net`` and write ``run_dir/best.safetensors`` for the full model."""
    from cnnlab.train.engine import fit, resolve_device
    from cnnlab.transfer.features import LinearHead, cached_features, check_head_composes

    if cfg.augment not in ("none", ""):
        raise ConfigError(f"augment={cfg.augment!r} needs image inputs each epoch; a features cache computes "
                          "them once (drop --features-cache or the augmentation)")
    if cfg.tta != "none":
        raise ConfigError("tta needs image inputs; drop --features-cache or --tta")
    if any(p.requires_grad for n, p in net.named_parameters() if not n.startswith(net.classifier_name)):
        raise ConfigError("a features cache needs mode=feature-extract (the backbone must be frozen)")
    device = resolve_device(cfg.device)
    check_head_composes(net, (train.image_shape[0], cfg.img_size, cfg.img_size))
    net.to(device)
    infos: dict[str, Any] = {}
    sets = {}
    for split, ds in (("train", train), ("val", val), ("test", test)):
        if ds is not None:
            sets[split], infos[split] = cached_features(net, ds, cfg.img_size, cache_dir,
                                                        batch_size=min(cfg.eval_batch_size, 128), device=device)
    head = LinearHead(net.get_classifier())
    head_cfg = cfg.replace(out_dir=str(Path(cfg.out_dir) / "head"), img_size=None, model_kwargs={},
                           channels_last=False, compile=False)
    result = fit(head_cfg, model=head, train_data=sets["train"], val_data=sets.get("val"),
                 test_data=sets.get("test"), callbacks=callbacks)
    if result.model is not None and result.model is not head:  # the EMA copy or a multi-process result
        head.load_state_dict(result.model.state_dict())
    net.cpu()
    save_model_checkpoint(Path(cfg.out_dir) / "best.safetensors", net, cfg, train, result)
    infos["extract_seconds"] = sum(i["seconds"] for k, i in infos.items() if k in ("train", "val", "test"))
    infos["hit"] = all(i["hit"] for k, i in infos.items() if k in ("train", "val", "test"))
    return result, infos


def save_model_checkpoint(path: Path, net: nn.Module, cfg: TrainConfig, train, result) -> Path:
    """A cnnlab checkpoint of the full model (no optimizer state) that ``load_checkpoint(...).build_model()``,
    ``cnnlab eval`` and ``cnnlab predict`` read like the engine's: registry name and builder kwargs,
    classes, normalisation, input size, the weights' preprocessing and tag."""
    from cnnlab.train.checkpoint import save_checkpoint

    pcfg = net.pretrained_cfg
    weights = dict(pcfg.get("weights") or {})
    kwargs = pcfg.get("model_kwargs")  # the builder kwargs, when the registry records them
    if kwargs is None:
        kwargs = {**weights.get("model_kwargs", {}), **cfg.model_kwargs}
    meta = {"model": pcfg["name"], "model_kwargs": kwargs, "num_classes": train.num_classes,
            "in_chans": train.image_shape[0], "img_size": cfg.img_size, "model_img_size": pcfg.get("img_size"),
            "classes": list(train.classes), "mean": list(train.mean), "std": list(train.std), "data": cfg.data,
            "eval_weights": "model", "config": cfg.to_dict(), "epoch": result.epochs_run, "micro_step": 0,
            "global_step": 0, "world_size": 1, "pretrained": weights or None,
            "transfer": {"mode": "feature-extract", "features_cache": True, "head_run": "head"}}
    return save_checkpoint(path, meta, net.state_dict())

