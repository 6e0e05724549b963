"""Semantic segmentation: FCN-32s/16s/8s (Long, Shelhamer & Darrell, CVPR 2015; and FCN-4s/2s, the same skip
rule continued to pool2/pool1), convolutionalization,
the paper's metrics (one confusion matrix over the set) plus a boundary score, colour overlays.

``convolutionalize(classifier)``; ``create_model("fcn8s_vgg16", num_classes=21)`` (registered with
``task="segmentation"``); ``SegmentationMeter`` / ``segmentation_scores`` / ``boundary_f1``;
``overlay`` / ``render_predictions``.
"""

from cnnlab.segmentation import models, task  # noqa: F401 - register the FCNs and the segmentation task
from cnnlab.segmentation.convolutionalize import convolutionalize, linear_to_conv
from cnnlab.segmentation.fcn import FCN, bilinear_kernel, bilinear_upsampler, init_from_resnet, init_from_vgg
from cnnlab.segmentation.metrics import SegmentationMeter, boundary_f1, confusion_matrix, segmentation_scores
from cnnlab.segmentation.predict import segment_images
from cnnlab.segmentation.render import overlay, panel, render_predictions

__all__ = ["FCN", "SegmentationMeter", "bilinear_kernel", "bilinear_upsampler", "boundary_f1", "confusion_matrix",
           "convolutionalize", "init_from_resnet", "init_from_vgg", "linear_to_conv", "overlay", "panel",
           "render_predictions", "segment_images", "segmentation_scores"]
