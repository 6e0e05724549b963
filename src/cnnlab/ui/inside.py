"""The "See inside" tab: top-k, class activation maps, first-layer filters and feature maps of one
image, for a zoo model with installed ImageNet weights or a classification run directory.

Calls :func:`cnnlab.predict.classify` and :mod:`cnnlab.viz` (``cam``/``plot_cams``,
``plot_filters``, ``feature_maps``/``plot_feature_maps``), the functions behind ``cnnlab predict``
and ``cnnlab viz``; figures come back as PIL images.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from PIL import Image

from cnnlab.errors import ConfigError, DataError
from cnnlab.models import list_models
from cnnlab.models.weights import list_pretrained
from cnnlab.predict import classify, load_image
from cnnlab.train.runs import find_runs, run_task
from cnnlab.train.source import LoadedModel, load_model
from cnnlab.ui.figures import figure_to_image
from cnnlab.viz import cam, feature_maps, plot_cams, plot_feature_maps
from cnnlab.viz.filters import conv_layers, plot_filters

_MODEL_LOCK = threading.Lock()  # hooks (CAM, feature maps) on a shared cached model: one user at a time


def sample_images() -> dict[str, str]:
    """Photos shipped inside scikit-image and matplotlib (no download): label -> file path."""
    import matplotlib
    import skimage.data

    sk = Path(skimage.data.__file__).parent
    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    files = {"coffee (scikit-image)": sk / "coffee.png", "chelsea the cat (scikit-image)": sk / "chelsea.png",
             "astronaut (scikit-image)": sk / "astronaut.png", "rocket (scikit-image)": sk / "rocket.jpg",
             "motorcycle (scikit-image)": sk / "motorcycle_left.png",
             "Grace Hopper (matplotlib)": mpl / "grace_hopper.jpg"}
    return {k: str(v) for k, v in files.items() if v.is_file()}


@functools.cache
def weighted_models() -> list[str]:
    """Zoo classifiers with an installed ImageNet checkpoint (weight package or torch hub cache)."""
    return [n for n in list_models(task="classification") if any(w["found"] for w in list_pretrained(n))]


@functools.lru_cache(maxsize=3)
def _cached(source: str, mtime: float) -> LoadedModel:
    return load_model(source, "imagenet")


def sources(runs_dir: str | Path) -> list[str]:
    """What the tab can look through: zoo models with weights, then the classification runs under ``runs_dir``."""
    return weighted_models() + [str(p) for p in find_runs(runs_dir, task="classification")]


def load_source(source: str | None) -> LoadedModel:
    """A zoo name (with its ImageNet weights) or a classification run directory / checkpoint, cached."""
    source = (source or "").strip()
    if not source:
        raise ConfigError("no model chosen: pick a zoo model with weights or give a run directory")
    path = Path(source)
    if path.exists():
        task = run_task(path) if path.is_dir() else None
        if task not in (None, "classification"):
            raise ConfigError(f"{path} is a {task} run; this tab shows classifiers (see the Segment tab)")
        return _cached(str(path.resolve()), path.stat().st_mtime)
    return _cached(source, 0.0)


def open_image(image: str | Image.Image | None) -> Image.Image:
    """The uploaded or picked image, decoded (an unreadable file is a one-line DataError)."""
    if image is None or (isinstance(image, str) and not image.strip()):
        raise DataError("no image: upload one or pick a sample photo")
    return load_image(image)


def top_classes(source: str, image: str | Image.Image | None, topk: int = 5) -> dict[str, float]:
    """``{class: probability}`` of the ``topk`` most likely classes (:func:`cnnlab.predict.classify`)."""
    loaded = load_source(source)
    img = open_image(image)
    with _MODEL_LOCK:
        (top,) = classify(loaded.model, img, topk=int(topk), class_names=loaded.class_names)
    return dict(top)


def cam_figure(source: str, image: str | Image.Image | None, method: str = "gradcam",
               target: str | None = None, topk: int = 5) -> tuple[Image.Image, str]:
    """``(figure, caption)``: the model's view and the heat map of ``method`` for ``target``
    (a class name or index; empty: the top-1), drawn by :func:`cnnlab.viz.plot_cams`."""
    loaded = load_source(source)
    img = open_image(image)
    target = (target or "").strip() or None
    if target is not None and target.isdigit():
        target = int(target)
    with _MODEL_LOCK:
        r = cam(loaded, image if isinstance(image, str) else img, method, target=target, topk=int(topk))
    x, y = r.peak_xy
    caption = (f"{r.method} for **{r.target_name}** ({r.target_prob:.1%}) at layer `{r.layer or 'input'}`; "
               f"peak at x={x:.0f}, y={y:.0f} in the photo")
    return figure_to_image(plot_cams([r])), caption


def filters_figure(source: str, layer: str | None = None) -> tuple[Image.Image, str]:
    """The kernels of ``layer`` (default: the first conv) as an image grid, with their statistics."""
    loaded = load_source(source)
    with _MODEL_LOCK:
        fig, s = plot_filters(loaded, (layer or "").strip() or None)
    caption = (f"`{s.layer}`: {s.shape[0]} filters of {s.shape[2]}x{s.shape[3]}x{s.shape[1]}, "
               f"norm median {s.norm_median:.3g}, near-dead {s.near_dead}")
    return figure_to_image(fig), caption


def conv_layer_names(source: str) -> list[str]:
    """The model's 2-d convolutions by module name (the choices for feature maps and filters)."""
    return [n for n, _ in conv_layers(load_source(source).model)]


def features_figure(source: str, image: str | Image.Image | None, layer: str | None = None,
                    max_channels: int = 32) -> tuple[Image.Image, str]:
    """Feature maps of ``layer`` (default: first, middle and last conv), titled with shape, RF and jump."""
    loaded = load_source(source)
    img = open_image(image)
    layers = [(layer or "").strip()] if (layer or "").strip() else None
    with _MODEL_LOCK:
        fms = feature_maps(loaded, img, layers, max_channels=int(max_channels))
    return figure_to_image(plot_feature_maps(fms)), "\n".join(f"- {fm.title}" for fm in fms)
