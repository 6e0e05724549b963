"""The Segment tab: a scene through a segmentation run's model -> the colour overlay and class fractions.

Calls ``segment_images``, the function behind ``cnnlab segment predict``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from cnnlab.errors import DataError
from cnnlab.segmentation import segment_images
from cnnlab.train.runs import find_runs
from cnnlab.ui.runs import chosen_run


def segmentation_runs(runs_dir: str | Path) -> list[str]:
    """Run directories under ``runs_dir`` that trained a segmentation model, newest first."""
    return [str(r) for r in find_runs(runs_dir, task="segmentation")]


def segment_scene(run_dir: str | None, image: str | None) -> tuple[Image.Image, dict[str, float]]:
    """``(overlay, {class: pixel fraction})``: the image beside its predicted label map."""
    run_dir = chosen_run(run_dir, "segmentation", "Segment", "cnnlab segment train")
    if not image:
        raise DataError("no image: upload a scene or pick a sample photo")
    with tempfile.TemporaryDirectory(prefix="cnnlab-ui-seg-") as out:
        (r,) = segment_images(run_dir, [image], out_dir=out, device="cpu")
        with Image.open(r["overlay"]) as img:
            img.load()
            overlay = img.copy()
    fractions: dict[str, Any] = dict(sorted(r["fractions"].items(), key=lambda kv: -kv[1]))
    return overlay, fractions
