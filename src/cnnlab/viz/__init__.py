"""Visualisation: learned filters, feature maps and class activation maps, as arrays and figures.

Every function takes a zoo name (with ``weights``), a run directory / checkpoint, or a module;
it returns data (numpy arrays, dataclasses) and the ``plot_*`` functions return matplotlib
figures; ``cnnlab viz`` writes them as PNGs, atomically.
"""

from cnnlab.viz.cam import METHODS, CamResult, cam, plot_cams
from cnnlab.viz.features import FeatureMaps, feature_maps, plot_feature_maps
from cnnlab.viz.filters import FilterStats, filter_grid, filter_stats, plot_filters

__all__ = ["METHODS", "CamResult", "FeatureMaps", "FilterStats", "cam", "feature_maps", "filter_grid",
           "filter_stats", "plot_cams", "plot_feature_maps", "plot_filters"]
