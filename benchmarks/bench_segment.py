"""FCN-32s vs 16s vs 8s (vs 4s vs 2s) on Fashion-MNIST scenes: does the skip architecture sharpen the masks?

Long, Shelhamer & Darrell (2015, §4.2, Table 1): fusing pool4 (16s) and pool3 (8s) predictions adds
detail -- mean IU 59.4 -> 62.4 -> 62.7 on PASCAL VOC 2011 val -- and the masks' boundaries sharpen
(Fig. 4); the paper stops at 8s. FCN-4s and FCN-2s continue the rule with the pool2 and pool1 skips. Here all
share the FastNet backbone, one recipe (default ``scenes-fcn8s``: same data, schedule, seed) and differ only in
the skips. Printed: mean IU, pixel accuracy, boundary F1 (2-px tolerance), training wall time, inference img/s,
each model's ratio against the first model measured in the same run, and the recipe's target per model
(``TARGETS``: test mean IU >= 0.80 in <= 15 min). Runs at ``--threads`` 2 by default, as the recorded numbers.

    python benchmarks/bench_segment.py            # the full recipe (128x128 scenes, ~13-20 min per model here)
    python benchmarks/bench_segment.py --quick    # 64x64 scenes, 2,000 train images, 4 epochs
    python benchmarks/bench_segment.py --models fcn8s_fastnet   # one model
    python benchmarks/bench_segment.py --recipe scenes-fcn2s --models fcn2s_fastnet   # the FCN-2s recipe
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from cnnlab.data import load_dataset
from cnnlab.train import fit, get_recipe
from cnnlab.train.hardware import cpu_info
from cnnlab.train.recipes import TARGETS


def inference_speed(model: torch.nn.Module, size: int, batch: int = 32, reps: int = 3) -> float:
    model.eval()
    x = torch.randn(batch, 1, size, size)
    with torch.inference_mode():
        model(x)
        t = time.perf_counter()
        for _ in range(reps):
            model(x)
    return batch * reps / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64x64 scenes, 2,000 train / 500 test, 4 epochs")
    ap.add_argument("--models", default="fcn32s_fastnet,fcn16s_fastnet,fcn8s_fastnet,fcn4s_fastnet,fcn2s_fastnet")
    ap.add_argument("--recipe", default="scenes-fcn8s", help="the recipe every model trains with")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads [2: the recorded numbers'; 0: torch's default, all physical cores]")
    args = ap.parse_args()
    cfg = get_recipe(args.recipe).replace(threads=args.threads)
    if args.threads:  # inference speed too, after fit() has put the thread count back
        torch.set_num_threads(args.threads)
    data = cfg.data
    if args.quick:
        data = "fashion-scenes:size=64,n_train=2000,n_test=500"
        cfg = cfg.replace(epochs=4)
    if args.epochs:
        cfg = cfg.replace(epochs=args.epochs)
    print(f"cpu: {cpu_info().describe()}, torch {torch.__version__}, "
          f"threads {cfg.threads or torch.get_num_threads()}; data {data}; {cfg.epochs} epochs, "
          f"{cfg.optimizer} lr {cfg.lr} {cfg.schedule}, batch {cfg.batch_size}, augment {cfg.augment}, "
          f"tta {cfg.tta}")
    t0 = time.perf_counter()
    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    print(f"data: {len(train)} train / {len(test)} test scenes {tuple(train.image_shape)} "
          f"({time.perf_counter() - t0:.1f} s to generate or load)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            run = cfg.replace(model=name, data=data, seed=args.seed, progress="line", out_dir=f"{tmp}/{name}")
            t = time.perf_counter()
            r = fit(run, train_data=train, test_data=test)
            wall = time.perf_counter() - t
            f = r.final
            rows.append(dict(model=name, mean_iu=f["mean_iu"], pixel_acc=f["pixel_acc"], fw_iu=f["fw_iu"],
                             boundary_f1=f["boundary_f1"], train_s=wall,
                             img_s=inference_speed(r.model, train.image_shape[-1])))
    base = rows[0]
    print(f"\n| model | mean IU | pixel acc | f.w. IU | boundary F1 | train s | infer img/s | "
          f"mean IU / {base['model']} | boundary F1 / {base['model']} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['mean_iu']:.4f} | {100 * r['pixel_acc']:.2f}% | {r['fw_iu']:.4f} | "
              f"{r['boundary_f1']:.4f} | {r['train_s']:.0f} | {r['img_s']:.0f} | "
              f"{r['mean_iu'] / base['mean_iu']:.3f}x | {r['boundary_f1'] / base['boundary_f1']:.3f}x |")
    target = TARGETS.get(args.recipe)
    if not args.quick and target is not None:
        print()
        for r in rows:
            ok = target.met(r["mean_iu"], r["train_s"])
            print(f"target {target.describe()}, {r['model']}: {r['mean_iu']:.4f} in "
                  f"{r['train_s'] / 60:.1f} min -> {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
