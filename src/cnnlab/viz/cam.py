"""Class activation maps: where in the image the evidence for a class lies.

Methods (``method=``):

- ``gradcam`` -- Selvaraju et al. 2017, Eq. 1-2: channel weights = spatial mean of d(score)/dA,
  map = ReLU(sum_k w_k A_k). Captum's ``LayerGradCam``.
- ``gradcam++`` -- Chattopadhay et al. 2018, Eq. 19 (score passed through exp, so the higher
  derivatives are powers of the first, g = d(score)/dA): alpha = g^2 / (2 g^2 + sum_ab A_ab g^3),
  w_k = sum_ij alpha_ij ReLU(g_ij), map = ReLU(sum_k w_k A_k). Not in Captum; computed here from the
  layer's activations and gradients.
- ``scorecam`` -- Wang et al. 2020, Algorithm 1: every channel, upsampled and scaled to [0, 1], masks
  the input; the class logits of the masked inputs, softmax-ed over channels, weight the channels:
  map = ReLU(sum_k softmax_k(f_c(X * M_k)) A_k). Gradient-free; one forward per channel
  (batched). Not in Captum; computed here.
- ``saliency`` -- Simonyan et al. 2014, Sec. 3.1: |d(score)/dx|, max over colour channels. Captum.
- ``integrated-gradients`` -- Sundararajan et al. 2017, Eq. 1 (baseline 0 = the mean image after
  normalisation, 32 steps): |attribution| summed over channels. Captum.

Library choice: Captum (PyTorch's own interpretability library, maintained with PyTorch, no
OpenCV dependency) for Grad-CAM, saliency and integrated gradients; ``grad-cam`` would pull in
``opencv-python``, which conflicts with the ``opencv-contrib`` build the project uses.

Target layer: by default the output of the model's ``forward_features`` (the last conv stage, the
same place for every family of the registry, since every zoo model has the same interface); any
module name (``layer="features.10"``) overrides it. The class: the top-1 unless ``target`` names one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.predict import ImageLike
from cnnlab.train.source import LoadedModel, load_model
from cnnlab.viz._common import ModelView, model_view, pyplot

METHODS = ("gradcam", "gradcam++", "scorecam", "saliency", "integrated-gradients")
LAYER_METHODS = ("gradcam", "gradcam++", "scorecam")

__all__ = ["METHODS", "CamResult", "cam", "gradcam_pp_map", "integrated_gradients", "plot_cams", "scorecam_map",
           "target_layer"]


@dataclass(frozen=True)
class CamResult:
    """One heat map. ``heatmap``: ``(H, W)`` in [0, 1] over the model's input view ``view.image``;
    ``peak``: (row, col) of its maximum in input pixels; ``peak_xy``: the same point in the
    original photo's pixels; ``top``: the top-k ``(class, probability)``."""

    heatmap: np.ndarray
    view: ModelView
    method: str
    layer: str | None
    target: int
    target_name: str
    target_prob: float
    top: list[tuple[str, float]]
    peak: tuple[int, int]

    @property
    def peak_xy(self) -> tuple[float, float]:
        return self.view.to_original(*self.peak)


class _Split(nn.Module):
    """``forward_head(features(x))`` with ``features`` a module, so hooks can target its output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.features = _Features(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.features(x))


class _Features(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.__dict__["_model"] = model  # not a child: no double registration of the weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model.forward_features(x)


def target_layer(model: nn.Module, layer: str | None = None) -> tuple[nn.Module, nn.Module, str]:
    """``(forward module, layer module, layer name)`` for a CAM.

    ``layer=None``: the output of ``forward_features`` (last conv stage; :func:`cam` reports the
    module that produces it, e.g. ``layer4``, when there is one); else the named sub-module.
    """
    if layer is None:
        if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
            raise ConfigError(f"{type(model).__name__} has no forward_features; pass layer= (a module name)")
        split = _Split(model)
        return split, split.features, "forward_features"
    try:
        module = model.get_submodule(layer)
    except AttributeError:
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][-3:]
        raise ConfigError(f"no module {layer!r} in {type(model).__name__}; conv layers near the end: "
                          f"{', '.join(names)} (`cnnlab inspect MODEL --depth -1` lists all)") from None
    return model, module, layer


@torch.no_grad()
def _logits_and_producer(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    """The logits, and the name of the last module whose output is exactly ``forward_features``'s
    output (e.g. ``layer4``), to name the default CAM layer; None when a function makes it."""
    if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
        return model(x), None
    outs: dict[int, str] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(id(o), n))
             for n, m in model.named_modules() if n]
    try:
        feats = model.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    return model.forward_head(feats), outs.get(id(feats))


def _activations_and_grads(fwd: nn.Module, layer: nn.Module, x: torch.Tensor,
                           target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's output A (1, K, h, w) and d(logit_target)/dA, by a forward hook.

    The hook hands a clone downstream, so an in-place op after the layer cannot alter A.
    """
    saved: dict[str, torch.Tensor] = {}

    def hook(_m, _i, out):
        saved["a"] = out
        return out.clone()

    h = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # A needs a graph even when the weights are frozen
            score = fwd(x)[0, target]
            (grad,) = torch.autograd.grad(score, saved["a"])
    finally:
        h.remove()
    return saved["a"].detach(), grad.detach()


def gradcam_pp_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, Eq. 19) at the layer's resolution: ``(N, K, h, w)`` -> ``(N, h, w)``."""
    g2, g3 = grads.pow(2), grads.pow(3)
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * acts).sum(dim=1))


@torch.no_grad()
def scorecam_map(fwd: nn.Module, layer: nn.Module, x: torch.Tensor, target: int, batch_size: int = 32) -> torch.Tensor:
    """Score-CAM (Wang et al. 2020, Algorithm 1) at the layer's resolution: ``(1, h, w)``."""
    saved: dict[str, torch.Tensor] = {}
    h = layer.register_forward_hook(lambda _m, _i, out: saved.__setitem__("a", out))
    try:
        fwd(x)
    finally:
        h.remove()
    acts = saved["a"]  # (1, K, h, w)
    masks = F.interpolate(acts.transpose(0, 1), size=x.shape[-2:], mode="bilinear", align_corners=False)
    lo = masks.amin(dim=(2, 3), keepdim=True)
    span = masks.amax(dim=(2, 3), keepdim=True) - lo
    masks = torch.where(span > 0, (masks - lo) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)
    scores = torch.cat([fwd(x * masks[i:i + batch_size])[:, target] for i in range(0, masks.shape[0], batch_size)])
    weights = torch.softmax(scores.float(), dim=0).view(1, -1, 1, 1)
    return F.relu((weights * acts).sum(dim=1))


def _resolve_target(target: int | str | None, names: Sequence[str], probs: torch.Tensor) -> int:
    if target is None:
        return int(probs.argmax())
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        t = int(target)
        if not 0 <= t < len(names):
            raise ConfigError(f"target class {t} out of range: "
                              f"the model has {len(names)} classes (0..{len(names) - 1})")
        return t
    lowered = [n.lower() for n in names]
    if target.lower() in lowered:
        return lowered.index(target.lower())
    import difflib

    close = difflib.get_close_matches(target.lower(), lowered, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(names[lowered.index(c)] for c in close)}?" if close else ""
    raise ConfigError(f"unknown target class {target!r}{hint} (give a class name or an index 0..{len(names) - 1})")


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int, steps: int = 32) -> torch.Tensor:
    """Sundararajan et al. 2017, Eq. 1 with baseline 0 (the mean image after normalisation), Captum's
    Gauss-Legendre rule over ``steps`` points: attributions shaped like ``x``. Completeness (their Prop. 1): they
    sum to ``f_target(x) - f_target(0)`` up to the integration error."""
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=steps,
                                                    internal_batch_size=8)


def cam(source: str | os.PathLike | nn.Module | LoadedModel, image: ImageLike, method: str = "gradcam", *,
        target: int | str | None = None, layer: str | None = None, topk: int = 5,
        weights: str | None = "imagenet", scorecam_batch: int = 32, ig_steps: int = 32) -> CamResult:
    """A heat map of ``method`` for one image and one class (default: the top-1).

    ``source``: zoo name (with ``weights``), run directory / checkpoint, or a module. ``layer``:
    module name for the layer methods (default: the last conv stage).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown CAM method {method!r}; use one of {', '.join(METHODS)}")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ConfigError(f"topk must be an integer >= 1, got {topk!r}")
    loaded = load_model(source, weights)
    model = loaded.model.eval()
    view = model_view(loaded, image)
    x = view.x
    logits, producer = _logits_and_producer(model, x)
    probs = torch.softmax(logits.float(), dim=1)[0]
    names = loaded.class_names
    t = _resolve_target(target, names, probs)
    vals, idx = probs.topk(min(topk, probs.numel()))
    top = [(names[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist())]
    size = tuple(x.shape[-2:])
    layer_name = None
    with torch.enable_grad():
        if method in LAYER_METHODS:
            fwd, module, layer_name = target_layer(model, layer)
            if layer is None and producer:
                layer_name = producer
            if method == "gradcam":
                from captum.attr import LayerGradCam

                raw = LayerGradCam(fwd, module).attribute(x, target=t, relu_attributions=True)[:, 0]
            elif method == "gradcam++":
                raw = gradcam_pp_map(*_activations_and_grads(fwd, module, x, t))
            else:
                raw = scorecam_map(fwd, module, x, t, scorecam_batch)
            heat = F.interpolate(raw.unsqueeze(1).detach().float(), size=size, mode="bilinear",
                                 align_corners=False)[0, 0]
        elif method == "saliency":
            from captum.attr import Saliency

            heat = Saliency(model).attribute(x, target=t, abs=True)[0].amax(dim=0)
        else:
            heat = integrated_gradients(model, x, t, ig_steps)[0].abs().sum(dim=0)
    heat = heat.detach().clamp(min=0)
    flat = int(heat.argmax())
    peak = divmod(flat, heat.shape[1])
    top_val = float(heat.max())
    if method in LAYER_METHODS:
        norm = heat / top_val if top_val > 0 else heat
    else:  # pixel maps: a few outliers would wash the rest out; clip at the 99th percentile
        q = float(torch.quantile(heat.flatten(), 0.99))
        norm = (heat / q).clamp(max=1) if q > 0 else heat
    return CamResult(norm.numpy().astype(np.float32), view, method, layer_name, t, names[t], float(probs[t]), top,
                     (int(peak[0]), int(peak[1])))


def plot_cams(results: Sequence[CamResult], alpha: float = 0.5):
    """A figure: per result the model's view and the heat map over it, titled with class and
    probability, the top-k beside it. Returns the matplotlib figure."""
    plt = pyplot()
    n = len(results)
    fig, axes = plt.subplots(n, 2, figsize=(8.5, 4.2 * n), squeeze=False)
    for (ax_img, ax_cam), r in zip(axes, results):
        gray = r.view.image.ndim == 2
        ax_img.imshow(r.view.image, cmap="gray" if gray else None, vmin=0, vmax=1)
        ax_img.set_title(os.path.basename(r.view.source), fontsize=9)
        ax_cam.imshow(r.view.image, cmap="gray" if gray else None, vmin=0, vmax=1)
        ax_cam.imshow(r.heatmap, cmap="jet", alpha=alpha, vmin=0, vmax=1)
        ax_cam.plot([r.peak[1]], [r.peak[0]], marker="+", color="white", markersize=14, mew=2)
        where = f" @ {r.layer}" if r.layer else ""
        ax_cam.set_title(f"{r.method}{where}: {r.target_name} ({r.target_prob:.1%})", fontsize=9)
        top = "\n".join(f"{i}. {name} {p:.1%}" for i, (name, p) in enumerate(r.top, 1))
        ax_img.set_xlabel(top, fontsize=8, loc="left")
        for ax in (ax_img, ax_cam):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return fig
