"""``cnnlab export MODEL|RUN --format onnx|torchscript``: parse, call :func:`cnnlab.export.export_model`, print."""

from __future__ import annotations

import argparse
import json


def _size(n: int) -> str:
    from cnnlab.analysis.summary import format_bytes

    return format_bytes(n)


def _cmd_export(args: argparse.Namespace) -> int:
    from cnnlab.export import export_model

    r = export_model(args.source, args.output, args.format, weights=args.weights, opset=args.opset,
                     dynamic_batch=args.dynamic_batch, exporter=args.exporter,
                     latency_runs=0 if args.no_latency else args.latency_runs)
    if args.json:
        print(json.dumps(r.as_dict(), indent=1))
        return 0
    opset = f", opset {r.opset}" if r.opset is not None else ""
    batch = "dynamic batch" if r.dynamic_batch else "batch 1"
    print(f"{r.model} -> {r.path} ({_size(r.file_bytes)}; {r.exporter}{opset}; input "
          f"{'x'.join(map(str, r.input_shape[1:]))}, {batch})")
    print(f"sidecar (class names, preprocessing): {r.sidecar}")
    runtime = "ONNX Runtime" if r.format == "onnx" else "TorchScript"
    print(f"verified on a real photo: max |{runtime} - PyTorch| = {r.max_abs_diff:.2e} "
          f"(allowed {r.atol:g} + {r.rtol:g}*|output|)" + ("" if r.verified_with == "the model's own"
                                                          else f"; weights: {r.verified_with}"))
    if r.torch_ms is not None and r.runtime_ms is not None:
        print(f"CPU latency at batch 1 (median): PyTorch {r.torch_ms:.2f} ms, {runtime} {r.runtime_ms:.2f} ms "
              f"({r.torch_ms / r.runtime_ms:.2f}x)")
    return 0


def register(sub) -> None:
    """Add ``export`` to the ``cnnlab`` sub-parsers."""
    p = sub.add_parser("export", help="write a model as ONNX or TorchScript (+ JSON sidecar), verified")
    p.add_argument("source", metavar="MODEL|RUN", help="registered model name, or a run directory / checkpoint")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("-o", "--output", default=None, help="output file (default: MODEL.onnx / MODEL.pt)")
    p.add_argument("--weights", default="imagenet",
                   help='for a model name: "imagenet" (default), a weights file, or "none" (random init)')
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's; <18 uses the "
                   "legacy exporter)")
    p.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto",
                   help="ONNX exporter (default auto: torch.export-based, legacy for opset < 18)")
    p.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    p.add_argument("--latency-runs", type=int, default=30, help="timed runs per engine (default 30)")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_export)
