"""Inspection: per-layer shapes, parameters, MACs, receptive field, memory; calculators; comparisons."""
