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
        f = result.final
        if f:
            print(final_line(f))
        if result.best:
            print(f"best epoch {result.best['epoch']} ({result.best['metric']} {result.best['value']:.4f})"
                  + ("; stopped early" if result.stopped_early else ""))
        pictures = "confusion_matrix.png" if cfg.task == "classification" else "predictions.png"
        print(f"run directory: {result.run_dir} (metrics.csv, curves.png, {pictures}, tb/, best/last.safetensors)")
    return 0


def final_line(f: dict) -> str:
    """One line of final metrics: top-1/top-5 for classification, the FCN scores for segmentation."""
    if "mean_iu" in f:
        tta = f" with {f['tta']} TTA (without: {f['mean_iu_no_tta']:.4f})" if f.get("tta") else ""
        return (f"final {f['split']} mean IU {f['mean_iu']:.4f}{tta}, pixel acc {100 * f['pixel_acc']:.2f}%, "
                f"mean acc {100 * f['mean_acc']:.2f}%, f.w. IU {f['fw_iu']:.4f}, loss {f['loss']:.4f}")
    tta = f" with {f['tta']} TTA (without: {100 * f['top1_no_tta']:.2f}%)" if f.get("tta") else ""
    return f"final {f['split']} top-1 {100 * f['top1']:.2f}%{tta}, top-5 {100 * f['top5']:.2f}%, loss {f['loss']:.4f}"


# ---------------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.data import load_dataset
    from cnnlab.train.checkpoint import load_checkpoint
    from cnnlab.train.engine import resolve_device
    from cnnlab.train.metrics import evaluate

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.bootstrap and (args.bootstrap < 2 or not 0 < args.confidence < 1):
        raise ConfigError(f"--bootstrap needs B >= 2 resamples and --confidence in (0, 1), got {args.bootstrap} "
                          f"and {args.confidence}")
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ckpt.config
    tta = args.tta if args.tta is not None else cfg.tta
    tta = canonical_tta(tta, "--tta")
    device = resolve_device(args.device)
    model = ckpt.build_model(use_ema=not args.no_ema).to(device)
    data_name = args.data or ckpt.meta.get("data") or cfg.data
    data = load_dataset(data_name, split=args.split, data_dir=args.data_dir or cfg.data_dir)
    m = ckpt.meta
    if tuple(data.image_shape[:1]) != (m["in_chans"],) or data.num_classes != m["num_classes"]:
        raise ConfigError(f"{data_name} ({data.num_classes} classes, {data.image_shape[0]} channels) does not "
                          f"match the checkpoint ({m['num_classes']} classes, {m['in_chans']} channels)")
    img = m["img_size"]

    def prepare(x):
        import torch.nn.functional as F

        return x if x.shape[-1] == img else F.interpolate(x, size=(img, img), mode="bilinear", align_corners=False)

    # normalise as in training (the training split's statistics travel in the checkpoint)
    data.mean, data.std = tuple(m["mean"]), tuple(m["std"])
    metrics = evaluate(model, data, batch_size=args.batch_size, tta=tta, device=device, prepare=prepare)
    classes = ckpt.classes or data.classes
    boot = None
    if args.bootstrap:
        from cnnlab.ensemble.bootstrap import bootstrap_accuracy, predict_labels

        pred = predict_labels(model, data, tta=tta, batch_size=args.batch_size, device=device, prepare=prepare)
        boot = bootstrap_accuracy(pred == data.labels, data.labels, num_classes=len(classes), classes=classes,
                                  resamples=args.bootstrap, confidence=args.confidence, seed=args.bootstrap_seed)
    if boot is not None and args.plot:
        from cnnlab.ensemble.plots import plot_bootstrap

        plot_bootstrap(boot, args.plot)
    if args.json:
        extra = {"bootstrap": boot.to_dict()} if boot is not None else {}
        print(json.dumps({"checkpoint": str(ckpt.path), "data": data_name, "split": args.split, "tta": tta,
                          **metrics, "classes": classes, **extra}, indent=1))
        return 0
    print(f"{ckpt.path} on {data_name}/{args.split} ({metrics['n']} images, TTA {tta}):")
    if boot is not None:

        print(f"  loss {metrics['loss']:.4f}  top-5 {100 * metrics['top5']:.2f}%")
        print_bootstrap(boot)
        return 0
    print(f"  loss {metrics['loss']:.4f}  top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%")
    width = max(len(c) for c in classes)
    for name, acc in zip(classes, metrics["per_class"]):
        print(f"  {name:<{width}}  {100 * acc:6.2f}%")
    return 0


# ------------------------------------------------------------------------------- predict
def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.predict import classify
    from cnnlab.train.checkpoint import load_checkpoint

    if args.topk < 1:
        raise ConfigError(f"--topk must be >= 1, got {args.topk}")
    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.build_model()
    m = ckpt.meta
    # preprocess like training: the dataset's mean/std at the trained size, no crop for small inputs
    model.pretrained_cfg = {**getattr(model, "pretrained_cfg", {}), "weights": None, "img_size": m["img_size"],
                            "mean": tuple(m["mean"]), "std": tuple(m["std"]), "in_chans": m["in_chans"]}
    results = classify(model, [Path(p) for p in args.images], topk=args.topk, class_names=ckpt.classes or None)
    if args.json:
        print(json.dumps([{"image": img, "top": [{"class": c, "prob": p} for c, p in res]}
                          for img, res in zip(args.images, results)], indent=1))
        return 0
    for img, res in zip(args.images, results):
        print(f"{img}: " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in res))
    return 0
