"""YOLO v1 (Redmon, Divvala, Girshick & Farhadi, "You Only Look Once: Unified, Real-Time Object Detection",
CVPR 2016): detection as one regression from the image to an ``S x S x (5B + C)`` tensor.

§2: the image is divided into an ``S x S`` grid; the cell that holds an object's centre is responsible
for it. Each cell predicts ``B`` boxes ``(x, y, w, h, confidence)`` -- ``x, y`` the centre's offset inside
the cell, ``w, h`` relative to the image, confidence ``Pr(Object) * IoU(pred, truth)`` -- and one set of
``C`` conditional class probabilities ``Pr(Class_i | Object)``. At test time the class-specific confidence
is ``Pr(Class_i | Object) * confidence`` (eq. 1), thresholded, then non-maximum suppression per class.

§2.2, eq. 3: the sum-squared loss, with ``1obj_ij`` = predictor ``j`` of cell ``i`` is *responsible* for a
truth (the one of the cell's ``B`` whose box has the highest IoU with it) and ``1noobj_ij = 1 - 1obj_ij``::

    coord  = l_coord * sum 1obj_ij [(x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
    obj    =           sum 1obj_ij (C - C^)^2          C^ = IoU(predicted box, truth), C the predicted confidence
    noobj  = l_noobj * sum 1noobj_ij C^2
    cls    =           sum 1obj_i  sum_c (p(c) - p^(c))^2

with ``l_coord = 5`` and ``l_noobj = 0.5``; each term here is divided by the batch size. One object per cell
(v1's limit): when two centres share a cell the larger box is kept.

cnnlab's choices for small CPU inputs (stated, not the paper's): the net predicts ``sqrt w`` and ``sqrt h``
(so the loss's square roots need no clamp), box numbers and confidences pass through a sigmoid and the
class scores through a softmax (the paper's last layer is linear); the default ``head="conv"`` predicts
the grid from the stride-16 map with a 3x3 and a 1x1 convolution (``S = img_size / 16``: 8 at 128 px);
``head="fc"`` is the paper's two fully connected layers over the map max-pooled to stride 32 (any ``S``,
default 7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from cnnlab.detection.backbones import FeatureBackbone, build_backbone
from cnnlab.models import register_model

__all__ = ["YOLOv1", "encode_targets", "decode_targets", "decode_predictions", "yolo_loss", "paired_iou",
           "yolo_v1_fastnet", "yolo_v1_resnet18"]

LAMBDA_COORD, LAMBDA_NOOBJ = 5.0, 0.5


def _cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``a[..., i]`` with ``b[..., i]`` (xyxy, same shapes): elementwise, not pairwise."""
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[..., 2:] - x[..., :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-9)


def encode_targets(boxes: torch.Tensor, labels: torch.Tensor, grid: int, img_size: tuple[int, int],
                   num_classes: int) -> torch.Tensor:
    """One image's truth as the ``[S, S, 5 + C]`` grid target: ``(x, y, w, h, 1obj, one-hot class)`` in the
    cell holding each box centre (``x, y`` in the cell, ``w, h`` / image size). ``labels`` are 1..K-1
    (``num_classes`` = K with background); C = K - 1. Larger boxes win a shared cell."""
    h_img, w_img = img_size
    target = torch.zeros(grid, grid, 5 + num_classes - 1)
    if len(boxes) == 0:
        return target
    boxes = boxes.float()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    for k in torch.argsort(areas).tolist():  # ascending: a larger box written later overwrites its cell
        x0, y0, x1, y1 = boxes[k].tolist()
        cx, cy = (x0 + x1) / 2 / w_img * grid, (y0 + y1) / 2 / h_img * grid
        col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
        target[row, col] = 0.0
        target[row, col, :5] = torch.tensor([cx - col, cy - row, (x1 - x0) / w_img, (y1 - y0) / h_img, 1.0])
        target[row, col, 4 + int(labels[k])] = 1.0
    return target


def _cell_offsets(grid: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = torch.meshgrid(torch.arange(grid, device=device), torch.arange(grid, device=device), indexing="ij")
    return cols.float(), rows.float()


def decode_targets(target: torch.Tensor, img_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`encode_targets`: ``(boxes [n, 4] xyxy pixels, labels [n] in 1..K-1)``, row-major."""
    has = target[..., 4] > 0.5
    return decode_grid_boxes(target[None], img_size)[0][has], target[..., 5:].argmax(-1)[has] + 1


def predicted_boxes(pred: torch.Tensor, boxes_per_cell: int, img_size: tuple[int, int]) -> torch.Tensor:
    """``[N, S, S, B, 4]`` xyxy pixels from the activated output ``[N, S, S, 5B + C]`` (``x, y, sqrt w, sqrt h, C``
    per predictor)."""
    n, grid = pred.shape[0], pred.shape[1]
    h_img, w_img = img_size
    p = pred[..., : 5 * boxes_per_cell].reshape(n, grid, grid, boxes_per_cell, 5)
    cols, rows = _cell_offsets(grid, pred.device)
    cx = (cols[..., None] + p[..., 0]) / grid * w_img
    cy = (rows[..., None] + p[..., 1]) / grid * h_img
    return _cxcywh_to_xyxy(torch.stack([cx, cy, p[..., 2] ** 2 * w_img, p[..., 3] ** 2 * h_img], -1))


def yolo_loss(pred: torch.Tensor, target: torch.Tensor, boxes_per_cell: int, img_size: tuple[int, int],
              lambda_coord: float = LAMBDA_COORD, lambda_noobj: float = LAMBDA_NOOBJ) -> dict[str, torch.Tensor]:
    """Eq. 3 of the paper as four named parts (coord, obj, noobj, cls), each summed and divided by the batch
    size. ``pred``: activated ``[N, S, S, 5B + C]``; ``target``: stacked :func:`encode_targets` grids."""
    n, grid = pred.shape[0], pred.shape[1]
    nb = boxes_per_cell
    p = pred[..., : 5 * nb].reshape(n, grid, grid, nb, 5)
    probs = pred[..., 5 * nb:]
    cell_obj = target[..., 4]  # 1obj_i
    truth_xyxy = decode_grid_boxes(target, img_size)  # [N, S, S, 4]
    iou = paired_iou(predicted_boxes(pred, nb, img_size), truth_xyxy[..., None, :]).detach()  # [N, S, S, B]
    responsible = F.one_hot(iou.argmax(-1), nb).float() * cell_obj[..., None]  # 1obj_ij
    t = target[..., None, :4]
    xy_err = ((p[..., :2] - t[..., :2]) ** 2).sum(-1)
    wh_err = ((p[..., 2:4] - t[..., 2:4].sqrt()) ** 2).sum(-1)
    conf = p[..., 4]
    return {
        "coord": lambda_coord * (responsible * (xy_err + wh_err)).sum() / n,
        "obj": (responsible * (conf - iou) ** 2).sum() / n,
        "noobj": lambda_noobj * ((1 - responsible) * conf**2).sum() / n,
        "cls": (cell_obj[..., None] * (probs - target[..., 5:]) ** 2).sum() / n,
    }


def decode_grid_boxes(target: torch.Tensor, img_size: tuple[int, int]) -> torch.Tensor:
    """The truth box of every cell of a target grid ``[N, S, S, 5 + C]`` as xyxy pixels ``[N, S, S, 4]``."""
    grid = target.shape[1]
    h_img, w_img = img_size
    cols, rows = _cell_offsets(grid, target.device)
    cx, cy = (cols + target[..., 0]) / grid * w_img, (rows + target[..., 1]) / grid * h_img
    return _cxcywh_to_xyxy(torch.stack([cx, cy, target[..., 2] * w_img, target[..., 3] * h_img], -1))


def decode_predictions(pred: torch.Tensor, boxes_per_cell: int, img_size: tuple[int, int],
                       score_thresh: float = 0.01, nms_thresh: float = 0.5,
                       max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
    """Eq. 1 and §2 "Inference": class-specific confidence ``Pr(Class_i | Object) * C`` for every box and class,
    boxes clipped to the image, kept above ``score_thresh``, per-class NMS (``batched_nms``), best
    ``max_detections``. Returns the model contract's list of ``{boxes, labels (1..K-1), scores}``."""
    n, grid = pred.shape[0], pred.shape[1]
    nb = boxes_per_cell
    boxes = predicted_boxes(pred, nb, img_size).reshape(n, -1, 4)
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, img_size[1])
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, img_size[0])
    conf = pred[..., 4 : 5 * nb : 5]  # [N, S, S, B]
    probs = pred[..., 5 * nb:]  # [N, S, S, C]
    scores = (conf[..., :, None] * probs[..., None, :]).reshape(n, grid * grid * nb, -1)  # [N, S*S*B, C]
    out = []
    for b in range(n):
        box_idx, cls = (scores[b] > score_thresh).nonzero(as_tuple=True)
        s = scores[b, box_idx, cls]
        kept = batched_nms(boxes[b, box_idx], s, cls, nms_thresh)[:max_detections]
        out.append({"boxes": boxes[b, box_idx[kept]], "labels": cls[kept] + 1, "scores": s[kept]})
    return out


class YOLOv1(nn.Module):
    """Backbone (a stride-16 feature map, :func:`~cnnlab.detection.backbones.build_backbone`) -> grid head ->
    ``[N, S, S, 5B + C]``.

    ``forward(images, targets=None)``: in training with targets the dict of :func:`yolo_loss` parts; in eval
    the list of ``{boxes, labels, scores}`` of :func:`decode_predictions`. ``raw(images)`` gives the activated
    grid tensor (what ONNX export and the tests read).
    """

    # what an exported file's output is (written to the export's sidecar)
    export_meaning = ("YOLO v1 grid [N, S, S, 5B + C]: per cell B boxes (x, y in the cell, sqrt w, sqrt h, confidence; "
                      "sigmoids) and C class probabilities (softmax); decode and NMS as "
                      "cnnlab.detection.yolo.decode_predictions does")

    def __init__(self, backbone: FeatureBackbone, num_classes: int, img_size: int = 128, boxes_per_cell: int = 2,
                 head: str = "conv", grid: int | None = None, score_thresh: float = 0.01, nms_thresh: float = 0.5,
                 max_detections: int = 100) -> None:
        super().__init__()
        if head not in ("conv", "fc"):
            raise ValueError(f"YOLO head must be conv or fc, got {head!r}")
        if num_classes < 2:
            raise ValueError(f"YOLO needs num_classes >= 2 (background + at least one class), got {num_classes}")
        self.backbone, self.head_kind = backbone, head
        self.num_classes, self.boxes_per_cell, self.img_size = num_classes, boxes_per_cell, img_size
        self.grid = grid or (img_size // backbone.stride if head == "conv" else 7)
        self.score_thresh, self.nms_thresh, self.max_detections = score_thresh, nms_thresh, max_detections
        out, c = 5 * boxes_per_cell + num_classes - 1, backbone.out_channels
        if head == "conv":  # one grid cell per position of the stride-16 map
            self.head = nn.Sequential(nn.Conv2d(c, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256),
                                      nn.LeakyReLU(0.1, inplace=True), nn.Conv2d(256, out, 1))
        else:  # the paper's: a 2x2 max-pool (stride 32), fc 512, dropout, fc to S*S*(5B+C)
            side = -(-img_size // (2 * backbone.stride))
            self.head = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(c * side * side, 512),
                                      nn.LeakyReLU(0.1, inplace=True), nn.Dropout(0.5),
                                      nn.Linear(512, self.grid * self.grid * out))

    @property
    def needs_data_init(self) -> bool:
        return self.backbone.needs_data_init

    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation of the backbone (FastNet's whitened stem); a no-op otherwise."""
        self.backbone.init_from_data(x)

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """The activated prediction grid ``[N, S, S, 5B + C]``: sigmoid boxes and confidences, softmax classes."""
        y = self.head(self.backbone(images))
        y = y.permute(0, 2, 3, 1) if self.head_kind == "conv" else y.view(len(images), self.grid, self.grid, -1)
        nb5 = 5 * self.boxes_per_cell
        return torch.cat([y[..., :nb5].sigmoid(), y[..., nb5:].softmax(-1)], -1)

    def inspect_view(self) -> nn.Module:
        """What ``cnnlab inspect`` traces: backbone -> head -> activated grid (decoding and NMS are data-dependent)."""
        return YOLOGridView(self)

    def export_view(self) -> nn.Module:
        """The one-pass graph to export (ONNX): ``images -> [N, S, S, 5B + C]``; :func:`decode_predictions`
        (thresholds and NMS, a data-dependent number of boxes) runs after it."""
        return YOLOGridView(self)

    def inspect_notes(self, rows) -> list[str]:
        c = self.num_classes - 1
        return [f"YOLO v1: backbone {self.backbone.name}, stride {self.backbone.stride}, {self.head_kind} head",
                f"{self.grid}x{self.grid} grid, each cell {self.boxes_per_cell} boxes (x, y, sqrt w, sqrt h, conf) + "
                f"{c} class probabilities = {5 * self.boxes_per_cell + c} numbers; decoding and NMS are not traced"]

    def losses(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]],
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The loss parts in any mode (the detection task's validation loss; ``generator`` unused: no sampling)."""
        return self.loss_of(self.raw(images), targets, tuple(images.shape[-2:]))

    def loss_of(self, pred: torch.Tensor, targets: list[dict[str, torch.Tensor]], size: tuple[int, int]):
        grids = torch.stack([encode_targets(t["boxes"].cpu(), t["labels"].cpu(), self.grid, size, self.num_classes)
                             for t in targets]).to(pred)
        with torch.no_grad():  # the training score the detection task shows: class accuracy in object cells
            has = grids[..., 4] > 0.5
            nb5 = 5 * self.boxes_per_cell
            hit = pred[..., nb5:].argmax(-1) == grids[..., 5:].argmax(-1)
            self.last_accuracy = ((hit & has).sum(), float(has.sum()) or 1.0)
        return yolo_loss(pred, grids, self.boxes_per_cell, size)

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        pred = self.raw(images)
        size = tuple(images.shape[-2:])
        if self.training:
            if targets is None:
                raise ValueError("YOLOv1 in training mode needs targets (a list of {boxes, labels} per image)")
            return self.loss_of(pred, targets, size)
        return decode_predictions(pred, self.boxes_per_cell, size, self.score_thresh, self.nms_thresh,
                                  self.max_detections)


class YOLOGridView(nn.Module):
    """A YOLO's layers on the fixed path ``images -> grid tensor`` (the same modules, so the same weights)."""

    def __init__(self, yolo: YOLOv1) -> None:
        super().__init__()
        self.backbone, self.head = yolo.backbone, yolo.head
        self.head_kind, self.grid, self.boxes_per_cell = yolo.head_kind, yolo.grid, yolo.boxes_per_cell

    raw = YOLOv1.raw

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.raw(images)


_PAPER = "Redmon, Divvala, Girshick & Farhadi, You Only Look Once: Unified, Real-Time Object Detection, CVPR 2016"
_INFO = dict(family="YOLOv1", paper=_PAPER, task="detection", num_classes=11, in_chans=1, default_size=128,
             min_size=32, mean=(0.2860,), std=(0.3530,), params_source="cnnlab design (counted)", classifier="head.3")
_HEAD_KEYS = ("boxes_per_cell", "head", "grid", "score_thresh", "nms_thresh", "max_detections")


def _yolo(backbone: str, num_classes: int, in_chans: int, img_size: int, **kwargs) -> YOLOv1:
    head = {k: kwargs.pop(k) for k in _HEAD_KEYS if k in kwargs}
    return YOLOv1(build_backbone(backbone, in_chans, **kwargs), num_classes, img_size, **head)


@register_model(params=753_876, first_conv="backbone.body.stem.conv", **_INFO)
def yolo_v1_fastnet(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> YOLOv1:
    """YOLO v1 on FastNet (whitened stem, widths 32-64-96-128, stride 16: an 8x8 grid at 128 px)."""
    return _yolo("fastnet", num_classes, in_chans, img_size, **kwargs)


@register_model(params=3_371_988, first_conv="backbone.body.conv1", **_INFO)
def yolo_v1_resnet18(num_classes: int = 11, in_chans: int = 1, img_size: int = 128, **kwargs) -> YOLOv1:
    """YOLO v1 on ResNet-18 up to layer3 (stride 16)."""
    return _yolo("resnet18", num_classes, in_chans, img_size, **kwargs)
