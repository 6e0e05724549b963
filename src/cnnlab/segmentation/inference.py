"""Segmentation inference on image files: a checkpoint's label maps, class fractions and overlay PNGs.

The library behind ``cnnlab segment predict`` and the page's Segment tab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError

__all__ = ["load_segmentation_model", "segment_images"]


def load_segmentation_model(checkpoint: str | Path, device: str = "cpu"):
    """``(checkpoint, model on device, device)`` of a segmentation run or checkpoint; another task's is a
    one-line ConfigError."""
    from cnnlab.train.checkpoint import load_checkpoint
    from cnnlab.train.engine import resolve_device

    ckpt = load_checkpoint(checkpoint)
    if ckpt.meta.get("task") != "segmentation":
        raise ConfigError(f"{ckpt.path} is a {ckpt.meta.get('task', 'classification')} checkpoint; "
                          "use `cnnlab eval`/`cnnlab predict` for it")
    dev = resolve_device(device)
    return ckpt, ckpt.build_model().to(dev), dev


def segment_images(checkpoint: str, images: list[str | Path], out_dir: str | Path | None = None,
                   device: str = "auto") -> list[dict[str, Any]]:
    """Segment image files with a checkpoint: the label map and per-class pixel fractions of each;
    with ``out_dir``, an overlay PNG per image (image | prediction)."""
    import numpy as np
    import torch

    from cnnlab.predict import load_image
    from cnnlab.segmentation.metrics import label_map
    from cnnlab.segmentation.render import panel, write_png
    from cnnlab.segmentation.task import _resize_batch, predict_logits

    ckpt, model, dev = load_segmentation_model(checkpoint, device)
    m = ckpt.meta
    size, classes = m["img_size"], list(m["classes"])
    mean = torch.tensor(m["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(m["std"]).view(1, -1, 1, 1)
    results = []
    for path in images:
        img = load_image(path).convert("L" if m["in_chans"] == 1 else "RGB")
        u8 = torch.from_numpy(np.asarray(img).copy())
        u8 = u8[None] if u8.ndim == 2 else u8.permute(2, 0, 1)
        x = (u8[None].float() / 255 - mean) / std
        x, _ = _resize_batch(x, None, size)
        with torch.inference_mode():
            label = label_map(predict_logits(model, x.to(dev))).cpu()
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
