"""Detections drawn on images (``torchvision.utils.draw_bounding_boxes``: the segmentation overlays' class colours,
"name score" labels),
optionally with the proposals in grey, and precision-recall curves per class.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cnnlab._io import save_figure
from cnnlab.segmentation.render import class_palette, write_png

PROPOSAL_COLOR = (128, 128, 128)


def draw_detections(image: torch.Tensor, det: dict[str, torch.Tensor], classes: Sequence[str],
                    proposals: torch.Tensor | None = None, width: int = 1, min_side: int = 256) -> torch.Tensor:
    """uint8 ``[3, H', W']``: ``image`` (uint8 ``[C, H, W]``, grey or RGB) upscaled to at least ``min_side``
    pixels so labels stay readable, with ``proposals`` (grey, thin) and the detections (class colour, label
    ``"name 0.93"``)."""
    from torchvision.utils import draw_bounding_boxes

    img = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
    scale = max(1, int(np.ceil(min_side / max(img.shape[-2:]))))
    if scale > 1:
        img = img.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    img = img.contiguous()
    if proposals is not None and len(proposals):
        img = draw_bounding_boxes(img, proposals.cpu().float() * scale, colors=[PROPOSAL_COLOR] * len(proposals),
                                  width=1)
    boxes, labels, scores = det["boxes"].cpu().float(), det["labels"].cpu(), det["scores"].cpu()
    if len(boxes):
        palette = class_palette(max(len(classes), int(labels.max()) + 1))
        names = [f"{classes[c] if c < len(classes) else c} {s:.2f}" for c, s in zip(labels.tolist(), scores.tolist())]
        colors = [tuple(int(v) for v in palette[c]) for c in labels.tolist()]
        img = draw_bounding_boxes(img, boxes * scale, labels=names, colors=colors, width=width * scale)
    return img


def write_detections_png(path: str | os.PathLike, image: torch.Tensor, det: dict[str, torch.Tensor],
                         classes: Sequence[str], proposals: torch.Tensor | None = None) -> None:
    """One PNG (atomically) of :func:`draw_detections`."""
    write_png(path, draw_detections(image, det, classes, proposals).permute(1, 2, 0).numpy())


@torch.inference_mode()
def render_detections(path: str | os.PathLike, model: torch.nn.Module, data: Any, spec: Any, max_images: int = 6,
                      score_thresh: float = 0.3) -> None:
    """The first images of a DenseDataset with the detections of ``model`` (score > ``score_thresh``) in a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnlab.data import normalize_uint8
    from cnnlab.train.task import resize_input

    n = min(max_images, len(data))
    images = data.images[:n]
    device = next(model.parameters()).device
    x = resize_input(normalize_uint8(images, spec.mean, spec.std).to(device), spec.img_size)
    was_training = model.training
    model.eval()
    preds = model(x)
    model.train(was_training)
    h, w = images.shape[-2:]
    scale = torch.tensor([w / spec.img_size, h / spec.img_size] * 2)
    fig, axes = plt.subplots(1, n, figsize=(3 * n, 3.2), squeeze=False)
    for ax, img, p in zip(axes[0], images, preds):
        keep = p["scores"].cpu() > score_thresh
        det = {k: v.cpu()[keep] for k, v in p.items()}
        det["boxes"] = det["boxes"] * scale
        ax.imshow(draw_detections(img, det, spec.classes).permute(1, 2, 0).numpy())
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def plot_pr_curves(path: str | os.PathLike, curves: dict[str, Any], title: str) -> None:
    """Precision vs recall at IoU 0.5 for each class (``DetectionMeter``'s ``pr_curves``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for name, precision in curves["precision"].items():
        ax.plot(curves["recall"], precision, label=name)
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
