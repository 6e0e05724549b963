"""R-CNN (Girshick, Donahue, Darrell & Malik, "Rich feature hierarchies for accurate object detection and semantic
segmentation", CVPR 2014) and SPPNet (He, Zhang, Ren & Sun, ECCV 2014 §4): proposals -> CNN features -> per-class
linear SVMs -> class-specific box regression -> per-class NMS.

* R-CNN (§2.1-2.3): each selective-search proposal is warped (anisotropically, with ``CONTEXT`` pixels of context,
  Appendix A's p = 16 at 227 scaled to ``WARP`` = 28) to the CNN's input, and the CNN runs once **per proposal**.
* SPPNet (§4.1): the conv layers run once **per image**; each proposal's window of the last conv map
  (stride 8) is pooled by the spatial pyramid (4x4, 2x2, 1x1: :mod:`~cnnlab.detection.spp`) into the same
  fixed-length vector the fc layers read; the classifier stage is R-CNN's.

The CNN is FastNet's conv trunk (whitened stem, widths 32-64-128, stride 8: a 28x28 warp -> a 4x4 map, the pyramid
of that map is R-CNN's "pool5"), then fc6 (ReLU) and a K-way softmax used only for fine-tuning. Fine-tuning
(R-CNN §2.3): warped proposals with IoU >= 0.5 to a truth box take its class, the rest are background, mini-batches
hold 25% positives; there is no ImageNet for grayscale scenes, so the CNN learns from the warped proposals of
the training scenes alone (Fashion-MNIST items are what the warps show: 28-px objects) -- a choice for the CPU
budget. SPPNet then fine-tunes the fc layers only, on pyramid windows of the full-image map (SPPNet §4.1).

SVMs (R-CNN §2.3, Appendix B): one linear SVM per class on fc6 features (scaled to a mean L2 norm of 20, as the
R-CNN code does); positives are the class's truth boxes, negatives proposals with IoU < 0.3 to every truth box of
the class; hard-negative mining adds the negatives inside the margin (score > -1) and retrains. Box regression
(Appendix C): per class, ridge regression (lambda = 1000) from the pool5 features of proposals with IoU >= 0.6
to the targets ``t_x = (G_x - P_x) / P_w``, ``t_y``, ``t_w = log(G_w / P_w)``, ``t_h``
(:func:`~cnnlab.detection.boxes.encode`). Test: SVM score per class, regressed box, per-class NMS at IoU 0.3;
``scores`` are the sigmoid of the SVM margin (monotone: the ranking is the paper's).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, roi_align

from cnnlab.data.arrays import denormalize_to_uint8, normalize_uint8
from cnnlab.detection.boxes import decode, encode
from cnnlab.detection.proposals import ProposalSettings, proposals_for, selective_search
from cnnlab.detection.spp import SpatialPyramidPool, pyramid_length
from cnnlab.errors import CheckpointError, ConfigError

__all__ = ["RegionCNN", "fit_rcnn", "fit_sppnet", "load_rcnn", "METHODS"]

METHODS = ("rcnn", "sppnet")
WARP, CONTEXT, STRIDE = 28, 2, 8
FG_IOU, BG_IOU, REG_IOU = 0.5, 0.3, 0.6  # fine-tuning positives; SVM negatives; box-regression pairs
FEAT_NORM = 20.0
DEFAULT_MODEL = "fastnet"  # the CNN whose conv trunk both methods use (``cnnlab detect train --method rcnn``)


class RegionCNN(nn.Module):
    """R-CNN / SPPNet at test time (the model contract's eval side): ``forward(images, proposals=None)`` -> list of
    ``{boxes, labels, scores}``; without ``proposals`` selective search runs on the de-normalised images.

    Holds the CNN (``trunk``, ``fc6``, ``cls``), the SVMs (``svm_weight [K-1, D]``, ``svm_bias``) and the box
    regressors (``reg_weight [K-1, 4, P]``, ``reg_bias [K-1, 4]``) as tensors, so one safetensors file keeps all.
    ``method`` (``rcnn`` | ``sppnet``) picks how proposal features are computed; both read the same weights.
    """

    def __init__(self, num_classes: int, in_chans: int = 1, method: str = "rcnn",
                 widths: tuple[int, ...] = (32, 64, 128), fc_width: int = 256, levels: tuple[int, ...] = (4, 2, 1),
                 mean: tuple[float, ...] = (0.5,),
                 std: tuple[float, ...] = (0.25,), proposals: dict | None = None, nms_thresh: float = 0.3,
                 min_margin: float = -1.5, max_detections: int = 100) -> None:
        super().__init__()
        from cnnlab.models.fastnet import FastNet

        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.num_classes, self.in_chans, self.method = num_classes, in_chans, method
        net = FastNet(tuple(widths), num_classes=1, in_chans=in_chans, stem="whitened")
        self.trunk = nn.Sequential(net.stem, net.blocks)
        self.spp = SpatialPyramidPool(levels, 1 / STRIDE)
        self.pool5_dim = pyramid_length(widths[-1], tuple(levels))
        self.fc6 = nn.Sequential(nn.Linear(self.pool5_dim, fc_width), nn.ReLU(inplace=True))
        self.cls = nn.Linear(fc_width, num_classes)
        c = num_classes - 1
        self.register_buffer("svm_weight", torch.zeros(c, fc_width))
        self.register_buffer("svm_bias", torch.full((c,), -1e3))  # untrained: no detections
        self.register_buffer("feat_scale", torch.ones(()))
        self.register_buffer("reg_weight", torch.zeros(c, 4, self.pool5_dim))
        self.register_buffer("reg_bias", torch.zeros(c, 4))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))
        self.proposal_settings = ProposalSettings(**(proposals or {}))
        self.nms_thresh, self.min_margin, self.max_detections = nms_thresh, min_margin, max_detections
        self.arch = dict(num_classes=num_classes, in_chans=in_chans, method=method, widths=list(widths),
                         fc_width=fc_width, levels=list(levels), mean=list(mean), std=list(std),
                         proposals=asdict(self.proposal_settings), nms_thresh=nms_thresh, min_margin=min_margin,
                         max_detections=max_detections)

    # ---------------------------------------------------------------- features
    @property
    def needs_data_init(self) -> bool:
        return not bool(self.trunk[0].whitened)

    def init_from_data(self, x: torch.Tensor) -> None:
        self.trunk[0].init_from_data(x)

    def pyramid(self, fmap: torch.Tensor) -> torch.Tensor:
        """The whole map's pyramid ``[N, pool5_dim]`` (R-CNN's pool5 of a warped proposal)."""
        return torch.cat([F.adaptive_max_pool2d(fmap, n).flatten(1) for n in self.spp.levels], 1)

    def pool5(self, images: torch.Tensor, boxes: list[torch.Tensor], method: str | None = None) -> torch.Tensor:
        """pool5 features ``[sum n_i, pool5_dim]`` of every box: R-CNN warps each and runs the trunk per box,
        SPPNet runs the trunk per image and pools each box's window."""
        if (method or self.method) == "rcnn":
            return self.pyramid(self.trunk(warp(images, boxes)))
        return self.spp(self.trunk(images), boxes)

    def fc_features(self, pool5: torch.Tensor) -> torch.Tensor:
        """fc6 features scaled for the SVMs (mean L2 norm ``FEAT_NORM`` on the training set)."""
        return self.fc6(pool5) * self.feat_scale

    # ---------------------------------------------------------------- test time
    def to_uint8(self, images: torch.Tensor) -> torch.Tensor:
        return denormalize_to_uint8(images, self.mean, self.std)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, targets=None, proposals: list[torch.Tensor] | None = None):
        if self.training:
            raise ConfigError("R-CNN and SPPNet train in stages (CNN, SVMs, box regressors): use fit_rcnn(cfg)")
        if proposals is None:
            proposals = [selective_search(img.cpu(), self.proposal_settings) for img in self.to_uint8(images)]
        proposals = [p.to(images.device, torch.float32) for p in proposals]
        pool5 = self.pool5(images, proposals)
        return self.detect(pool5, proposals, tuple(images.shape[-2:]))

    def detect(self, pool5: torch.Tensor, proposals: list[torch.Tensor], size: tuple[int, int]) -> list[dict]:
        """SVM scores, class-specific regressed boxes, per-class NMS (R-CNN §2.2) for each image's proposals."""
        margins = self.fc_features(pool5) @ self.svm_weight.T + self.svm_bias  # [P, K-1]
        deltas = torch.einsum("pd,cjd->pcj", pool5, self.reg_weight) + self.reg_bias  # [P, K-1, 4]
        out, start = [], 0
        for props in proposals:
            n = len(props)
            m, d = margins[start:start + n], deltas[start:start + n].reshape(n, -1)
            start += n
            boxes = decode(d, props).reshape(n, -1, 4)
            boxes[..., 0::2] = boxes[..., 0::2].clamp(0, size[1])
            boxes[..., 1::2] = boxes[..., 1::2].clamp(0, size[0])
            idx, cls = (m > self.min_margin).nonzero(as_tuple=True)
            b, s = boxes[idx, cls], m[idx, cls]
            keep = batched_nms(b, s, cls, self.nms_thresh)[: self.max_detections]
            out.append({"boxes": b[keep], "labels": cls[keep] + 1, "scores": s[keep].sigmoid()})
        return out


def warp(images: torch.Tensor, boxes: list[torch.Tensor], size: int = WARP, context: int = CONTEXT) -> torch.Tensor:
    """R-CNN's warp (Appendix A): each box, dilated so that ``context`` pixels of the ``size x size`` warp lie
    around it, resampled bilinearly (anisotropic scaling) -> ``[sum n_i, C, size, size]``."""
    grow = size / (size - 2 * context)
    dilated = []
    for b in boxes:
        c, half = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]) / 2 * grow
        dilated.append(torch.cat([c - half, c + half], 1))
    return roi_align(images, dilated, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


# -------------------------------------------------------------------- training data
def label_regions(regions: list[torch.Tensor], boxes: list[torch.Tensor], labels: list[torch.Tensor]):
    """Per region: the class of its best-overlapping truth box (0 if none) and that IoU; regions = proposals + truth."""
    classes, ious, matched = [], [], []
    for r, b, lb in zip(regions, boxes, labels):
        if len(b) == 0:
            classes.append(torch.zeros(len(r), dtype=torch.int64))
            ious.append(torch.zeros(len(r)))
            matched.append(torch.zeros(len(r), 4))
            continue
        iou, j = box_iou(r, b).max(1)
        classes.append(lb[j])
        ious.append(iou)
        matched.append(b[j])
    return torch.cat(classes), torch.cat(ious), torch.cat(matched)


def _optimizer(params, cfg) -> torch.optim.Optimizer:
    if cfg.optimizer in ("adam", "adamw"):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum or 0.9, weight_decay=cfg.weight_decay)


def _balanced_epoch(labels: torch.Tensor, generator: torch.Generator, fg_fraction: float = 0.25) -> torch.Tensor:
    """One epoch's sample order: every positive and 3x as many random backgrounds (R-CNN §2.3: 32 + 96 per 128)."""
    pos, neg = (labels > 0).nonzero().flatten(), (labels == 0).nonzero().flatten()
    n_neg = min(len(neg), int(len(pos) * (1 - fg_fraction) / fg_fraction) or len(neg))
    idx = torch.cat([pos, neg[torch.randperm(len(neg), generator=generator)[:n_neg]]])
    return idx[torch.randperm(len(idx), generator=generator)]


def train_softmax(modules: list[nn.Module], inputs: torch.Tensor, labels: torch.Tensor, forward, cfg,
                  epochs: int, generator: torch.Generator) -> list[float]:
    """Fine-tune ``modules`` with the K-way softmax on ``forward(inputs[batch])`` logits; mean loss per epoch."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    opt = _optimizer(params, cfg)
    history = []
    for m in modules:
        m.train()
    for _ in range(epochs):
        order, total = _balanced_epoch(labels, generator), 0.0
        for i in range(0, len(order), cfg.batch_size):
            batch = order[i:i + cfg.batch_size]
            loss = F.cross_entropy(forward(inputs[batch]), labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        history.append(total / max(len(order), 1))
    for m in modules:
        m.eval()
    return history


def class_ious(regions: list[torch.Tensor], boxes: list[torch.Tensor], labels: list[torch.Tensor],
               num_classes: int) -> torch.Tensor:
    """``[R, K-1]``: each region's highest IoU with a truth box of each class (0 where the image has none)."""
    rows = []
    for r, b, lb in zip(regions, boxes, labels):
        m = torch.zeros(len(r), num_classes - 1)
        if len(b):
            iou = box_iou(r, b)
            for c in lb.unique().tolist():
                m[:, c - 1] = iou[:, lb == c].max(1).values
        rows.append(m)
    return torch.cat(rows)


def train_svms(features: np.ndarray, positives: np.ndarray, negatives: np.ndarray, c: float = 0.01,
               rounds: int = 2, seed: int = 0) -> tuple[np.ndarray, float]:
    """One class's linear SVM with hard-negative mining (R-CNN §2.3, Felzenszwalb et al.'s mining): start from a
    random cache of negatives, then ``rounds`` times add every negative the SVM scores above -1 (inside the margin)
    and retrain. Positives weigh 2 (the R-CNN code's ``pos_loss_weight``). Returns ``(weight [D], bias)``."""
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(seed)
    cache = rng.choice(negatives, size=min(len(negatives), max(4 * len(positives), 256)), replace=False)
    svm = None
    for r in range(rounds + 1):
        idx = np.concatenate([positives, cache])
        y = np.concatenate([np.ones(len(positives)), np.zeros(len(cache))])
        svm = LinearSVC(C=c, class_weight={1: 2.0, 0: 1.0}, max_iter=2000).fit(features[idx], y)
        if r == rounds:
            break
        hard = negatives[svm.decision_function(features[negatives]) > -1.0]
        new = np.setdiff1d(hard, cache)
        if len(new) == 0:
            break
        cache = np.concatenate([cache, new])
    return svm.coef_[0], float(svm.intercept_[0])


def fit_classifier_stage(model: RegionCNN, pool5: torch.Tensor, is_truth: torch.Tensor, region_ious: torch.Tensor,
                         best_class: torch.Tensor, best_iou: torch.Tensor, matched: torch.Tensor,
                         regions: torch.Tensor, svm_c: float, rounds: int, seed: int) -> dict[str, Any]:
    """SVMs on fc6 features and ridge box regressors on pool5 features, written into ``model``'s buffers."""
    from sklearn.linear_model import Ridge

    with torch.no_grad():
        fc = model.fc6(pool5)
        model.feat_scale.fill_(FEAT_NORM / fc.norm(dim=1).mean().clamp(min=1e-6).item())
        feats = (fc * model.feat_scale).numpy()
    stats = {"svm_positives": [], "svm_negatives": [], "regression_pairs": []}
    x5 = pool5.numpy()
    for k in range(model.num_classes - 1):
        pos = np.where((is_truth & (best_class == k + 1)).numpy())[0]
        neg = np.where((~is_truth & (region_ious[:, k] < BG_IOU)).numpy())[0]
        stats["svm_positives"].append(len(pos))
        stats["svm_negatives"].append(len(neg))
        if len(pos) and len(neg):
            w, b = train_svms(feats, pos, neg, svm_c, rounds, seed + k)
            model.svm_weight[k] = torch.as_tensor(w, dtype=torch.float32)
            model.svm_bias[k] = b
        pairs = np.where((~is_truth & (best_class == k + 1) & (best_iou >= REG_IOU)).numpy())[0]
        stats["regression_pairs"].append(len(pairs))
        if len(pairs) >= 2:
            t = encode(matched[pairs], regions[pairs]).numpy()
            ridge = Ridge(alpha=1000.0).fit(x5[pairs], t)
            model.reg_weight[k] = torch.as_tensor(ridge.coef_, dtype=torch.float32)
            model.reg_bias[k] = torch.as_tensor(ridge.intercept_, dtype=torch.float32)
    return stats


def _pool5_all(model: RegionCNN, x: torch.Tensor, regions: list[torch.Tensor], method: str,
               batch: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.pool5(x[i:i + batch], regions[i:i + batch], method) for i in range(0, len(x), batch)])


def evaluate_rcnn(model: RegionCNN, dataset, cache_dir: Path | None = None, batch_size: int = 32) -> dict[str, Any]:
    """mAP of ``model`` on a DenseDataset (selective-search proposals from the cache), plus the seconds per image
    spent on features + classifier stage as ``ms_per_image`` / ``img_per_s`` (the cached selective-search
    proposals excluded: the R-CNN vs SPPNet comparison)."""
    from cnnlab.detection.metrics import DetectionMeter, speed_fields

    props, _ = proposals_for(dataset.images, model.proposal_settings, cache_dir)
    x = normalize_uint8(dataset.images, dataset.mean, dataset.std)
    meter = DetectionMeter(dataset.classes)
    model.eval()
    seconds = 0.0
    for i in range(0, len(x), batch_size):
        t0 = time.perf_counter()
        preds = model(x[i:i + batch_size], proposals=props[i:i + batch_size])
        seconds += time.perf_counter() - t0
        meter.update(preds, [{"boxes": b, "labels": lb} for b, lb in
                             zip(dataset.boxes[i:i + batch_size], dataset.labels[i:i + batch_size])])
    return {**meter.compute(), **speed_fields(seconds, len(x), batch_size), "speed_excludes": "proposals"}


_STAGE_KEYS = ("svm_c", "hard_rounds", "fc_epochs")


def _load_data(cfg):
    from cnnlab.data import load_dataset

    train = load_dataset(cfg.data, "train", data_dir=cfg.data_dir)
    test = load_dataset(cfg.data, "test", data_dir=cfg.data_dir)
    for ds in (train, test):
        if not getattr(ds, "has_boxes", False):
            raise ConfigError(f"{cfg.data}: R-CNN/SPPNet need a dataset with boxes "
                              "(fashion-scenes, voc:DIR, coco:FILE)")
    if cfg.train_subset:
        train = train.subset(torch.arange(min(cfg.train_subset, len(train))))
    return train, test


def fit_rcnn(cfg, method: str = "rcnn", cache_dir: str | Path | None = None):
    """Train R-CNN or SPPNet in the papers' stages on ``cfg.data`` and write ``cfg.out_dir``: ``last.safetensors``
    (CNN, SVMs, regressors; the json meta holds the architecture), ``config.yaml`` and ``result.json``.

    ``cfg``: ``epochs``/``batch_size``/``lr``/``optimizer``/``seed`` drive the CNN fine-tuning on warped proposals;
    ``model_kwargs`` may set ``widths``, ``fc_width``, ``levels`` (the pyramid), ``proposals`` (selective-search
    settings), ``nms_thresh``, ``svm_c`` (default 0.01), ``hard_rounds`` (2), ``fc_epochs`` (SPPNet's fc-only
    fine-tuning, default ``epochs``). Returns a :class:`~cnnlab.train.engine.FitResult`."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    kw = dict(cfg.model_kwargs)
    stage = {k: kw.pop(k) for k in _STAGE_KEYS if k in kw}
    train, test = _load_data(cfg)
    cache_dir = Path(cache_dir) if cache_dir else (Path(cfg.data_dir) / "proposals" if cfg.data_dir else None)
    model = RegionCNN(train.num_classes, train.image_shape[0], method, mean=tuple(train.mean), std=tuple(train.std),
                      **kw)
    props, prop_info = proposals_for(train.images, model.proposal_settings, cache_dir)
    seconds = {"proposals": prop_info["seconds"]}
    regions = [torch.cat([p, b]) for p, b in zip(props, train.boxes)]
    is_truth = torch.cat([torch.arange(len(r)) >= len(p) for r, p in zip(regions, props)])
    best_class, best_iou, matched = label_regions(regions, train.boxes, train.labels)
    ft_labels = torch.where(best_iou >= FG_IOU, best_class, torch.zeros_like(best_class))
    x = normalize_uint8(train.images, train.mean, train.std)

    tick = time.perf_counter()
    crops = warp(x, regions)  # R-CNN's fine-tuning inputs (both methods share the CNN)
    model.init_from_data(crops[torch.randperm(len(crops), generator=gen)[:4096]])
    history = {"finetune_loss": train_softmax(
        [model.trunk, model.fc6, model.cls], crops, ft_labels,
        lambda c: model.cls(model.fc6(model.pyramid(model.trunk(c)))), cfg, cfg.epochs, gen)}
    del crops
    seconds["finetune"], tick = time.perf_counter() - tick, time.perf_counter()
    pool5 = _pool5_all(model, x, regions, method)
    if method == "sppnet":  # SPPNet §4.1: fine-tune the fc layers only, on the full-image map's windows
        history["fc_finetune_loss"] = train_softmax([model.fc6, model.cls], pool5, ft_labels,
                                                    lambda p: model.cls(model.fc6(p)), cfg,
                                                    int(stage.get("fc_epochs", cfg.epochs)), gen)
    stats = fit_classifier_stage(model, pool5, is_truth, class_ious(regions, train.boxes, train.labels,
                                 train.num_classes), best_class, best_iou, matched, torch.cat(regions),
                                 float(stage.get("svm_c", 0.01)), int(stage.get("hard_rounds", 2)), cfg.seed)
    seconds["features_svms_regressors"] = time.perf_counter() - tick
    train_seconds = time.perf_counter() - t_start
    final = evaluate_rcnn(model, test, cache_dir, cfg.eval_batch_size)
    final.update(train_seconds=train_seconds, stage_seconds=seconds,
                 proposals_per_image=sum(map(len, props)) / max(len(props), 1),
                 **{f"stage_{k}": v for k, v in stats.items()})
    return _write_run(cfg, method, model, train, final, history, prop_info)


def _write_run(cfg, method: str, model: RegionCNN, train, final: dict, history: dict, prop_info: dict):
    """The run directory: ``last.safetensors`` (+ json meta), ``config.yaml``, ``result.json``; a FitResult."""
    from cnnlab._io import atomic_write
    from cnnlab.train.checkpoint import save_checkpoint
    from cnnlab.train.engine import FitResult

    run_dir = Path(cfg.out_dir or f"runs/{method}-{cfg.data.split(':')[0]}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"model": None, "method": method, "rcnn": model.arch, "config": cfg.to_dict(), "classes": train.classes,
            "num_classes": train.num_classes, "in_chans": train.image_shape[0], "img_size": train.image_shape[-1],
            "mean": list(train.mean), "std": list(train.std),
            "task": "detection", "metrics": {k: v for k, v in final.items() if k != "pr_curves"},
            "history": history, "proposals": {"train_cache": prop_info["cache"], "settings": prop_info["settings"]}}
    save_checkpoint(run_dir / "last.safetensors", meta, model.state_dict())
    cfg.replace(out_dir=str(run_dir)).to_yaml(run_dir / "config.yaml")
    result = FitResult(run_dir=run_dir, model=model, history=[{"epoch": e + 1, "train_loss": v} for e, v in
                                                              enumerate(history["finetune_loss"])],
                       final=final, best=None, epochs_run=cfg.epochs)
    summary = {**result.summary(), "task": "detection", "method": method}
    atomic_write(run_dir / "result.json", json.dumps(summary, indent=1, default=float).encode())
    return result


def fit_sppnet(cfg, cache_dir: str | Path | None = None):
    """:func:`fit_rcnn` with ``method="sppnet"`` (what ``cnnlab detect train --method sppnet`` calls)."""
    return fit_rcnn(cfg, "sppnet", cache_dir)


def load_rcnn(run_dir: str | Path, method: str | None = None) -> RegionCNN:
    """The R-CNN / SPPNet model of a :func:`fit_rcnn` run directory (or its checkpoint file), in eval mode;
    ``method`` overrides how features are computed (the same weights serve both)."""
    from cnnlab.train.checkpoint import load_checkpoint, load_state

    ckpt = load_checkpoint(run_dir, prefer="last")
    arch = ckpt.meta.get("rcnn")
    if not arch:
        raise CheckpointError(f"{ckpt.path} is not an R-CNN/SPPNet run (no 'rcnn' section in its meta); "
                              "use fit_rcnn(cfg, method=...) to make one")
    arch = {**arch, "widths": tuple(arch["widths"]), "levels": tuple(arch["levels"]),
            "mean": tuple(arch["mean"]), "std": tuple(arch["std"])}
    if method is not None:
        arch["method"] = method
    model = RegionCNN(**arch)
    load_state(model, ckpt.model_state, ckpt.path)
    return model.eval()
