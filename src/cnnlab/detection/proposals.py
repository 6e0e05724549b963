"""Selective search region proposals (Uijlings, van de Sande, Gevers & Smeulders, "Selective Search for Object
Recognition", IJCV 2013), the proposals of R-CNN (Girshick et al. 2014, §2.1: "selective search's fast mode")
and SPPNet, through OpenCV contrib's ``cv2.ximgproc.segmentation``.

Selective search over-segments the image (Felzenszwalb & Huttenlocher's graph segmentation), then greedily
merges the two most similar neighbouring regions (colour, texture, size and fill similarities) until one
region is left; every region ever formed gives a box. "Fast" mode diversifies over two colour spaces and
two segmentation scales (k = 50, 100), "quality" over more. Grayscale scenes are converted to 3 channels.
Boxes are ranked as OpenCV returns them; those narrower or lower than ``min_size`` pixels are dropped,
duplicates removed, and at most ``max_proposals`` kept (R-CNN: ~2,000 per image; a 128x128 Fashion-MNIST
scene gives ~40).

Proposals of a whole dataset are cached as ``<cache dir>/<dataset fingerprint>-<settings key>.safetensors``
(the fingerprint hashes the images, the key the settings), written atomically: a second run reads them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from cnnlab.data.arrays import denormalize_to_uint8
from cnnlab.errors import ConfigError

__all__ = ["ProposalSettings", "SelectiveSearchProposals", "selective_search", "dataset_fingerprint",
           "proposals_for", "proposal_recall", "default_cache_dir"]

MODES = ("fast", "quality", "single")
CACHE_VERSION = 2  # 2: proposals made deterministic (C rand seeded), so version-1 caches rank differently


def _seed_c_rand(seed: int = 0) -> None:
    """OpenCV's selective search ranks regions with C's ``rand()`` (``rank = rand() * level``), so the same image
    gave another ranking (and, under ``max_proposals``, another set) on every call; seeding it before each
    image makes the proposals a function of the image and settings alone."""
    try:
        import ctypes

        ctypes.CDLL(None).srand(seed)
    except (OSError, AttributeError):  # no C library to reach (e.g. Windows): proposals stay as OpenCV gives
        pass


@dataclass(frozen=True)
class ProposalSettings:
    """Every setting that changes the proposals (its hash names the cache file)."""

    mode: str = "fast"
    max_proposals: int = 2000
    min_size: int = 4

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"selective search mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.max_proposals < 1 or self.min_size < 1:
            raise ConfigError(f"max_proposals and min_size must be >= 1, got {self.max_proposals}, {self.min_size}")

    def key(self) -> str:
        blob = json.dumps({"version": CACHE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _bgr(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """uint8 ``[C, H, W]`` (C = 1 or 3, RGB) -> contiguous ``[H, W, 3]`` BGR, as OpenCV wants."""
    a = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ConfigError(f"selective search needs a uint8 image [1 or 3, H, W], got {a.dtype} {a.shape}")
    a = np.repeat(a, 3, 0) if a.shape[0] == 1 else a[::-1]
    return np.ascontiguousarray(a.transpose(1, 2, 0))


def selective_search(image: torch.Tensor | np.ndarray, settings: ProposalSettings = ProposalSettings()) -> torch.Tensor:
    """Proposals of one uint8 image ``[C, H, W]`` as float32 ``[n, 4]`` xyxy pixels (ranked, capped, filtered)."""
    try:
        import cv2
        segmentation = cv2.ximgproc.segmentation
    except (ImportError, AttributeError):
        raise ConfigError("selective search needs OpenCV contrib's ximgproc: pip install 'cnnlab[detect]' "
                          "(opencv-contrib-python-headless, never opencv-python beside it)") from None
    cv2.setNumThreads(1)  # one image at a time; the caller owns the parallelism
    ss = segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(_bgr(image))
    _seed_c_rand(0)
    {"fast": ss.switchToSelectiveSearchFast, "quality": ss.switchToSelectiveSearchQuality,
     "single": ss.switchToSingleStrategy}[settings.mode]()
    rects = torch.as_tensor(np.asarray(ss.process()), dtype=torch.float32).reshape(-1, 4)  # x, y, w, h
    keep = (rects[:, 2] >= settings.min_size) & (rects[:, 3] >= settings.min_size)
    rects = rects[keep]
    _, first = np.unique(rects.numpy(), axis=0, return_index=True)
    rects = rects[np.sort(first)][: settings.max_proposals]  # duplicates out, OpenCV's ranking kept
    return torch.cat([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1)


def dataset_fingerprint(images: torch.Tensor) -> str:
    """SHA-256 of the uint8 image tensor ``[N, C, H, W]`` (its shape and bytes): the dataset's identity."""
    h = hashlib.sha256(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    from cnnlab.data.arrays import default_data_dir

    return default_data_dir() / "proposals"


def proposals_for(images: torch.Tensor, settings: ProposalSettings = ProposalSettings(),
                  cache_dir: str | Path | None = None, cache: bool = True) -> tuple[list[torch.Tensor], dict]:
    """Selective-search proposals of every image of a uint8 ``[N, C, H, W]`` tensor, read from the cache file
    when it exists, else computed and (``cache=True``) written atomically. Returns ``(list of N [n_i, 4]
    tensors, info)`` with ``info["cache"]`` the file, ``info["cached"]`` whether it was read, ``info["seconds"]``."""
    from safetensors.torch import load_file, save

    from cnnlab._io import atomic_write

    t0 = time.perf_counter()
    path = Path(cache_dir or default_cache_dir()) / f"{dataset_fingerprint(images)}-{settings.key()}.safetensors"
    info = {"cache": str(path) if cache else None, "settings": asdict(settings)}
    if cache and path.is_file():
        t = load_file(path)
        if t["counts"].numel() == len(images):
            boxes = list(t["boxes"].split(t["counts"].tolist()))
            return boxes, {**info, "cached": True, "seconds": time.perf_counter() - t0}
    boxes = [selective_search(img, settings) for img in images]
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"boxes": torch.cat(boxes) if boxes else torch.zeros(0, 4),
                   "counts": torch.tensor([len(b) for b in boxes], dtype=torch.int64)}
        atomic_write(path, save(tensors, metadata={"settings": json.dumps(asdict(settings))}))
    return boxes, {**info, "cached": False, "seconds": time.perf_counter() - t0}


def proposal_recall(proposals: list[torch.Tensor], boxes: list[torch.Tensor], iou: float = 0.5) -> float:
    """Fraction of ground-truth boxes covered by at least one proposal with IoU >= ``iou`` (R-CNN's and
    Uijlings et al.'s measure of a proposal method); 1.0 when there are no ground-truth boxes."""
    hit = total = 0
    for props, truth in zip(proposals, boxes):
        total += len(truth)
        if len(truth) and len(props):
            hit += int((box_iou(truth, props).max(1).values >= iou).sum())
    return hit / total if total else 1.0


class SelectiveSearchProposals:
    """R-CNN's proposals as Fast R-CNN's ``proposer`` (Girshick 2015, §1: "region proposals ... computed by
    selective search", the same as R-CNN's): selective search on each de-normalised image, remembered per image
    content (hash of its uint8 pixels and the settings), so a fixed training set pays selective search once per
    image and flip, and evaluation once per test image. ``set_normalization(mean, std)`` must be told how the
    detector's inputs were normalised (the detection task does it from the data / checkpoint)."""

    def __init__(self, settings: ProposalSettings | dict | None = None, max_cached: int = 200_000) -> None:
        self.settings = settings if isinstance(settings, ProposalSettings) else ProposalSettings(**(settings or {}))
        self.max_cached = max_cached
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None
        self.cache: dict[str, torch.Tensor] = {}

    def set_normalization(self, mean, std) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def to_uint8(self, images: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise ConfigError("selective-search proposals need the input normalisation: call "
                              "set_normalization(mean, std) (the detection task does this from the data)")
        return denormalize_to_uint8(images.detach().cpu(), self.mean, self.std)

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for img in self.to_uint8(images):
            key = hashlib.blake2b(img.numpy().tobytes(), digest_size=16).hexdigest() + self.settings.key()
            boxes = self.cache.get(key)
            if boxes is None:
                boxes = selective_search(img, self.settings)
                if len(boxes) == 0:  # a blank image: the whole image is the one region
                    boxes = torch.tensor([[0.0, 0.0, float(img.shape[-1]), float(img.shape[-2])]])
                if len(self.cache) >= self.max_cached:
                    self.cache.pop(next(iter(self.cache)))
                self.cache[key] = boxes
            out.append(boxes.to(images.device))
        return out
