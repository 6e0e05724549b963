"""``cnnlab detect train|eval|predict``: object detection through the task-generic engine."""

from __future__ import annotations

import argparse
import json

from cnnlab.errors import ConfigError

DEFAULT_METHOD = "faster-rcnn"
DEFAULT_DATA = "fashion-scenes"


def register(sub) -> None:
    from cnnlab.detection.predict import METHODS
    from cnnlab.train.commands import add_train_arguments

    p = sub.add_parser("detect", help="object detection: R-CNN, SPPNet, Fast/Faster R-CNN, YOLO train, eval, predict",
                       description="Train, evaluate and apply object detectors (the lectures' R-CNN family, YOLO).")
    det = p.add_subparsers(dest="detect_command", required=True, metavar="ACTION")

    t = det.add_parser("train", help="train a detector (any `cnnlab train` option)",
                       description=f"Train a detector. Defaults: --method {DEFAULT_METHOD} --data {DEFAULT_DATA}; "
                                   "--model NAME picks a registered detector; every `cnnlab train` option applies.")
    t.add_argument("--method", choices=METHODS, help=f"the detection method [{DEFAULT_METHOD}]")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    t.add_argument("--json", action="store_true", help="print the final result as JSON")
    add_train_arguments(t)  # --recipe (e.g. scenes-faster-rcnn), --config, --quiet, every TrainConfig flag
    t.set_defaults(func=cmd_train)

    e = det.add_parser("eval", help="mAP@0.5, mAP@[.5:.95], per-class AP, recall@100")
    e.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its best)")
    e.add_argument("--data", help="dataset (default: the one the model was trained on)")
    e.add_argument("--data-dir", help="dataset directory")
    e.add_argument("--split", default="test", help="which split [test]")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=cmd_eval)

    q = det.add_parser("predict", help="detect objects in image files; one PNG with the boxes per image")
    q.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its best)")
    q.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...) of any size")
    q.add_argument("--out", default="detect-predictions", help="folder for the PNGs")
    q.add_argument("--show", choices=("proposals",), help="also draw the proposals (grey)")
    q.add_argument("--score-thresh", type=float, default=0.3, help="smallest score shown [0.3]")
    q.add_argument("--device", default="auto")
    q.add_argument("--json", action="store_true", help="print the boxes (in each image's own pixels) as JSON")
    q.set_defaults(func=cmd_predict)


def cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.detection.predict import model_for_method
    from cnnlab.train.commands import cmd_train as train

    if not args.resume:  # the detection defaults, below any --recipe/--config/flags the user gave
        args.task = args.task or "detection"
        if not args.recipe and not args.config_file:
            args.data = args.data or DEFAULT_DATA
            if args.method in ("rcnn", "sppnet"):
                return _train_staged(args)
            args.model = args.model or model_for_method(args.method or DEFAULT_METHOD)
        elif args.method and not args.model:
            args.model = model_for_method(args.method)
    if args.task not in (None, "detection"):
        raise ConfigError(f"cnnlab detect trains task=detection, not {args.task!r}")
    return train(args)


def _train_staged(args: argparse.Namespace) -> int:
    """R-CNN / SPPNet: CNN fine-tuning, SVMs, box regressors (``cnnlab.detection.rcnn.fit_<method>``)."""
    from cnnlab.cli_support import build_config

    try:
        from cnnlab.detection import rcnn
    except ImportError:
        raise ConfigError(f"--method {args.method} needs cnnlab.detection.rcnn, which this build lacks") from None
    args.model = args.model or getattr(rcnn, "DEFAULT_MODEL", None) or "fastnet"
    fit_method = getattr(rcnn, f"fit_{args.method}")
    result = fit_method(build_config(args))
    final = getattr(result, "final", None) or {}
    if args.json:
        print(json.dumps({"run_dir": str(result.run_dir), "final": final}, indent=1, default=str))
    else:
        print(f"final mAP@0.5 {final.get('map_50', float('nan')):.4f}; run directory: {result.run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.detection.task import DetectionTask
    from cnnlab.train.evaluation import evaluate_checkpoint

    r = evaluate_checkpoint(args.checkpoint, data=args.data, data_dir=args.data_dir, split=args.split,
                            batch_size=args.batch_size, device=args.device, task="detection")
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    print("\n".join(DetectionTask().report_lines(r)))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.cli_support import output_dir
    from cnnlab.detection.predict import detect_images

    out = output_dir(args.out)
    results = detect_images(args.checkpoint, args.images, out_dir=out, show=args.show,
                            score_thresh=args.score_thresh, device=args.device)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        found = ", ".join(f"{d['class']} {d['score']:.2f}" for d in r["detections"]) or "nothing"
        print(f"{r['image']} ({r['size'][0]}x{r['size'][1]}): {found}  -> {r['png']}")
    return 0
