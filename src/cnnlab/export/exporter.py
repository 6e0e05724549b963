"""Export to ONNX or TorchScript, then prove the file computes what PyTorch computes.

Exporters. ONNX uses ``torch.onnx.export``: by default its ``torch.export``-based ("dynamo")
exporter, PyTorch's default since 2.9 and the one that stays (opset 18 and newer); an
``opset`` below 18 selects the legacy TorchScript-based exporter, the only one that writes
older opsets (it is deprecated upstream). Both work offline. TorchScript uses
``torch.jit.trace``: the zoo's forwards have no data-dependent control flow, and the
verification below catches a trace that baked in a shape.

Verification (on every export): a real photo (``grace_hopper.jpg``, shipped with matplotlib)
goes through the model's own eval transform, then through PyTorch and through the exported
file (ONNX Runtime on the CPU, or the reloaded TorchScript module); the outputs must agree
within ``atol + rtol * |PyTorch|`` (1e-4 each), elementwise, as ``numpy.allclose`` does. With
``dynamic_batch`` a batch of two (photo, mirrored photo) is checked as well. A model whose output is
constant (an untrained FCN: its score layers start at zero, Long et al. 2015 §4.3, so every output is 0)
would pass any export: then a copy with its all-zero weight tensors randomised is exported and checked
as well (same graph, outputs that depend on the input), and the file written holds the model's own weights.
The sidecar records the real output shape (``[1, K]`` scores, ``[1, K, H, W]`` per-pixel score maps).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab._io import atomic_write
from cnnlab.errors import ConfigError, ExportError
from cnnlab.train.source import LoadedModel, load_model

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
MIN_DYNAMO_OPSET = 18

__all__ = ["FORMATS", "ExportResult", "export_model", "measure_latency", "reference_input"]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and measured (times: median milliseconds at batch 1, CPU)."""

    model: str
    format: str
    path: Path
    sidecar: Path
    exporter: str
    opset: int | None
    file_bytes: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    dynamic_batch: bool
    max_abs_diff: float
    atol: float
    rtol: float
    verified_with: str = "the model's own"  # weights of the verified export (see the module docstring)
    output_std: float = 0.0  # spread of the reference outputs: 0 means the check could not tell exports apart
    torch_ms: float | None = None
    runtime_ms: float | None = None  # ONNX Runtime, or the reloaded TorchScript module
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(path=str(self.path), sidecar=str(self.sidecar), input_shape=list(self.input_shape),
                 output_shape=list(self.output_shape), warnings=list(self.warnings))
        return d


def reference_input(loaded: LoadedModel, batch: int = 1) -> torch.Tensor:
    """A real photo in the model's eval transform (grayscale for 1-channel models); batch 2 adds its mirror."""
    from matplotlib import cbook

    from cnnlab.predict import preprocess

    photo = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    x = preprocess(photo, getattr(loaded.model, "pretrained_cfg", {})).unsqueeze(0)
    if batch == 2:
        x = torch.cat([x, x.flip(-1)])
    return x


def measure_latency(fn: Callable[[], Any], runs: int = 30, warmup: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]


@contextlib.contextmanager
def _quiet(caught: list[str]):
    """Exporters print progress and warn a lot; keep their warnings (first lines) for the sidecar."""
    with warnings.catch_warnings(record=True) as ws, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        yield
    for w in ws:
        line = str(w.message).strip().splitlines()[0][:200] if str(w.message).strip() else ""
        if line and line not in caught:
            caught.append(line)


def _onnx_bytes(model: nn.Module, x: torch.Tensor, opset: int | None, dynamic_batch: bool,
                exporter: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model.onnx"
        if exporter == "dynamo":
            shapes = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},) if dynamic_batch else None
            prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, input_names=["input"],
                                     output_names=["logits"], dynamic_shapes=shapes, verbose=False)
            prog.save(f, external_data=False)
        else:
            axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(model, (x,), f, dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["logits"], dynamic_axes=axes, do_constant_folding=True)
        return f.read_bytes()


def _onnx_opset(data: bytes) -> int | None:
    import onnx

    proto = onnx.load_from_string(data)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _ort_session(data: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # the same threads PyTorch uses: a fair comparison
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _check(name: str, fmt: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> float:
    if ref.shape != got.shape:
        raise ExportError(f"{name}: the {fmt} export returns shape {got.shape}, PyTorch {ref.shape}")
    diff = np.abs(got.astype(np.float64) - ref)
    worst = float(diff.max()) if diff.size else 0.0
    if not np.isfinite(worst) or (diff > atol + rtol * np.abs(ref)).any():
        raise ExportError(f"{name}: the {fmt} export differs from PyTorch by up to {worst:.3g} "
                          f"(allowed {atol:g} + {rtol:g}*|output|)")
    return worst


def _check_options(format: str, exporter: str, opset: int | None) -> str:
    """Validate the export options and return the exporter to use (``auto``: dynamo, legacy for ``opset`` < 18)."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if exporter not in ("auto", "dynamo", "legacy"):
        raise ConfigError(f"unknown exporter {exporter!r}; use auto, dynamo or legacy")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= 23):
        raise ConfigError(f"opset must be an integer from 7 to 23, got {opset!r}")
    if format == "onnx" and exporter == "auto":
        exporter = "legacy" if opset is not None and opset < MIN_DYNAMO_OPSET else "dynamo"
    if format == "onnx" and exporter == "dynamo" and opset is not None and opset < MIN_DYNAMO_OPSET:
        raise ConfigError(f"the dynamo ONNX exporter writes opset {MIN_DYNAMO_OPSET} or newer; "
                          f"use exporter='legacy' for opset {opset}")
    return exporter


def _export_onnx(model: nn.Module, name: str, example: torch.Tensor, opset: int | None, dynamic_batch: bool,
                 exporter: str, caught: list[str]):
    """(file bytes, opset written, exporter name, a function running the file in ONNX Runtime)."""
    try:
        with _quiet(caught), torch.no_grad():
            data = _onnx_bytes(model, example, opset, dynamic_batch, exporter)
    except Exception as e:  # exporters raise many types; the user needs the first line
        raise ExportError(f"{name} cannot be exported to onnx ({exporter} exporter): {_first_line(e)}") from None
    try:
        sess = _ort_session(data)
    except Exception as e:
        raise ExportError(f"{name}: ONNX Runtime cannot load the export: {_first_line(e)}") from None
    if not sess.get_inputs():
        raise ExportError(f"{name} cannot be exported to onnx ({exporter} exporter): the graph has no input, the "
                          "forward leaves torch (.numpy(), .item(), Python numbers), so the export recorded constants")
    name_in = sess.get_inputs()[0].name

    def run(x: torch.Tensor) -> np.ndarray:
        return sess.run(None, {name_in: x.numpy()})[0]
    return data, _onnx_opset(data), f"torch.onnx ({exporter})", run


def _export_torchscript(model: nn.Module, name: str, example: torch.Tensor, caught: list[str]):
    """(file bytes, None, exporter name, a function running the reloaded TorchScript module)."""
    try:
        with _quiet(caught), torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
            buf = io.BytesIO()
            torch.jit.save(traced, buf)
            data = buf.getvalue()
            scripted = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    except Exception as e:
        raise ExportError(f"{name} cannot be exported to torchscript (torch.jit.trace): {_first_line(e)}") from None

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return scripted(x).numpy()
    return data, None, "torch.jit.trace", run


def verification_model(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, str]:
    """(the model to verify the export on, what its weights are): ``model`` itself, unless its output on ``x`` is
    constant; then a copy whose all-zero weight tensors (ndim >= 2) are drawn from N(0, 1/fan_in), seed 0."""
    with torch.inference_mode():
        out = model(x).float()
    if out.numel() > 1 and bool((out != out.flatten()[0]).any()):
        return model, "the model's own"
    probe = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in probe.parameters():
            if p.dim() >= 2 and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * p[0].numel() ** -0.5)
    return probe, "a copy with its all-zero layers randomised (the model's own output is constant)"


def _export(format: str, model: nn.Module, name: str, example: torch.Tensor, opset: int | None,
            dynamic_batch: bool, exporter: str, caught: list[str]):
    if format == "onnx":
        return _export_onnx(model, name, example, opset, dynamic_batch, exporter, caught)
    return _export_torchscript(model, name, example, caught)


def export_model(source: str | os.PathLike | nn.Module | LoadedModel, path: str | os.PathLike | None = None,
                 format: str = "onnx", *, weights: str | None = "imagenet", opset: int | None = None,
                 dynamic_batch: bool = False, exporter: str = "auto", atol: float = 1e-4, rtol: float = 1e-4,
                 latency_runs: int = 30) -> ExportResult:
    """Export ``source`` (zoo name, run directory/checkpoint, or module) to ``path``, verify, time.

    Writes the model file and ``<path>.json`` (class names, preprocessing, input/output layout,
    the verification), both atomically. ``path`` defaults to ``<name>.onnx`` / ``<name>.pt``.
    ``exporter`` (ONNX only): ``"dynamo"``, ``"legacy"`` or ``"auto"`` (dynamo, unless ``opset``
    is below 18). ``latency_runs=0`` skips the timing. Raises :class:`ExportError` with one
    line when the model cannot be exported or the file does not reproduce PyTorch's outputs.
    """
    exporter = _check_options(format, exporter, opset)
    loaded = load_model(source, weights, tasks=("classification", "segmentation", "detection"))
    model = loaded.model.eval()
    unsupported = getattr(model, "export_unsupported", None)  # a model that says why it has no static graph
    if unsupported:
        raise ExportError(f"{loaded.name} cannot be exported to {format}: {unsupported}")
    if callable(getattr(model, "export_view", None)):  # a one-pass detector: its graph up to decoding and NMS
        model = model.export_view().eval()
    path = Path(path) if path is not None else Path(f"{loaded.name}{SUFFIX[format]}")
    x1 = reference_input(loaded, 1)
    checks = [x1, reference_input(loaded, 2)] if dynamic_batch else [x1]
    probe, verified_with = verification_model(model, x1)
    with torch.inference_mode():
        refs = [probe(x).float().numpy().astype(np.float64) for x in checks]
    example = checks[-1]  # export at batch 2 when the batch is dynamic: batch 1 would be specialised
    caught: list[str] = []
    data, used_opset, exporter_name, run = _export(format, model, loaded.name, example, opset, dynamic_batch,
                                                   exporter, caught)
    if probe is not model:  # the same graph with input-dependent outputs: what is checked below
        run = _export(format, probe, loaded.name, example, opset, dynamic_batch, exporter, caught)[3]
    worst = max(_check(loaded.name, format, ref, run(x), atol, rtol) for ref, x in zip(refs, checks))
    output_std = float(refs[0].std())
    if output_std == 0:
        caught.append("the outputs do not depend on the input: the check cannot tell a wrong export")
    torch_ms = runtime_ms = None
    if latency_runs > 0:
        def eager() -> None:
            with torch.inference_mode():
                model(x1)
        torch_ms = measure_latency(eager, latency_runs)
        runtime_ms = measure_latency(lambda: run(x1), latency_runs)
    atomic_write(path, data)
    sidecar = path.with_name(path.name + ".json")
    result = ExportResult(
        model=loaded.name, format=format, path=path, sidecar=sidecar, exporter=exporter_name, opset=used_opset,
        file_bytes=len(data), input_shape=tuple(x1.shape), output_shape=tuple(refs[0].shape),
        dynamic_batch=dynamic_batch, max_abs_diff=worst, atol=atol, rtol=rtol, verified_with=verified_with,
        output_std=output_std, torch_ms=torch_ms, runtime_ms=runtime_ms, warnings=tuple(caught))
    atomic_write(sidecar, json.dumps(_sidecar(loaded, result), indent=1).encode())
    return result


def _sidecar(loaded: LoadedModel, r: ExportResult) -> dict[str, Any]:
    p = loaded.preprocess
    c, h, w = r.input_shape[1:]
    batch = "batch" if r.dynamic_batch else 1
    return {
        "model": loaded.name, "weights": loaded.origin, "format": r.format, "file": r.path.name,
        "exporter": r.exporter, "opset": r.opset, "torch": torch.__version__,
        "input": {"name": "input", "shape": [batch, c, h, w], "dtype": "float32", "layout": "NCHW"},
        "output": {"name": "logits", "shape": [batch, *r.output_shape[1:]], "dtype": "float32",
                   "meaning": getattr(loaded.model, "export_meaning", None) or (
                       "unnormalised class scores per pixel [N, K, H, W]; softmax over K gives probabilities"
                       if len(r.output_shape) == 4 else "unnormalised class scores; softmax gives probabilities")},
        "class_names": loaded.class_names,
        "preprocess": {
            "steps": ["resize the shorter side to resize_size (interpolation)", "center-crop input_size",
                      "to float in [0, 1] (divide by 255)", "subtract mean, divide by std, per channel"],
            "resize_size": p["resize_size"], "input_size": p["input_size"], "interpolation": p["interpolation"],
            "color": "grayscale (L)" if c == 1 else "RGB",
            "mean": list(p["mean"]) if c != 1 else [sum(p["mean"]) / len(p["mean"])],
            "std": list(p["std"]) if c != 1 else [sum(p["std"]) / len(p["std"])],
        },
        "verification": {"input": "grace_hopper.jpg (matplotlib sample data) in the transform above",
                         "weights": r.verified_with, "output_std": r.output_std,
                         "max_abs_diff": r.max_abs_diff, "atol": r.atol, "rtol": r.rtol,
                         "torch_ms_batch1": r.torch_ms, "runtime_ms_batch1": r.runtime_ms},
        "export_warnings": list(r.warnings),
    }
