"""Segment a user's image files with a trained checkpoint: label maps, class fractions and overlay PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnlab.data import normalize_uint8
from cnnlab.predict import image_tensor
from cnnlab.segmentation.metrics import label_map
from cnnlab.segmentation.render import panel, write_png
from cnnlab.segmentation.task import predict_probs
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.process import resolve_device
from cnnlab.train.task import resize_input

__all__ = ["segment_images"]


def segment_images(checkpoint: str, images: list[str | Path], out_dir: str | Path | None = None,
                   device: str = "auto") -> list[dict[str, Any]]:
    """Segment image files with a checkpoint: the label map and per-class pixel fractions of each;
    with ``out_dir``, an overlay PNG per image (image | prediction)."""
    ckpt = load_checkpoint(checkpoint)
    ckpt.require_task("segmentation", "predict")
    dev = resolve_device(device)
    model = ckpt.build_model().to(dev)
    m = ckpt.meta
    size, classes = m["img_size"], list(m["classes"])
    results = []
    for path in images:
        u8 = image_tensor(path, m["in_chans"])
        x = resize_input(normalize_uint8(u8[None], m["mean"], m["std"]), size)
        with torch.inference_mode():
            label = label_map(predict_probs(model, x.to(dev))).cpu()
        counts = torch.bincount(label.flatten(), minlength=len(classes)).double() / label.numel()
        entry = {"image": str(path), "size": [size, size],
                 "fractions": {c: round(float(f), 4) for c, f in zip(classes, counts) if f > 0}}
        if out_dir is not None:
            out = Path(out_dir) / f"{Path(path).stem}-segmentation.png"
            shown = torch.nn.functional.interpolate(u8[None].float(), size=(size, size), mode="bilinear",
                                                    align_corners=False).round().clamp(0, 255).to(torch.uint8)
            write_png(out, panel(shown[0], None, label[0]))  # image | prediction over its grey copy
            entry["overlay"] = str(out)
        entry["labels"] = label[0]
        results.append(entry)
    return results
