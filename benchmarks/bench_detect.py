"""The lectures' detection story as numbers: R-CNN -> SPPNet -> Fast R-CNN -> Faster R-CNN -> YOLO v1 on one split.

Every method trains on the same Fashion-MNIST scenes (128x128, 11 classes with the background; default the
``scenes-faster-rcnn`` recipe: fresh scenes each epoch, AdamW one-cycle, flips) and is scored on the same test
scenes. One table: mAP@0.5, COCO mAP@[.5:.95], training wall time, inference img/s (batch 32) and the test-time
speed-up over R-CNN (papers: SPPNet 24-102x, Fast R-CNN 146-213x; Faster R-CNN 5 fps vs YOLO 45 fps on a GPU).

The peer row is torchvision's own ``torchvision.models.detection.FasterRCNN`` with the same backbone (FastNet,
whitened stem, stride 16), the same anchors (16/32/64 px x 0.5/1/2), RoI pooling 7x7, fc 256, the same sampling
sizes, proposal counts and per-class test NMS (0.3, the papers' released setting; torchvision's default is 0.5),
``min_size = max_size =`` the scene size (no resize to 800), the same data, loader, optimizer, schedule and number
of epochs -- a training loop of this file, the same steps as the engine's.

R-CNN / SPPNet rows come from ``cnnlab.detection.rcnn.fit_rcnn / fit_sppnet`` and YOLO from the registry's ``yolo*``
model when this build has them; otherwise the row says "skipped" and why.

    python benchmarks/bench_detect.py                       # the recipe's full budget per method (quiet machine)
    python benchmarks/bench_detect.py --quick               # 2,000 train / 300 test scenes, 3 epochs
    python benchmarks/bench_detect.py --methods faster-rcnn,torchvision --epochs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from cnnlab.data import load_dataset, normalize_uint8
from cnnlab.train import fit, get_recipe
from cnnlab.train.hardware import cpu_info, load_average

METHODS = ("rcnn", "sppnet", "fast-rcnn", "faster-rcnn", "yolo", "torchvision")


def inference_speed(model: nn.Module, images: torch.Tensor, reps: int = 3, **kwargs) -> float:
    """Images per second of ``model(images, **kwargs)`` in eval mode (one warm-up pass)."""
    model.eval()
    with torch.inference_mode():
        model(images, **kwargs)
        t = time.perf_counter()
        for _ in range(reps):
            model(images, **kwargs)
    return len(images) * reps / (time.perf_counter() - t)


def staged_speed(model: nn.Module, test, n: int = 32) -> float:
    """R-CNN / SPPNet images per second on ``n`` test scenes with their selective-search proposals given (cached,
    as in the papers' test-time comparisons, which exclude proposal time; the other rows have no such step)."""
    from cnnlab.detection.proposals import proposals_for

    props, _ = proposals_for(test.images[:n], model.proposal_settings)
    return inference_speed(model, normalised(test, n), reps=1, proposals=props)


def normalised(ds, n: int = 32) -> torch.Tensor:
    return normalize_uint8(ds.images[:n], ds.mean, ds.std)


def engine_row(method: str, model: str, cfg, train, test, tmp: str) -> dict:
    t = time.perf_counter()
    r = fit(cfg.replace(model=model, progress="line", out_dir=f"{tmp}/{method}"), train_data=train, test_data=test)
    wall = time.perf_counter() - t
    return dict(method=method, model=model, map_50=r.final["map_50"], map=r.final["map"], train_s=wall,
                img_s=inference_speed(r.model, normalised(test)))


def staged_row(method: str, cfg, train, test, tmp: str, subset: int, epochs: int) -> dict:
    """R-CNN / SPPNet through ``cnnlab.detection.rcnn.fit_<method>`` (CNN fine-tuning on warped proposals, SVMs
    with hard-negative mining, box regressors) on the first ``subset`` training scenes for ``epochs`` fine-tuning
    epochs (their stages are not one gradient loop; the same test scenes as every row)."""
    from cnnlab.detection import rcnn

    t = time.perf_counter()
    run_cfg = cfg.replace(out_dir=f"{tmp}/{method}", progress="line", train_subset=subset, epochs=epochs)
    result = getattr(rcnn, f"fit_{method}")(run_cfg)
    wall = time.perf_counter() - t
    model = rcnn.load_rcnn(result.run_dir)
    final = result.final
    return dict(method=method, model=getattr(model, "name", method), map_50=final["map_50"], map=final["map"],
                train_s=wall, img_s=staged_speed(model, test), epochs=epochs, train_scenes=subset)


# ------------------------------------------------------------------------------------ the torchvision peer
def _roi_pool_layer(stride: int = 16, size: int = 7) -> nn.Module:
    """RoI pooling 7x7 in the type torchvision's FasterRCNN insists on (``MultiScaleRoIAlign``), as cnnlab's head."""
    from torchvision.ops import MultiScaleRoIAlign

    class RoIPool(MultiScaleRoIAlign):
        def forward(self, features, proposals, image_sizes):
            from torchvision.ops import roi_pool

            return roi_pool(features["0"], proposals, size, 1.0 / stride)

    return RoIPool(["0"], size, 2)


def torchvision_peer(num_classes: int, size: int, mean, std, widths=(32, 64, 96, 128)) -> nn.Module:
    """``torchvision.models.detection.FasterRCNN`` with cnnlab's FastNet body and the same settings."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

    from cnnlab.detection.backbones import FastNetC4

    body = FastNetC4(widths, len(mean), "whitened")
    body.out_channels = widths[-1]
    return FasterRCNN(body, num_classes=None, min_size=size, max_size=size, image_mean=list(mean),
                      image_std=list(std), rpn_anchor_generator=AnchorGenerator(((16, 32, 64),), ((0.5, 1.0, 2.0),)),
                      rpn_pre_nms_top_n_train=600, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_train=150,
                      rpn_post_nms_top_n_test=100, box_roi_pool=_roi_pool_layer(),
                      box_head=TwoMLPHead(widths[-1] * 49, 256), box_predictor=FastRCNNPredictor(256, num_classes),
                      box_batch_size_per_image=64, box_nms_thresh=0.3)


def _denormalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    return x * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)


def torchvision_row(cfg, train, test, out: str | None = None) -> dict:
    """The peer trained with the recipe's optimizer, schedule, epochs, batch size, augmentation and whitening."""
    from cnnlab.data.dense import build_dense_loader
    from cnnlab.detection.metrics import DetectionMeter
    from cnnlab.train.optim import build_optimizer, build_param_groups, build_scheduler

    torch.manual_seed(cfg.seed)
    size, mean, std = train.image_shape[-1], train.mean, train.std
    model = torchvision_peer(train.num_classes, size, mean, std)
    if hasattr(train, "set_epoch"):
        train.set_epoch(0)
    model.backbone.init_from_data(normalised(train, 5000))
    loader = build_dense_loader(train, batch_size=cfg.batch_size, augment=cfg.augment, seed=cfg.seed)
    optimizer = build_optimizer(build_param_groups(model, cfg), cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=len(loader))
    t = time.perf_counter()
    model.train()
    for epoch in range(cfg.epochs):
        loader.set_epoch(epoch)
        for x, target in loader:
            images = list(_denormalise(x, mean, std))
            targets = [{"boxes": b, "labels": lb} for b, lb in zip(target["boxes"], target["labels"])]
            loss = sum(model(images, targets).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"torchvision FasterRCNN epoch {epoch + 1}/{cfg.epochs}: last loss {loss.item():.4f}", flush=True)
    wall = time.perf_counter() - t
    model.eval()
    meter = DetectionMeter(train.classes)
    with torch.inference_mode():
        for x, target in build_dense_loader(test, batch_size=64, shuffle=False):
            preds = model(list(_denormalise(x, mean, std)))
            meter.update(preds, [{"boxes": b, "labels": lb} for b, lb in zip(target["boxes"], target["labels"])])
    m = meter.compute()
    if out:  # the weights, so that --speed-only can time this row again on a quiet machine
        from safetensors.torch import save_file

        Path(out, "torchvision").mkdir(parents=True, exist_ok=True)
        save_file(model.state_dict(), str(Path(out, "torchvision", "model.safetensors")))
    images = list(_denormalise(normalised(test), mean, std))
    return dict(method="torchvision", model="torchvision FasterRCNN (FastNet)", map_50=m["map_50"], map=m["map"],
                train_s=wall, img_s=inference_speed(_ListInput(model), torch.stack(images)))


class _ListInput(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(list(x))


def run_method(method: str, cfg, train, test, tmp: str, staged: tuple[int, int] = (2000, 3)) -> dict:
    """One row; a method this build cannot run is a row with a note instead of numbers."""
    from cnnlab.detection.predict import model_for_method

    try:
        if method == "torchvision":
            return torchvision_row(cfg, train, test, tmp)
        if method in ("rcnn", "sppnet"):
            return staged_row(method, cfg, train, test, tmp, *staged)
        return engine_row(method, model_for_method(method), cfg, train, test, tmp)
    except (ImportError, AttributeError) as e:
        return dict(method=method, note=f"skipped: {e}")
    except Exception as e:  # a method that is not in this build (ConfigError) or fails: say so, keep the table
        import traceback

        traceback.print_exc()
        return dict(method=method, note=f"skipped: {type(e).__name__}: {str(e).splitlines()[0]}")


def speed_rows(out: str, test) -> list[dict]:
    """--speed-only: no training; every finished run under ``out`` (this script's ``--out`` of earlier runs) is
    loaded and its inference timed now, all rows in one process on one machine state (training times and mAP
    come from the runs: ``result.json`` and the ``*.json`` rows files there)."""
    from cnnlab.detection.rcnn import load_rcnn
    from cnnlab.detection.task import DetectionTask
    from cnnlab.train import load_checkpoint
    from cnnlab.train.runs import read_run

    recorded = {}
    for f in sorted(Path(out).glob("*.json")):
        recorded.update({r["method"]: r for r in json.loads(f.read_text()) if "map_50" in r})
    rows = []
    for method in METHODS:
        d = Path(out) / method
        before = os.getloadavg()[0]
        if method == "torchvision":
            if method not in recorded:
                continue
            row = dict(recorded[method])
            if (d / "model.safetensors").is_file():
                from safetensors.torch import load_file

                model = torchvision_peer(test.num_classes, test.image_shape[-1], test.mean, test.std)
                model.load_state_dict(load_file(str(d / "model.safetensors")))
                mean, std = test.mean, test.std
                row["img_s"] = inference_speed(_ListInput(model), _denormalise(normalised(test), mean, std))
            else:
                row["note_speed"] = f"timed in its own run (load {row.get('load_after', float('nan')):.1f})"
        elif (d / "result.json").is_file():
            final = read_run(d).result["final"]
            if method in ("rcnn", "sppnet"):
                img_s = staged_speed(load_rcnn(d), test)
            else:
                model = DetectionTask().model_from_checkpoint(load_checkpoint(d)).eval()
                img_s = inference_speed(model, normalised(test))
            model_name = method if method in ("rcnn", "sppnet") else read_run(d).config.get("model") or method
            row = dict(method=method, model=model_name, map_50=final["map_50"],
                       map=final["map"], train_s=recorded.get(method, {}).get("train_s", float("nan")), img_s=img_s)
        else:
            continue
        rows.append({**row, "speed_load": (before, os.getloadavg()[0])})
        print(rows[-1], flush=True)
    return rows


def write_json_atomic(path: str, rows: list[dict]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(tmp, path)


def print_table(rows: list[dict]) -> None:
    base = next((r for r in rows if r["method"] == "rcnn" and "img_s" in r), None)
    print("\n| method | model | mAP@0.5 | mAP@[.5:.95] | train s | infer img/s | test-time speed-up over R-CNN |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "note" in r:
            print(f"| {r['method']} | - | - | - | - | - | {r['note']} |")
            continue
        up = f"{r['img_s'] / base['img_s']:.1f}x" if base else "- (no R-CNN row)"
        if r.get("note_speed"):
            up += f" ({r['note_speed']})"
        print(f"| {r['method']} | {r['model']} | {r['map_50']:.4f} | {r['map']:.4f} | {r['train_s']:.0f} | "
              f"{r['img_s']:.1f} | {up} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 train / 300 test scenes (fixed), 3 epochs")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--recipe", default="scenes-faster-rcnn")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--staged-subset", type=int, default=2000,
                    help="R-CNN/SPPNet: training scenes (their per-proposal stages cost far more per scene)")
    ap.add_argument("--staged-epochs", type=int, default=3, help="R-CNN/SPPNet: CNN fine-tuning epochs")
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads (0: the recipe's, i.e. torch's default; 1 is faster on a busy machine)")
    ap.add_argument("--out", default=None, help="keep each method's run directory under DIR (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the rows (with the load around each) to FILE")
    ap.add_argument("--speed-only", action="store_true",
                    help="train nothing: time the inference of the finished runs under --out again (a quiet machine)")
    args = ap.parse_args()
    cfg = get_recipe(args.recipe).replace(seed=args.seed)
    if args.threads:
        cfg = cfg.replace(threads=args.threads)
    if args.quick:
        cfg = cfg.replace(data="fashion-scenes:n_train=2000,n_test=300", epochs=3, eval_every=3)
    if args.epochs:
        cfg = cfg.replace(epochs=args.epochs, eval_every=args.epochs)
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    print(f"cpu: {cpu_info().describe()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{load_average()}")
    print(f"data {cfg.data}; {cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr} {cfg.schedule}, "
          f"augment {cfg.augment}, seed {cfg.seed}")
    train, test = load_dataset(cfg.data, "train"), load_dataset(cfg.data, "test")
    rows = []
    if args.speed_only:
        if not args.out:
            raise SystemExit("--speed-only needs --out DIR (where earlier runs of this script left their runs)")
        rows = speed_rows(args.out, test)
        if args.json:
            write_json_atomic(args.json, rows)
    with tempfile.TemporaryDirectory() as tmp:
        for method in [] if args.speed_only else args.methods.split(","):
            if method not in METHODS:
                raise SystemExit(f"unknown method {method!r}; use some of {', '.join(METHODS)}")
            before = os.getloadavg()[0]
            rows.append(run_method(method, cfg, train, test, args.out or tmp, (args.staged_subset, args.staged_epochs)))
            rows[-1] = {"load_before": before, "load_after": os.getloadavg()[0], "cpu": cpu_info().describe(),
                        "threads": torch.get_num_threads(), "data": cfg.data, "epochs": cfg.epochs, **rows[-1]}
            print(rows[-1], flush=True)
            if args.json:
                write_json_atomic(args.json, rows)
    print_table(rows)
    print(f"\nat the end: {load_average()} (timings are indicative when it exceeds the core count)")
    fr = next((r for r in rows if r["method"] == "faster-rcnn" and "map_50" in r), None)
    tv = next((r for r in rows if r["method"] == "torchvision" and "map_50" in r), None)
    if fr and tv:
        print(f"cnnlab Faster R-CNN vs torchvision FasterRCNN: mAP@0.5 {fr['map_50']:.4f} vs {tv['map_50']:.4f}, "
              f"train time {fr['train_s']:.0f} s vs {tv['train_s']:.0f} s, inference {fr['img_s']:.1f} vs "
              f"{tv['img_s']:.1f} img/s")
    if fr and not args.quick:
        ok = fr["map_50"] >= 0.85 and fr["train_s"] <= 20 * 60
        print(f"target Faster R-CNN mAP@0.5 >= 0.85 in <= 20 min: {fr['map_50']:.4f} in {fr['train_s'] / 60:.1f} min "
              f"-> {'met' if ok else 'NOT met'}")
    return 0 if all(math.isfinite(r.get("map_50", 0.0)) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
