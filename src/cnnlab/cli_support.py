"""What every command module shares, so that none imports another's: the training flags, the
TrainConfig they build, and the bootstrap table (``cnnlab eval --bootstrap``, ``cnnlab cv``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab._console import make_console
from cnnlab.errors import ConfigError

__all__ = ["add_train_arguments", "build_config", "output_dir", "pct", "print_bootstrap"]


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """``--recipe``, ``--config YAML``, ``--quiet`` and one flag per TrainConfig field: every command that
    trains (``train``, ``cv``, ``bag``, ``boost``, ``biasvar``) takes the same options."""
    from cnnlab.train.config import add_config_arguments

    p.add_argument("--recipe", help="start from a named recipe (see cnnlab.train.recipes)")
    p.add_argument("--config", dest="config_file", metavar="YAML", help="YAML file of TrainConfig options")
    p.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch (logs, CI)")
    add_config_arguments(p)


def build_config(args: argparse.Namespace):
    """TrainConfig from --recipe, --config and the flags (or the resumed run's config)."""
    from cnnlab.train.checkpoint import load_checkpoint
    from cnnlab.train.config import TrainConfig, cli_overrides
    from cnnlab.train.recipes import get_recipe
    from cnnlab.train.run import RESUME_MUTABLE

    overrides = cli_overrides(args)
    if args.quiet and "progress" not in overrides:
        overrides["progress"] = "line"
    if getattr(args, "resume", None):
        if args.recipe or args.config_file:
            raise ConfigError("--resume takes the run's own config; drop --recipe/--config")
        ckpt = load_checkpoint(args.resume, prefer="last")
        base = ckpt.config
        changed = [k for k, v in overrides.items() if k not in RESUME_MUTABLE and getattr(base, k) != v]
        if changed:
            raise ConfigError(f"cannot change {', '.join(changed)} when resuming (only "
                              f"{', '.join(RESUME_MUTABLE)}); start a new run instead")
        overrides.setdefault("out_dir", str(ckpt.path.parent))
        return TrainConfig.from_dict(overrides, base)
    base = get_recipe(args.recipe) if args.recipe else TrainConfig()
    if args.config_file:
        base = TrainConfig.from_yaml(args.config_file, base)
    return TrainConfig.from_dict(overrides, base)


def print_bootstrap(boot) -> None:
    from rich.table import Table

    level = f"{100 * boot.confidence:g}%"
    t = Table(title=f"{level} percentile bootstrap intervals ({boot.resamples} resamples of {boot.n:,} images)")
    t.add_column("")
    t.add_column("accuracy", justify="right")
    t.add_column(f"{level} interval", justify="right")
    t.add_column("width", justify="right")
    t.add_row("[bold]top-1", f"[bold]{pct(boot.top1.point)}", f"[{pct(boot.top1.low)}, {pct(boot.top1.high)}]",
              f"{100 * boot.top1.width:.2f}")
    t.add_section()
    for name, c in zip(boot.classes, boot.per_class):
        t.add_row(name, pct(c.point), f"[{pct(c.low)}, {pct(c.high)}]", f"{100 * c.width:.2f}")
    make_console().print(t)


def output_dir(path: str) -> Path:
    """The folder a command writes its pictures into, created; one clear error when it cannot be."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the output folder {out} ({e.strerror or e})") from None
    return out
