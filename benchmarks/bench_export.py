"""Benchmark: exported models on the CPU at batch 1 -- ONNX Runtime (and TorchScript) vs PyTorch eager.

For each model: export with ``cnnlab.export.export_model`` (default dynamo ONNX exporter; its own
verification on the real photo must pass), then time PyTorch eager, ONNX Runtime and the
TorchScript module on that photo, interleaved in rounds (so drift in machine load hits all three
alike), median of ``--runs`` per engine, after warm-up. Same thread count for every engine
(``--threads``, default 1: stable on a shared machine). Reports absolute times, the ratio
PyTorch / runtime (> 1: the export is faster) and file sizes.

    python benchmarks/bench_export.py [--models efficientnet_lite0,resnet18,mobilenet_v2,squeezenet1_1]
                                      [--runs 30] [--threads 1] [--exporter auto|legacy]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

MODELS = ("efficientnet_lite0", "resnet18", "mobilenet_v2", "squeezenet1_1")


def bench(name: str, runs: int, exporter: str, out: Path) -> dict:
    import onnxruntime as ort
    import torch

    from cnnlab.export import export_model
    from cnnlab.export.exporter import reference_input
    from cnnlab.train.source import load_model

    loaded = load_model(name, "imagenet" if name.startswith("efficientnet_lite") else None)
    onnx_r = export_model(loaded, out / f"{name}.onnx", "onnx", exporter=exporter, latency_runs=0)
    ts_r = export_model(loaded, out / f"{name}.pt", "torchscript", latency_runs=0)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_r.path), opts, providers=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(ts_r.path)).eval()
    x = reference_input(loaded, 1)
    xn = x.numpy()
    model = loaded.model.eval()

    def eager():
        with torch.inference_mode():
            model(x)

    def onnxrt():
        sess.run(None, {"input": xn})

    def torchscript():
        with torch.inference_mode():
            scripted(x)

    engines = {"pytorch": eager, "onnxruntime": onnxrt, "torchscript": torchscript}
    times: dict[str, list[float]] = {k: [] for k in engines}
    for fn in engines.values():  # warm-up (TorchScript profiles its first calls)
        for _ in range(5):
            fn()
    for _ in range(runs):
        for k, fn in engines.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    return {"model": name, "weights": loaded.origin, "onnx_bytes": onnx_r.file_bytes, "pt_bytes": ts_r.file_bytes,
            "onnx_max_abs_diff": onnx_r.max_abs_diff, "ts_max_abs_diff": ts_r.max_abs_diff, "opset": onnx_r.opset,
            "exporter": onnx_r.exporter, **{f"{k}_ms": v for k, v in ms.items()},
            "ort_speedup": ms["pytorch"] / ms["onnxruntime"], "ts_speedup": ms["pytorch"] / ms["torchscript"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "legacy"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(bench(name.strip(), args.runs, args.exporter, Path(tmp)))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"CPU, batch 1, {args.threads} thread(s), median of {args.runs} interleaved runs; "
          f"ONNX via {rows[0]['exporter']}, opset {rows[0]['opset']}")
    print(f"{'model':<20} {'ONNX MB':>8} {'.pt MB':>7} {'max|diff|':>9} {'PyTorch ms':>11} {'ORT ms':>8} "
          f"{'ORT x':>6} {'TS ms':>8} {'TS x':>5}")
    for r in rows:
        print(f"{r['model']:<20} {r['onnx_bytes'] / 1e6:8.1f} {r['pt_bytes'] / 1e6:7.1f} {r['onnx_max_abs_diff']:9.1e} "
              f"{r['pytorch_ms']:11.2f} {r['onnxruntime_ms']:8.2f} {r['ort_speedup']:6.2f} "
              f"{r['torchscript_ms']:8.2f} {r['ts_speedup']:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
