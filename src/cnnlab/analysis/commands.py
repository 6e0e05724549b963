"""CLI sub-commands of the analysis capability: ``inspect``, ``calc``, ``compare``.

Each parser only reads arguments and calls :mod:`cnnlab.analysis`; bad input raises
:mod:`cnnlab.errors` exceptions, which ``cnnlab.cli`` prints as one line.
"""

from __future__ import annotations

import argparse

from cnnlab.errors import ConfigError

FORMATS = ("table", "md", "csv", "json")


def _print_summary(s, fmt: str) -> None:
    if fmt == "table":
        print(s)
    elif fmt == "md":
        print(s.to_markdown(), end="")
    elif fmt == "csv":
        print(s.to_csv(), end="")
    else:
        print(s.to_json())


def _cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.analysis import inspect

    model = args.model
    if Path(model).exists():  # a run directory or checkpoint file: the trained net at its trained input size
        from cnnlab.train.checkpoint import load_checkpoint

        model = load_checkpoint(model).build_model()
    s = inspect(model, args.input, depth=args.depth)
    _print_summary(s, args.format)
    return 0


def _hwc(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"bad --in {text!r}: expected HxWxD, e.g. 227x227x3") from None
    if len(dims) == 2:  # a square map: SIZExD
        dims = (dims[0], dims[0], dims[1])
    if len(dims) != 3:
        raise ConfigError(f"bad --in {text!r}: expected HxWxD, e.g. 227x227x3")
    return dims  # type: ignore[return-value]


def _cmd_calc(args: argparse.Namespace) -> int:
    from cnnlab.analysis import calc

    if args.what == "conv":
        r = calc.conv_layer(_hwc(args.input), args.kernel, args.stride, args.pad, args.filters,
                            dilation=args.dilation, groups=args.groups)
    elif args.what == "stack":
        r = calc.conv_stack(args.kernel, args.layers, args.channels)
    elif args.what == "depthwise":
        r = calc.depthwise_cost(args.kernel, args.in_channels, args.out_channels, args.size)
    else:
        r = calc.bottleneck_cost(args.in_channels, args.mid, args.out_channels, args.kernel, args.size, args.style)
    print(r)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from cnnlab.analysis.compare import ball_chart, compare, format_compare

    rows = compare(args.models, args.input)
    print(format_compare(rows, args.format), end="" if args.format in ("md", "csv") else "\n")
    if args.plot:
        path = ball_chart(rows, args.plot)
        print(f"ball chart written to {path}")
    return 0


def register(sub) -> None:
    """Add ``inspect``, ``calc`` and ``compare`` to the ``cnnlab`` sub-parsers."""
    p = sub.add_parser("inspect", help="per-layer shapes, params, MACs, receptive field, memory of a model")
    p.add_argument("model", help="registered model name (see `cnnlab models`), or a run directory / checkpoint")
    p.add_argument("--input", default=None, metavar="CxHxW",
                   help="input size without batch, e.g. 3x224x224 (default: the model's own)")
    p.add_argument("--depth", type=int, default=3, help="deepest module level shown (default 3; -1: all)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("calc", help="textbook calculator: conv, stack, depthwise, bottleneck")
    calc_sub = p.add_subparsers(dest="what", required=True, metavar="KIND")
    c = calc_sub.add_parser("conv", help="output size, params and MACs of one conv layer")
    c.add_argument("--in", dest="input", required=True, metavar="HxWxD", help="input volume, e.g. 227x227x3")
    c.add_argument("--kernel", type=int, required=True)
    c.add_argument("--stride", type=int, default=1)
    c.add_argument("--pad", type=int, default=0)
    c.add_argument("--filters", type=int, required=True)
    c.add_argument("--dilation", type=int, default=1)
    c.add_argument("--groups", type=int, default=1)
    c = calc_sub.add_parser("stack", help="n stacked KxK convs vs one layer with the same receptive field")
    c.add_argument("--kernel", type=int, default=3)
    c.add_argument("--layers", type=int, default=3)
    c.add_argument("--channels", type=int, default=64)
    c = calc_sub.add_parser("depthwise", help="depthwise-separable vs standard conv cost (MobileNets)")
    c.add_argument("--kernel", type=int, default=3)
    c.add_argument("--in", dest="in_channels", type=int, default=512, help="input channels M")
    c.add_argument("--out", dest="out_channels", type=int, default=512, help="output channels N")
    c.add_argument("--size", type=int, default=14, help="feature map size D_F")
    c = calc_sub.add_parser("bottleneck", help="1x1 reduction savings (GoogLeNet / ResNet)")
    c.add_argument("--style", choices=("googlenet", "resnet"), default="googlenet")
    c.add_argument("--in", dest="in_channels", type=int, default=None, help="input channels")
    c.add_argument("--mid", type=int, default=None, help="reduced (bottleneck) channels")
    c.add_argument("--out", dest="out_channels", type=int, default=None, help="output channels")
    c.add_argument("--kernel", type=int, default=None)
    c.add_argument("--size", type=int, default=None, help="feature map size")
    p.set_defaults(func=_cmd_calc_checked)

    p = sub.add_parser("compare", help="models side by side (+ the ball chart with --plot)")
    p.add_argument("models", nargs="+", help="registered model names")
    p.add_argument("--input", default=None, metavar="CxHxW", help="one input size for all (default: each model's)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the ball chart here")
    p.set_defaults(func=_cmd_compare)


def _cmd_calc_checked(args: argparse.Namespace) -> int:
    if args.what == "bottleneck":  # unset numbers: the style's worked example (calc.BOTTLENECK_EXAMPLES)
        from cnnlab.analysis.calc import BOTTLENECK_EXAMPLES

        for k, v in BOTTLENECK_EXAMPLES[args.style].items():
            k = "mid" if k == "mid_channels" else k
            if getattr(args, k) is None:
                setattr(args, k, v)
    return _cmd_calc(args)
