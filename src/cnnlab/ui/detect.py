"""The Detect tab: an image through a detection run's model -> the boxes drawn (class, score) and a table.

Calls ``detect_images``, the function behind ``cnnlab detect predict`` (boxes in the image's own pixels; the
image is resized to the run's size for the model, not letterboxed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from cnnlab.detection.predict import detect_images
from cnnlab.errors import ConfigError, DataError
from cnnlab.train.runs import find_runs
from cnnlab.ui.runs import chosen_run

DETECTION_HEADERS = ["class", "score", "x1", "y1", "x2", "y2"]


def detection_runs(runs_dir: str | Path) -> list[str]:
    """Run directories under ``runs_dir`` that trained a detector (any of the five methods), newest first."""
    return [str(r) for r in find_runs(runs_dir, task="detection")]


def detect_scene(run_dir: str | None, image: str | None, score_thresh: float = 0.3,
                 show_proposals: bool = False) -> tuple[Image.Image, list[list[Any]], str]:
    """``(picture with boxes, rows of DETECTION_HEADERS, one-line summary)`` for one image file."""
    run_dir = chosen_run(run_dir, "detection", "Detect", "cnnlab detect train")
    if not image:
        raise DataError("no image: upload a photo or a scene, or pick a sample photo")
    if not 0.0 <= float(score_thresh) < 1.0:
        raise ConfigError(f"score threshold must be in [0, 1), got {score_thresh}")
    with tempfile.TemporaryDirectory(prefix="cnnlab-ui-det-") as out:
        (r,) = detect_images(run_dir, [image], out_dir=out, show="proposals" if show_proposals else None,
                             score_thresh=float(score_thresh), device="cpu")
        with Image.open(r["png"]) as img:
            img.load()
            picture = img.copy()
    rows = [[d["class"], d["score"], *d["box"]] for d in r["detections"]]
    w, h = r["size"]
    note = f"{len(rows)} detections with score > {float(score_thresh):.2f} on a {w}x{h} image"
    if "proposals" in r:
        note += f"; {r['proposals']} proposals drawn"
    return picture, rows, note
