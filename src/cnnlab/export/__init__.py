"""Export: a zoo model or a trained run as ONNX or TorchScript, checked against PyTorch.

``export_model(source, path, format="onnx")`` writes the model and a JSON sidecar (class names,
preprocessing, verification) and returns an :class:`ExportResult`.
"""

from cnnlab.export.exporter import FORMATS, ExportResult, export_model, measure_latency

__all__ = ["FORMATS", "ExportResult", "export_model", "measure_latency"]
