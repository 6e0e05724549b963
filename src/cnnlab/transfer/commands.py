"""``cnnlab finetune`` and ``cnnlab weights``: parse, call :mod:`cnnlab.transfer`, print."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    from cnnlab.train.config import add_config_arguments

    p = sub.add_parser(
        "finetune", help="transfer learning: a pretrained model, a new head, feature extraction or fine-tuning",
        description="Adapt a pretrained zoo model to a dataset. Defaults are the lectures' recipe (SGD lr 0.001, "
                    "momentum 0.9, StepLR(7, 0.1), 25 epochs, batch 4); input size, resize and normalisation "
                    "come from the weights. Checkpoints work with `cnnlab predict` and `cnnlab eval`.")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (the default checkpoint, else any installed one), imagenet:TAG (e.g. "
                        "imagenet:IMAGENET1K_V2; `cnnlab weights MODEL` lists them), a .safetensors/.pth file, "
                        "or none (train from scratch, the baseline) [imagenet]")
    p.add_argument("--mode", default="feature-extract", choices=("feature-extract", "fine-tune"),
                   help="feature-extract: train only the new head; fine-tune: train the network [feature-extract]")
    p.add_argument("--unfreeze", default=None, metavar="NAMES",
                   help="fine-tune only these modules (comma-separated prefixes, e.g. layer4,fc); the head always")
    p.add_argument("--lr-backbone", type=float, default=None, metavar="X",
                   help="learning rate of the unfrozen backbone (discriminative rates) [same as --lr]")
    p.add_argument("--features-cache", action="store_true",
                   help="feature-extract: compute the frozen backbone's features once, train the head on them")
    p.add_argument("--cache-dir", default=None, help="features cache folder [$CNNLAB_CACHE/features]")
    p.add_argument("--shots", type=int, default=0, metavar="N", help="use N training images per class (0 = all)")
    p.add_argument("--test-shots", type=int, default=0, metavar="N", help="use N test images per class (0 = all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_arguments(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("weights", help="list a model's pretrained checkpoints (tags) and whether they are installed")
    p.add_argument("model", help="registered model name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_weights)


def cmd_finetune(args: argparse.Namespace) -> int:
    from cnnlab.errors import ConfigError
    from cnnlab.train.config import cli_overrides
    from cnnlab.transfer import finetune, lecture_config

    for flag in ("shots", "test_shots"):
        if getattr(args, flag) < 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    overrides = cli_overrides(args)
    if args.quiet and "progress" not in overrides:
        overrides["progress"] = "line"
    model = overrides.pop("model", "resnet18")
    cfg = lecture_config(model=model, **overrides)
    r = finetune(model, weights=args.weights, mode=args.mode, unfreeze=args.unfreeze, lr_backbone=args.lr_backbone,
                 features_cache=args.features_cache, cache_dir=args.cache_dir, shots=args.shots,
                 test_shots=args.test_shots, cfg=cfg)
    if args.json:
        print(json.dumps(r.summary(), indent=1))
        return 0
    w = r.weights or {}
    if not w:
        print("weights: none (from scratch)")
    elif w.get("tag") == "file":
        print(f"weights: file {w['origin']}")
    else:
        print(f"weights: {w.get('source')} [imagenet:{w['tag']}] from {w['origin']}")
    print(f"input {r.img_size}x{r.img_size}, resize {w.get('resize_size', r.img_size)} "
          f"({w.get('interpolation', 'bilinear')}), mean {tuple(round(m, 3) for m in w.get('mean', ()))}")
    trainable = ", ".join(r.freeze.trainable)
    print(f"{r.mode}: {r.freeze.trainable_params:,} trainable / {r.freeze.frozen_params:,} frozen parameters "
          f"(training {trainable}; {len(r.freeze.frozen_bn)} BatchNorm layers keep their statistics)")
    if r.skipped_images:
        print(f"skipped {r.skipped_images} unreadable image(s)")
    for note in r.notes:
        print(f"note: {note}")
    if r.features:
        f = r.features
        print(f"features cache: {'hit' if f['hit'] else 'computed'} in {f['extract_seconds']:.1f} s "
              f"({f['train']['n']} train x {f['train']['dim']} features, {f['train']['path']})")
    if r.final:
        print(f"final {r.final['split']} top-1 {100 * r.final['top1']:.2f}% ({r.final['n']} images), "
              f"loss {r.final['loss']:.4f}")
    print(f"total {r.seconds:.1f} s; run directory: {r.run_dir} (cnnlab predict/eval --checkpoint {r.run_dir})")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from cnnlab.models.weights import list_pretrained

    rows = list_pretrained(args.model)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print(f"{args.model}: no ImageNet checkpoints are known; pass a weights file")
        return 0
    for r in rows:
        top1 = f"top-1 {r['top1']:.1f}%" if r["top1"] else ""
        state = "installed" if r["found"] else "missing"
        print(f"imagenet:{r['tag']:<22} {'(default) ' if r['default'] else '':10} {state:9} "
              f"{r['input_size']}px/{r['resize_size']} {r['interpolation']:8} {top1:12} {r['where']}")
        if not r["found"]:
            print(f"    to get it: {r['get']}")
    return 0
