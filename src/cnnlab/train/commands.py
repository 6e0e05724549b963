"""``cnnlab train``, ``cnnlab eval`` and ``cnnlab predict``: parse, call the library, print."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cnnlab.cli_support import add_train_arguments, build_config, print_bootstrap
from cnnlab.errors import ConfigError
from cnnlab.train.config import TTA_MODES, canonical_tta


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (TrainConfig options, a --recipe or a --config YAML)",
                       description="Train a model. Precedence: --recipe < --config file < flags. "
                                   "--resume RUN_DIR continues a run exactly where its last checkpoint stopped.")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (or from a checkpoint file)")
    p.add_argument("--json", action="store_true", help="print the final result as JSON")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint: loss, top-1/top-5, per-class accuracy")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its best)")
    p.add_argument("--data", help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", help="dataset directory")
    p.add_argument("--split", default="test", choices=("test", "train"), help="which split [test]")
    p.add_argument("--tta", default=None, help="test-time augmentation: " + "|".join(TTA_MODES))
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw weights even if the run kept an EMA")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B",
                   help="also a percentile confidence interval of top-1 and per-class accuracy from B "
                        "bootstrap resamples of the evaluated images (e.g. 1000)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of --bootstrap [0.95]")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resamples [0]")
    p.add_argument("--plot", metavar="PNG", help="with --bootstrap: write the per-class intervals figure here")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="classify image files with a trained checkpoint")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its best)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print predictions as JSON")
    p.set_defaults(func=cmd_predict)


# --------------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.train.engine import fit
    from cnnlab.train.task import get_task

    cfg = build_config(args)
    result = fit(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    if args.json:
        print(json.dumps(result.summary(), indent=1))
    if result.interrupted:
        print(f"interrupted: saved {result.run_dir}/last.safetensors; continue with "
              f"`cnnlab train --resume {result.run_dir}`", file=sys.stderr)
        return 130
    if not args.json and cfg.progress != "none":
        task = get_task(cfg.task)
        if result.final:
            print(task.final_line(result.final))
        if result.best:
            print(f"best epoch {result.best['epoch']} ({result.best['metric']} {result.best['value']:.4f})"
                  + ("; stopped early" if result.stopped_early else ""))
        print(f"run directory: {result.run_dir} (metrics.csv, curves.png, {task.pictures}, tb/, "
              "best/last.safetensors)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """The checkpoint's own task decides the metrics (a segmentation run gets mean IU, ...)."""
    from cnnlab.train.checkpoint import load_checkpoint
    from cnnlab.train.evaluation import evaluate_checkpoint
    from cnnlab.train.task import get_task

    if args.bootstrap and (args.bootstrap < 2 or not 0 < args.confidence < 1):
        raise ConfigError(f"--bootstrap needs B >= 2 resamples and --confidence in (0, 1), got {args.bootstrap} "
                          f"and {args.confidence}")
    tta = None if args.tta is None else canonical_tta(args.tta, "--tta")
    ckpt = load_checkpoint(args.checkpoint)
    r = evaluate_checkpoint(ckpt, data=args.data, data_dir=args.data_dir, split=args.split, tta=tta,
                            batch_size=args.batch_size, device=args.device, use_ema=not args.no_ema)
    boot = bootstrap_of(ckpt, r, args) if args.bootstrap else None
    if args.json:
        extra = {"bootstrap": boot.to_dict()} if boot is not None else {}
        print(json.dumps({**r, **extra}, indent=1))
        return 0
    if boot is not None:
        print(f"{r['checkpoint']} on {r['data']}/{r['split']} ({r['n']} images, TTA {r['tta']}):")
        print(f"  loss {r['loss']:.4f}  top-5 {100 * r['top5']:.2f}%")
        print_bootstrap(boot)
        return 0
    print("\n".join(get_task(r["task"]).report_lines(r)))
    return 0


def bootstrap_of(ckpt, r: dict, args: argparse.Namespace):
    """Percentile bootstrap intervals of top-1 and per-class accuracy over the evaluated images."""
    from cnnlab.ensemble.bootstrap import bootstrap_accuracy, predict_labels
    from cnnlab.train.evaluation import load_eval_data
    from cnnlab.train.process import resolve_device
    from cnnlab.train.task import resize_input

    if r["task"] != "classification":
        raise ConfigError(f"--bootstrap resamples images scored right or wrong (classification); {r['checkpoint']} "
                          f"is a {r['task']} checkpoint")
    device = resolve_device(args.device)
    model = ckpt.build_model(use_ema=not args.no_ema).to(device)
    _, data = load_eval_data(ckpt, args.data, args.data_dir, args.split)
    size = ckpt.meta["img_size"]
    pred = predict_labels(model, data, tta=r["tta"], batch_size=args.batch_size, device=device,
                          prepare=lambda x: resize_input(x, size))
    boot = bootstrap_accuracy(pred == data.labels, data.labels, num_classes=len(r["classes"]), classes=r["classes"],
                              resamples=args.bootstrap, confidence=args.confidence, seed=args.bootstrap_seed)
    if args.plot:
        from cnnlab.ensemble.plots import plot_bootstrap

        plot_bootstrap(boot, args.plot)
    return boot


# ------------------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.predict import classify
    from cnnlab.train.checkpoint import load_checkpoint

    if args.topk < 1:
        raise ConfigError(f"--topk must be >= 1, got {args.topk}")
    ckpt = load_checkpoint(args.checkpoint)
    ckpt.require_task("classification", "predict")
    model = ckpt.build_model()  # preprocesses like training: the data's mean/std at the trained size
    results = classify(model, [Path(p) for p in args.images], topk=args.topk, class_names=ckpt.classes or None)
    if args.json:
        print(json.dumps([{"image": img, "top": [{"class": c, "prob": p} for c, p in res]}
                          for img, res in zip(args.images, results)], indent=1))
        return 0
    for img, res in zip(args.images, results):
        print(f"{img}: " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in res))
    return 0
