"""Feature extraction with a cache: the frozen backbone runs once, the head trains on its features.

In feature-extract mode only the classifier learns, so its input -- the backbone's pooled features
(``forward_head(forward_features(x), pre_logits=True)`` in eval mode: Razavian et al. 2014, "CNN
features off-the-shelf") -- is the same every epoch. Computing it once and training the head on a
:class:`FeatureDataset` with the ordinary ``fit`` gives the same model as training through the
frozen network, minus the backbone's forward pass in every epoch.

The cache file is keyed by the content that determines the features: the backbone's weights, the
images and labels, the input size and the normalisation (a SHA-256 over all of them), so a stale
cache cannot be hit. Files are ``.safetensors``, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab._io import atomic_write
from cnnlab.data import ArrayDataset
from cnnlab.errors import ConfigError
from cnnlab.train.task import resize_input

CACHE_VERSION = "1"


def default_cache_dir() -> Path:
    """``$CNNLAB_CACHE/features`` or ``~/.cache/cnnlab/features``."""
    root = os.environ.get("CNNLAB_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "cnnlab") / "features"


class FeatureDataset(ArrayDataset):
    """Precomputed features ``[N, D]`` with labels, usable wherever an :class:`ArrayDataset` is.

    Stored as ``[N, D, 1, 1]`` float32 "images" so ``fit``, ``evaluate`` and the loaders take it
    unchanged; ``mean`` 0 and ``std`` 1/255 make the loaders' uint8 normalisation ``(x / 255 - mean) / std``
    the identity on float features.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, classes, name: str = "features"):
        # not ArrayDataset.__init__: that one checks for uint8 images
        if features.dim() == 2:
            features = features[:, :, None, None]
        self.images = features.float().contiguous()
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.classes = list(classes)
        self.name = name
        d = self.images.shape[1]
        self.mean = (0.0,) * d
        self.std = (1.0 / 255.0,) * d

    def __repr__(self) -> str:
        return f"FeatureDataset({self.name!r}, n={len(self)}, dim={self.images.shape[1]}, classes={self.num_classes})"

    @property
    def features(self) -> torch.Tensor:
        return self.images.flatten(1)

    def subset(self, indices, name: str | None = None) -> FeatureDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return FeatureDataset(self.images[idx], self.labels[idx], self.classes, name or self.name)


class LinearHead(nn.Module):
    """The model's own classifier applied to cached ``[B, D, 1, 1]`` features (shares its parameters)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x, 1))


def check_head_composes(model: nn.Module, image_shape: tuple[int, int, int]) -> None:
    """Refuse a features cache where ``classifier(pre_logits) != logits`` in eval mode (a conv classifier
    before the pooling, as NiN/SqueezeNet): there the head cannot be trained on pooled features."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.randn(2, *image_shape)
            f = model.forward_features(x)
            logits = model.forward_head(f)
            composed = model.get_classifier()(torch.flatten(model.forward_head(f, pre_logits=True), 1))
    except (RuntimeError, AttributeError, NotImplementedError) as e:
        raise ConfigError(f"a features cache needs a classifier on pooled features ({str(e).splitlines()[0]}); "
                          "drop --features-cache") from None
    finally:
        model.train(was)
    if composed.shape != logits.shape or not torch.allclose(composed, logits, rtol=1e-4, atol=1e-4):
        name = getattr(model, "pretrained_cfg", {}).get("name", type(model).__name__)
        raise ConfigError(f"{name}'s classifier does not act on its pooled features alone, so it cannot be "
                          "trained on cached features; drop --features-cache")


@torch.inference_mode()
def extract_features(model: nn.Module, dataset, img_size: int, batch_size: int = 64,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Pooled pre-logit features ``[N, D]`` of ``dataset`` (normalised with its mean/std, resized to
    ``img_size`` bilinearly as ``fit`` does) through ``model`` in eval mode."""
    from cnnlab.data import InMemoryLoader

    was = model.training
    model.eval()
    loader = InMemoryLoader(dataset, batch_size=batch_size, shuffle=False, device=device)
    out = []
    try:
        for x, _ in loader:
            x = resize_input(x, img_size)
            f = model.forward_head(model.forward_features(x), pre_logits=True)
            out.append(torch.flatten(f, 1).float().cpu())
    finally:
        model.train(was)
    return torch.cat(out)


def _hash_tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


def cache_key(model: nn.Module, dataset, img_size: int) -> str:
    """SHA-256 over what determines the features: backbone weights (everything but the classifier),
    images, labels, input size, normalisation."""
    h = hashlib.sha256(f"cnnlab-features-v{CACHE_VERSION}".encode())
    head = getattr(model, "classifier_name", None)
    for k, v in sorted(model.state_dict().items()):
        if head and (k == head or k.startswith(head + ".")):
            continue
        h.update(k.encode())
        _hash_tensor(h, v)
    _hash_tensor(h, dataset.images)
    _hash_tensor(h, dataset.labels)
    h.update(json.dumps([img_size, list(dataset.mean), list(dataset.std), type(model).__name__]).encode())
    return h.hexdigest()


def cached_features(model: nn.Module, dataset, img_size: int, cache_dir: str | Path | None = None,
                    batch_size: int = 64, device: str | torch.device = "cpu") -> tuple[FeatureDataset, dict[str, Any]]:
    """Features of ``dataset`` from the cache, or computed and stored. Returns the dataset and
    ``{"path", "hit", "seconds", "n", "dim"}`` (``seconds``: time to load or compute)."""
    from safetensors.torch import load_file, save

    t0 = time.perf_counter()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = getattr(model, "pretrained_cfg", {}).get("name", type(model).__name__)
    path = folder / f"{name}-{cache_key(model, dataset, img_size)[:32]}.safetensors"
    hit = path.is_file()
    feats = None
    if hit:
        try:
            feats = load_file(str(path))["features"]
        except Exception:
            hit = False
        if feats is not None and feats.shape[0] != len(dataset):
            feats, hit = None, False
    if feats is None:
        feats = extract_features(model, dataset, img_size, batch_size=batch_size, device=device)
        try:
            atomic_write(path, save({"features": feats.contiguous()}, metadata={"model": name,
                                                                                  "img_size": str(img_size)}))
        except OSError as e:
            raise ConfigError(f"cannot write the features cache {path} ({e.strerror or e}); "
                              "set cache_dir / --cache-dir to a writable folder") from None
    info = {"path": str(path), "hit": hit, "seconds": time.perf_counter() - t0, "n": int(feats.shape[0]),
            "dim": int(feats.shape[1])}
    return FeatureDataset(feats, dataset.labels, dataset.classes, f"features:{dataset.name}"), info
