"""Box coding, IoU matching and balanced fg/bg sampling: the shared parts of R-CNN, Fast and Faster R-CNN.

Box coding (R-CNN, Girshick et al. 2014, appendix C; Faster R-CNN eq. 2): a box ``(x, y, w, h)`` (centre, size)
relative to a reference ``(x_a, y_a, w_a, h_a)`` (an anchor or a proposal) is
``t = (wx (x - x_a) / w_a, wy (y - y_a) / h_a, ww log(w / w_a), wh log(h / h_a))``; the weights are
``(1, 1, 1, 1)`` for the RPN and ``(10, 10, 5, 5)`` for the RoI head (torchvision's defaults, which scale the
targets to unit variance). Matching (Faster R-CNN §3.1.2): IoU >= ``high`` is foreground, < ``low`` background,
in between ignored; each ground-truth box also keeps its best-overlapping anchor. Sampling: a mini-batch of
``batch_size`` per image with at most ``positive_fraction`` positives (RPN 256 at 1:1; Fast R-CNN §2.3: 25%).
torchvision's ``BoxCoder``, ``Matcher`` and ``BalancedPositiveNegativeSampler`` are the tests' oracle.
"""

from __future__ import annotations

import math

import torch

#: Weights of the RPN's and the RoI head's box coding (torchvision's defaults).
RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ROI_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
#: ``exp`` of a larger log-size delta would overflow (Detectron's ``log(1000 / 16)``).
DELTA_CLIP = math.log(1000.0 / 16)

BELOW_LOW = -1  # matcher: background
BETWEEN = -2  # matcher: ignored (between the thresholds)


def _centres(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode(boxes: torch.Tensor, references: torch.Tensor,
           weights: tuple[float, float, float, float] = RPN_WEIGHTS) -> torch.Tensor:
    """Regression targets ``[N, 4]`` that move each ``references[i]`` (xyxy) onto ``boxes[i]`` (xyxy)."""
    wx, wy, ww, wh = weights
    x, y, w, h = _centres(boxes)
    xa, ya, wa, ha = _centres(references)
    return torch.stack((wx * (x - xa) / wa, wy * (y - ya) / ha, ww * torch.log(w / wa), wh * torch.log(h / ha)), 1)


def decode(deltas: torch.Tensor, references: torch.Tensor,
           weights: tuple[float, float, float, float] = RPN_WEIGHTS) -> torch.Tensor:
    """Inverse of :func:`encode`: ``deltas [N, 4k]`` (k boxes per reference, e.g. one per class) -> xyxy ``[N, 4k]``."""
    wx, wy, ww, wh = weights
    xa, ya, wa, ha = (v[:, None] for v in _centres(references.to(deltas.dtype)))
    x = deltas[:, 0::4] / wx * wa + xa
    y = deltas[:, 1::4] / wy * ha + ya
    w = torch.exp((deltas[:, 2::4] / ww).clamp(max=DELTA_CLIP)) * wa
    h = torch.exp((deltas[:, 3::4] / wh).clamp(max=DELTA_CLIP)) * ha
    return torch.stack((x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h), 2).flatten(1)


def match(iou: torch.Tensor, high: float, low: float, keep_best: bool = True) -> torch.Tensor:
    """Each of N candidates (columns of the ``[M gt, N]`` IoU matrix) -> index of its ground-truth box, or
    :data:`BELOW_LOW` (IoU < ``low``: background) / :data:`BETWEEN` (ignored). ``keep_best``: every gt box also
    claims the candidates that overlap it most, even below ``high`` (Faster R-CNN §3.1.2, condition (i))."""
    n = iou.shape[1]
    if iou.shape[0] == 0:  # an image without objects: everything is background
        return torch.full((n,), BELOW_LOW, dtype=torch.int64, device=iou.device)
    best_iou, matches = iou.max(dim=0)
    best_for_gt = matches.clone()
    matches[best_iou < low] = BELOW_LOW
    matches[(best_iou >= low) & (best_iou < high)] = BETWEEN
    if keep_best:
        best_per_gt = iou.max(dim=1, keepdim=True).values
        _, cand = torch.where((iou == best_per_gt) & (best_per_gt > 0))
        matches[cand] = best_for_gt[cand]
    return matches


def sample_balanced(labels: torch.Tensor, batch_size: int, positive_fraction: float,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(positives, negatives)`` of one image's mini-batch: labels ``>= 1`` are foreground, ``0``
    background, ``< 0`` ignored; at most ``batch_size * positive_fraction`` positives, negatives fill the rest."""
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    n_pos = min(positive.numel(), int(batch_size * positive_fraction))
    n_neg = min(negative.numel(), batch_size - n_pos)
    device = labels.device
    pos = positive[torch.randperm(positive.numel(), generator=generator, device=device)[:n_pos]]
    neg = negative[torch.randperm(negative.numel(), generator=generator, device=device)[:n_neg]]
    return pos, neg
