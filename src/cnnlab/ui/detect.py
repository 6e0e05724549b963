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
from cnnlab.train.runs import find_runs, run_task

DETECTION_HEADERS = ["class", "score", "x1", "y1", "x2", "y2"]


def detection_runs(runs_dir: str | Path) -> list[str]:
    """Run directories under ``runs_dir`` that trained a detector (any of the five methods), newest first."""
    return [str(r) for r in find_runs(runs_dir) if run_task(r) == "detection"]


def detect_scene(run_dir: str | None, image: str | None, score_thresh: float = 0.3,
                 show_proposals: bool = False) -> tuple[Image.Image, list[list[Any]], str]:
    """``(picture with boxes, rows of DETECTION_HEADERS, one-line summary)`` for one image file."""
    run_dir = (run_dir or "").strip()
    if not run_dir:
        raise ConfigError("no detection run chosen: pick one, or train one with `cnnlab detect train`")
    if not Path(run_dir).exists():
        raise ConfigError(f"run directory not found: {run_dir}")
    if not image:
        raise DataError("no image: upload a photo or a scene, or pick a sample photo")
    task = run_task(run_dir) if Path(run_dir).is_dir() else None
    if task not in (None, "detection"):
        raise ConfigError(f"{run_dir} is a {task} run; the Detect tab needs a detection run")
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
