"""Evaluate and apply detection checkpoints: mAP on a split, boxes on image files.

Image files of any size are **resized** (not letterboxed) to the model's square input, as in training, and
the boxes are mapped back to the file's own pixels by the two scale factors (``x * W / size``,
``y * H / size``). ``show="proposals"`` also draws the proposals the RoI head scored (two-stage models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import ConfigError

METHODS = ("rcnn", "sppnet", "fast-rcnn", "faster-rcnn", "yolo")
#: ``--method`` -> the registry model it trains by default (R-CNN/SPPNet: fitted by ``cnnlab.detection.rcnn``).
METHOD_MODELS = {"fast-rcnn": "fast_rcnn_fastnet", "faster-rcnn": "faster_rcnn_fastnet"}


def method_of_run(result: dict, config: dict) -> str | None:
    """Which of :data:`METHODS` a detection run directory holds, from its ``result.json`` (the staged R-CNN /
    SPPNet runs write ``method``) or its ``config.yaml`` model name; None for a model of no known method."""
    if result.get("method") in METHODS:
        return result["method"]
    model = str(config.get("model") or "")
    for prefix, method in (("faster_rcnn", "faster-rcnn"), ("fast_rcnn", "fast-rcnn"), ("yolo", "yolo")):
        if model.startswith(prefix):
            return method
    return None


def model_for_method(method: str) -> str:
    """The default registry model of a ``--method`` (YOLO: the first registered ``yolo*`` detector)."""
    from cnnlab.models import list_models

    if method not in METHODS:
        raise ConfigError(f"unknown detection method {method!r}; use one of {', '.join(METHODS)}")
    if method in METHOD_MODELS:
        return METHOD_MODELS[method]
    if method == "yolo":
        names = list_models("yolo*", task="detection")
        if not names:
            raise ConfigError("no YOLO model is registered in this build (cnnlab.detection.yolo is missing)")
        return names[0]
    raise ConfigError(f"--method {method} is not one gradient loop; it is fitted by cnnlab.detection.rcnn")


def load_detector(checkpoint: str | Path, device: str = "auto", verb: str = "predict"):
    """(checkpoint, model in eval mode on ``device``, device) of a detection run or checkpoint file; another
    task's checkpoint is one error naming its command."""
    from cnnlab.detection.task import DetectionTask
    from cnnlab.train.checkpoint import load_checkpoint
    from cnnlab.train.process import resolve_device

    ckpt = load_checkpoint(checkpoint)
    ckpt.require_task("detection", verb)
    dev = resolve_device(device)
    return ckpt, DetectionTask().model_from_checkpoint(ckpt).to(dev).eval(), dev


def detect_images(checkpoint: str | Path, images: list[str | Path], out_dir: str | Path | None = None,
                  show: str | None = None, score_thresh: float = 0.3, device: str = "auto") -> list[dict[str, Any]]:
    """Detections of each image file in its own pixels; with ``out_dir`` one PNG per image
    (``<stem>-detections.png``) with the boxes drawn (and the proposals for ``show="proposals"``)."""
    from cnnlab.data import normalize_uint8
    from cnnlab.detection.render import write_detections_png
    from cnnlab.predict import image_tensor
    from cnnlab.train.task import resize_input

    if show not in (None, "proposals"):
        raise ConfigError(f"--show {show!r} is not known; use --show proposals")
    ckpt, model, dev = load_detector(checkpoint, device)
    heads = getattr(model, "roi_heads", None)
    if heads is not None:  # the user's threshold also lowers the head's own (0.05) cut
        heads.score_thresh = min(heads.score_thresh, score_thresh)
    m = ckpt.meta
    size, classes = m["img_size"], list(m["classes"])
    results = []
    for path in images:
        u8 = image_tensor(path, m["in_chans"])
        h, w = u8.shape[-2:]
        x = resize_input(normalize_uint8(u8[None], m["mean"], m["std"]), size)
        with torch.inference_mode():
            det = model(x.to(dev))[0]
            props = model.propose(x.to(dev))[0][0] if show and hasattr(model, "propose") else None
        back = torch.tensor([w / size, h / size, w / size, h / size])
        keep = det["scores"].cpu() > score_thresh
        det = {"boxes": det["boxes"].cpu()[keep] * back, "labels": det["labels"].cpu()[keep],
               "scores": det["scores"].cpu()[keep]}
        entry: dict[str, Any] = {
            "image": str(path), "size": [int(w), int(h)],
            "detections": [{"class": classes[c] if c < len(classes) else str(c), "label": int(c),
                            "score": round(float(s), 4), "box": [round(float(v), 1) for v in b]}
                           for b, c, s in zip(det["boxes"], det["labels"].tolist(), det["scores"])]}
        if props is not None:
            props = props.cpu() * back
            entry["proposals"] = len(props)
        if out_dir is not None:
            out = Path(out_dir) / f"{Path(path).stem}-detections.png"
            write_detections_png(out, u8, det, classes, props)
            entry["png"] = str(out)
        results.append(entry)
    return results
