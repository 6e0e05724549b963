"""``cnnlab viz filters|features|cam``: parse, call :mod:`cnnlab.viz`, write the PNG, print the numbers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _out(args: argparse.Namespace, kind: str) -> Path:
    if args.output:
        return Path(args.output)
    stem = Path(args.source).name if Path(args.source).exists() else args.source
    return Path(f"{stem}_{kind}.png")


def _cmd_filters(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cnnlab._console import make_console
    from cnnlab.train.source import load_model
    from cnnlab.viz._common import save
    from cnnlab.viz.filters import filter_stats, plot_filters

    loaded = load_model(args.source, args.weights)
    fig, _ = plot_filters(loaded, args.layer)
    path = save(fig, _out(args, "filters"))
    stats = filter_stats(loaded)
    if args.json:
        print(json.dumps({"figure": str(path), "layers": [s.as_dict() for s in stats]}, indent=1))
        return 0
    table = Table(title=f"{loaded.name} conv filters ({loaded.origin})", title_justify="left")
    for i, head in enumerate(("layer", "shape (out, in/g, kh, kw)", "groups", "mean", "std", "mean |w|",
                              "norm min", "median", "max", "near-dead")):
        table.add_column(head, justify="left" if i < 2 else "right", no_wrap=i == 0)
    for s in stats:
        table.add_row(s.layer, "x".join(map(str, s.shape)), str(s.groups), f"{s.mean:.2e}", f"{s.std:.3g}",
                      f"{s.abs_mean:.3g}", f"{s.norm_min:.3g}", f"{s.norm_median:.3g}", f"{s.norm_max:.3g}",
                      str(s.near_dead))
    console = make_console()
    console.print(table)
    console.print(f"filter picture written to {path}")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from cnnlab.train.source import load_model
    from cnnlab.viz._common import save
    from cnnlab.viz.features import feature_maps, plot_feature_maps

    loaded = load_model(args.source, args.weights)
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    fms = feature_maps(loaded, args.image, layers, max_channels=args.max_channels)
    path = save(plot_feature_maps(fms), _out(args, "features"))
    for fm in fms:
        print(fm.title)
    print(f"feature maps written to {path}")
    return 0


def _cmd_cam(args: argparse.Namespace) -> int:
    from cnnlab.train.source import load_model
    from cnnlab.viz._common import save
    from cnnlab.viz.cam import cam, plot_cams

    loaded = load_model(args.source, args.weights)
    results = [cam(loaded, img, args.method, target=args.target, layer=args.layer, topk=args.topk)
               for img in args.images]
    path = save(plot_cams(results), _out(args, args.method.replace("+", "p")))
    if args.json:
        print(json.dumps([{"image": img, "method": r.method, "layer": r.layer, "target": r.target_name,
                           "target_index": r.target, "prob": r.target_prob,
                           "peak_xy": [round(v, 1) for v in r.peak_xy],
                           "top": [{"class": c, "prob": p} for c, p in r.top]}
                          for img, r in zip(args.images, results)] + [{"figure": str(path)}], indent=1))
        return 0
    for img, r in zip(args.images, results):
        x, y = r.peak_xy
        print(f"{img}: {r.method} for {r.target_name} ({r.target_prob:.1%}) at layer {r.layer or 'input'}; "
              f"peak at x={x:.0f}, y={y:.0f} (photo pixels)")
        print("  top-k: " + ", ".join(f"{c} {p:.1%}" for c, p in r.top))
    print(f"heat maps written to {path}")
    return 0


def register(sub) -> None:
    """Add ``viz`` (``filters``, ``features``, ``cam``) to the ``cnnlab`` sub-parsers."""
    from cnnlab.viz.cam import METHODS

    p = sub.add_parser("viz", help="look inside a model: filters, feature maps, class activation maps")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    def common(q: argparse.ArgumentParser, kind: str) -> None:
        q.add_argument("source", metavar="MODEL|RUN", help="registered model name, or a run directory / checkpoint")
        q.add_argument("--weights", default="imagenet",
                       help='for a model name: "imagenet" (default), a weights file, or "none" (random init)')
        q.add_argument("-o", "--output", default=None, metavar="PNG", help=f"figure path (default MODEL_{kind}.png)")

    q = kinds.add_parser("filters", help="first-layer filters as an image grid (AlexNet Fig. 3) + statistics")
    common(q, "filters")
    q.add_argument("--layer", default=None, help="conv layer to draw (default: the first conv)")
    q.add_argument("--json", action="store_true", help="print the statistics as JSON")
    q.set_defaults(func=_cmd_filters)

    q = kinds.add_parser("features", help="feature maps of chosen layers for one image")
    common(q, "features")
    q.add_argument("image", help="image file")
    q.add_argument("--layers", default=None, help="comma-separated module names (default: first, middle, last conv)")
    q.add_argument("--max-channels", type=int, default=64, help="channels per grid (default 64)")
    q.set_defaults(func=_cmd_features)

    q = kinds.add_parser("cam", help="class activation heat maps over images, with the top-k classes")
    common(q, "cam")
    q.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    q.add_argument("--method", choices=METHODS, default="gradcam")
    q.add_argument("--target", default=None, help="class name or index (default: each image's top-1)")
    q.add_argument("--layer", default=None, help="module for the layer methods (default: the last conv stage)")
    q.add_argument("--topk", type=int, default=5)
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.set_defaults(func=_cmd_cam)
