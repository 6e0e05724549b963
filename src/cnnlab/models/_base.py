"""The interface every zoo model offers (timm's): features, head, classifier access.

``forward(x) == forward_head(forward_features(x))``. Transfer learning replaces the head with
``reset_classifier``; FCN convolutionalizes ``get_classifier()``; detectors use
``forward_features`` as a backbone.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class AuxOutputs(NamedTuple):
    """Training-mode output of nets with auxiliary classifiers (GoogLeNet, Inception-v3).

    ``aux`` holds the auxiliary logits, deepest last; the training engine adds them to the loss
    with weight ``aux_weight`` (0.3 in Szegedy et al. 2015, §5). In eval mode such nets
    return the plain logits tensor.
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]
    aux_weight: float = 0.3


class ClassifierMixin:
    """Mixin for ``nn.Module`` classifiers; subclasses implement ``forward_features``/``forward_head``.

    The classifier module is found by its dotted name, ``classifier_name`` (class attribute, e.g.
    ``"fc"`` or ``"classifier.6"``), so torchvision's state_dict layout is kept.
    """

    classifier_name: str = "fc"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)  # type: ignore[attr-defined]

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final Linear (or 1x1 Conv) with a fresh one for ``num_classes``; 0 = identity."""
        old = self.get_classifier()
        new: nn.Module
        if num_classes == 0:
            new = nn.Identity()
        elif isinstance(old, nn.Linear):
            new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding,
                            bias=old.bias is not None)
        else:
            raise TypeError(f"cannot reset classifier of type {type(old).__name__}")
        parent_name, _, attr = self.classifier_name.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self  # type: ignore[attr-defined]
        setattr(parent, attr, new)
        self.num_classes = num_classes


class PooledMLPMixin(ClassifierMixin):
    """``features`` -> ``avgpool`` -> flatten -> ``classifier`` (an ``nn.Sequential`` MLP), as
    torchvision's AlexNet and VGG; the pre-logits are the output of every classifier layer but the last."""

    classifier_name = "classifier.6"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # type: ignore[attr-defined]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)  # type: ignore[attr-defined]
        x = self.classifier[:-1](x)  # type: ignore[attr-defined]
        return x if pre_logits else self.classifier[-1](x)  # type: ignore[attr-defined]


class AuxClassifierMixin(ClassifierMixin):
    """Mixin for nets with auxiliary classifiers (GoogLeNet, Inception-v3).

    Subclasses implement ``_features(x) -> (features, aux_logits)``, computing the auxiliary logits
    in training mode only, and ``forward_head``. ``forward`` returns :class:`AuxOutputs` in training
    mode (with ``aux_logits``), else the plain logits.
    """

    aux_logits: bool

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:  # pragma: no cover
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutputs:
        x, aux = self._features(x)
        logits = self.forward_head(x)
        if self.training and self.aux_logits and aux:  # type: ignore[attr-defined]
            return AuxOutputs(logits, tuple(aux))
        return logits
