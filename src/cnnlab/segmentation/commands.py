"""``cnnlab segment train|eval|predict``: semantic segmentation through the task-generic engine."""

from __future__ import annotations

import argparse
import json

from cnnlab.errors import ConfigError

DEFAULT_MODEL = "fcn8s_resnet18"
DEFAULT_DATA = "fashion-scenes"


def register(sub) -> None:
    from cnnlab.cli_support import add_train_arguments

    p = sub.add_parser("segment", help="semantic segmentation: FCN-32s/16s/8s train, eval, predict",
                       description="Train, evaluate and apply segmentation models (FCN, Long et al. 2015).")
    seg = p.add_subparsers(dest="segment_command", required=True, metavar="ACTION")

    t = seg.add_parser("train", help="train a segmentation model (any `cnnlab train` option)",
                       description=f"Train a segmentation model. Defaults: --model {DEFAULT_MODEL} "
                                   f"--data {DEFAULT_DATA}; every `cnnlab train` option applies.")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    t.add_argument("--json", action="store_true", help="print the final result as JSON")
    add_train_arguments(t)  # --recipe (e.g. scenes-fcn8s), --config, --quiet, every TrainConfig flag
    t.set_defaults(func=cmd_train)

    e = seg.add_parser("eval", help="pixel accuracy, mean accuracy, mean IU, frequency-weighted IU, per-class IU")
    e.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its best)")
    e.add_argument("--data", help="dataset (default: the one the model was trained on)")
    e.add_argument("--data-dir", help="dataset directory")
    e.add_argument("--split", default="test", help="which split [test]")
    e.add_argument("--tta", default="none", choices=("none", "flip"), help="average with the mirrored image")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=cmd_eval)

    q = seg.add_parser("predict", help="segment image files; writes colour overlays (PNG)")
    q.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its best)")
    q.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    q.add_argument("--out", default="segment-predictions", help="folder for the overlay PNGs")
    q.add_argument("--json", action="store_true", help="print per-image class fractions as JSON")
    q.set_defaults(func=cmd_predict)


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.train.commands import cmd_train as train

    if not args.resume:  # the segmentation defaults, below any --recipe/--config/flags the user gave
        args.task = args.task or "segmentation"
        if not args.recipe and not args.config_file:
            args.model = args.model or DEFAULT_MODEL
            args.data = args.data or DEFAULT_DATA
    if args.task not in (None, "segmentation"):
        raise ConfigError(f"cnnlab segment trains task=segmentation, not {args.task!r}")
    return train(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.segmentation.task import SegmentationTask
    from cnnlab.train.evaluation import evaluate_checkpoint

    r = evaluate_checkpoint(args.checkpoint, data=args.data, data_dir=args.data_dir, split=args.split,
                            tta=args.tta, batch_size=args.batch_size, device=args.device, task="segmentation")
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    print("\n".join(SegmentationTask().report_lines(r)))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.cli_support import output_dir

    out = output_dir(args.out)
    from cnnlab.segmentation.predict import segment_images

    results = segment_images(args.checkpoint, args.images, out_dir=out)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "labels"} for r in results], indent=1))
        return 0
    for r in results:
        top = sorted(r["fractions"].items(), key=lambda kv: -kv[1])[:4]
        print(f"{r['image']}: " + ", ".join(f"{c} {100 * f:.1f}%" for c, f in top) + f"  -> {r['overlay']}")
    return 0
