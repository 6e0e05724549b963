"""``cnnlab cv``, ``bag``, ``boost``, ``biasvar`` and ``ensemble``: parse, call :mod:`cnnlab.ensemble`, print.

Every command that trains takes all ``cnnlab train`` options (``--recipe``, ``--config``, one flag per
TrainConfig field); ``--out-dir`` is the parent folder of the members' run directories.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cnnlab._console import make_console
from cnnlab.cli_support import add_train_arguments, build_config, pct
from cnnlab.errors import ConfigError
from cnnlab.train.config import TTA_MODES, canonical_tta


def common(p: argparse.ArgumentParser, workers: bool = True, holdout: bool = True) -> None:
    """The options every training ensemble command shares (and all of ``cnnlab train``'s)."""
    if workers:
        p.add_argument("--workers", type=int, default=1, metavar="N",
                       help="train members in N local processes, each with cores/N threads [1]")
    if holdout:
        p.add_argument("--holdout", type=float, default=0.2, metavar="F",
                       help="image folders without test/: evaluate on this stratified fraction of the "
                            "training images [0.2]")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_train_arguments(p)


def register(sub) -> None:
    p = sub.add_parser("cv", help="stratified k-fold cross-validation (any train options)",
                       description="Stratified, seeded k-fold cross-validation of a training configuration: "
                                   "per-fold and mean +/- std of every metric, a table, cv.csv/cv.json and cv.png.")
    p.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds [5]")
    common(p, holdout=False)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("bag", help="bagging: members on bootstrap resamples, soft or hard vote",
                       description="Bagging (Breiman 1996): train N members on bootstrap resamples of the training "
                                   "images and combine them; prints each member, the ensemble and the gain.")
    p.add_argument("--members", type=int, default=5, metavar="N", help="number of members [5]")
    p.add_argument("--vote", default="soft", choices=("soft", "hard"), help="soft (mean probability) or hard [soft]")
    p.add_argument("--resample", default="bootstrap", choices=("bootstrap", "stratified", "none"),
                   help="bootstrap resamples, class-stratified ones, or none (all images, different seeds)")
    common(p)
    p.set_defaults(func=cmd_bag)

    p = sub.add_parser("boost", help="SAMME boosting with CNN weak learners",
                       description="SAMME (Zhu et al. 2009) with CNN weak learners trained on the weighted "
                                   "training set; logs alpha, weighted error and ensemble accuracy per round.")
    p.add_argument("--rounds", type=int, default=10, metavar="M", help="number of boosting rounds [10]")
    p.add_argument("--mode", default="loss", choices=("loss", "resample"),
                   help="weak learners see the weights through a weighted loss or weighted resampling [loss]")
    p.add_argument("--shrinkage", type=float, default=1.0, metavar="NU",
                   help="multiply every alpha by NU in (0, 1] (scikit-learn's learning_rate; milder reweighting "
                        "when the first learner is strong) [1: the paper's SAMME]")
    common(p, workers=False)
    p.set_defaults(func=cmd_boost)

    p = sub.add_parser("biasvar", help="Domingos 0-1 bias/variance over bootstrap-trained models, with a sweep",
                       description="Domingos (2000) bias/variance decomposition of the test 0-1 loss over models "
                                   "trained on bootstrap resamples (loss = bias + net variance); --sweep repeats "
                                   "it for several values of one option (a capacity sweep) and plots them.")
    p.add_argument("--models", type=int, default=5, metavar="M", help="bootstrap models per setting [5]")
    p.add_argument("--sweep", metavar="KEY=VALUES",
                   help="a TrainConfig field or model keyword and its values: epochs=1,2,4, model=lenet5,fastnet, "
                        "widths=[[8,16,32],[32,64,128]] (JSON list)")
    common(p)
    p.set_defaults(func=cmd_biasvar)

    register_ensemble(sub)


def register_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="combine saved run directories or checkpoints and evaluate them",
                       description="Combine any saved checkpoints (run directories of bag/boost/train, snapshot "
                                   "files, runs from other machines): all must share classes and input size. "
                                   "--snapshots: the snapshots of cyclic-schedule runs.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or .safetensors checkpoint files")
    p.add_argument("--eval", action="store_true", help="evaluate the members and their vote")
    p.add_argument("--snapshots", action="store_true",
                   help="each run directory's snapshot-K checkpoints are the members (a snapshot ensemble of a "
                        "--schedule cyclic --cycles M run, Huang et al. 2017)")
    p.add_argument("--vote", default="soft", choices=("soft", "hard"), help="[soft]")
    p.add_argument("--tta", default="none", help="test-time augmentation of every member: " + "|".join(TTA_MODES))
    p.add_argument("--data", help="evaluation dataset (default: the one the members were trained on)")
    p.add_argument("--data-dir", help="dataset directory")
    p.add_argument("--split", default="test", help="which split to evaluate on [test]")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="image folder without test/: the hold-out fraction the members were trained without [0.2]")
    p.add_argument("--holdout-seed", type=int, default=0, help="... and its seed (the bag/boost --seed) [0]")
    p.add_argument("--train-subset", type=int, default=0, help="... and the bag/boost --train-subset [0]")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--plot", metavar="PNG", help="where to write the figure [runs/ensemble-TIMESTAMP.png]")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_ensemble)


# --------------------------------------------------------------------------------- printing
def print_ensemble(result, plot: Path | None = None) -> None:
    """Members, the ensemble and the gain as a rich table."""
    from rich.table import Table

    t = Table(title=f"{result.kind} on {result.data}: {result.n:,} images, vote {result.vote}, TTA {result.tta}")
    t.add_column("member")
    t.add_column("test top-1", justify="right")
    t.add_column("run / checkpoint", overflow="fold")
    for m in result.members:
        t.add_row(m.name, pct(m.top1), m.path)
    t.add_section()
    t.add_row("mean member", pct(result.mean_member), "")
    t.add_row("best member", pct(result.best_member), "")
    other = {k: v for k, v in result.votes.items() if k != result.vote}
    extra = ", ".join(f"{k} vote {pct(v)}" for k, v in other.items())
    t.add_row(f"[bold]ensemble ({result.vote})", f"[bold]{pct(result.top1)}", extra)
    t.add_row("[bold]gain over mean member", f"[bold]{100 * result.gain:+.2f} pts",
              f"over best member {100 * (result.top1 - result.best_member):+.2f} pts")
    console = make_console()
    console.print(t)
    tail = f"wall {result.wall_s:.1f} s" if result.wall_s else ""
    if plot is not None:
        tail += f"; figure {plot}"
    if tail:
        console.print(tail.strip("; "))


def _member_line(run) -> None:
    f = run.final
    acc = f" {f.get('split', 'test')} top-1 {pct(f['top1'])}" if f.get("top1") is not None else ""
    print(f"{run.name}:{acc} ({run.wall_s:.0f} s) -> {run.run_dir}", flush=True)


def _config(args: argparse.Namespace, kind: str):
    from cnnlab.ensemble.members import default_out_dir

    cfg = build_config(args)
    out = Path(args.out_dir) if args.out_dir is not None else default_out_dir(kind, cfg)
    return cfg, out


def _write_json(args: argparse.Namespace, data: dict) -> None:
    if args.json:
        print(json.dumps(data, indent=1))


# --------------------------------------------------------------------------------- commands
def cmd_cv(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cnnlab.ensemble.cv import cross_validate
    from cnnlab.ensemble.plots import plot_cv

    cfg, out = _config(args, "cv")
    result = cross_validate(cfg, args.folds, workers=args.workers, out_dir=out,
                            on_fold=None if args.json else _member_line)
    plot = plot_cv(result, out / "cv.png")
    if args.json:
        _write_json(args, result.to_dict())
        return 0
    t = Table(title=f"{result.k}-fold stratified cross-validation of {cfg.model} on {cfg.data} (seed {result.seed})")
    t.add_column("fold")
    t.add_column("train / val", justify="right")
    for m in result.metrics:
        t.add_column(m, justify="right")
    fmt = {m: (lambda v: f"{v:.4f}") if "loss" in m else (lambda v: f"{100 * v:.2f}%") for m in result.metrics}
    for f in result.folds:
        t.add_row(str(f.fold), f"{f.n_train} / {f.n_val}", *(fmt[m](f.metrics[m]) for m in result.metrics))
    t.add_section()
    t.add_row("[bold]mean", "", *(f"[bold]{fmt[m](result.mean[m])}" for m in result.metrics))
    t.add_row("std", "", *(f"{result.std[m]:.4f}" if "loss" in m else f"{100 * result.std[m]:.2f}"
                           for m in result.metrics))
    console = make_console()
    console.print(t)
    console.print(f"top-1 {pct(result.mean['top1'])} +/- {100 * result.std['top1']:.2f} (sample std over "
                  f"{result.k} folds); wall {result.wall_s:.1f} s; {out}/cv.csv, cv.json, figure {plot}")
    return 0


def cmd_bag(args: argparse.Namespace) -> int:
    from cnnlab.ensemble.bagging import bag
    from cnnlab.ensemble.plots import plot_ensemble

    cfg, out = _config(args, "bag")
    result = bag(cfg, args.members, vote=args.vote, resample=args.resample, workers=args.workers, out_dir=out,
                 holdout=args.holdout, on_member=None if args.json else _member_line)
    plot = plot_ensemble(result, out / "bag.png")
    if args.json:
        _write_json(args, result.to_dict())
        return 0
    print_ensemble(result, plot)
    return 0


def cmd_boost(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cnnlab.ensemble.boosting import boost
    from cnnlab.ensemble.plots import plot_boost, plot_ensemble

    cfg, out = _config(args, "boost")

    def line(r) -> None:
        print(f"round {r.round}: weighted error {r.weighted_error:.4f}, alpha {r.alpha:.3f}, learner "
              f"{pct(r.member_top1)}, ensemble {pct(r.ensemble_top1)} (train {pct(r.ensemble_train_top1)})",
              flush=True)

    result = boost(cfg, args.rounds, mode=args.mode, out_dir=out, holdout=args.holdout, shrinkage=args.shrinkage,
                   on_round=None if args.json else line)
    plot_boost(result, out / "boost.png")
    plot = plot_ensemble(result.ensemble, out / "members.png")
    if args.json:
        _write_json(args, result.to_dict())
        return 0
    nu = f", shrinkage {result.shrinkage:g}" if result.shrinkage != 1 else ""
    t = Table(title=f"SAMME ({result.mode}{nu}) on {result.ensemble.data}")
    for c in ("round", "weighted error", "alpha", "learner test", "ensemble test", "ensemble train", "weights ESS"):
        t.add_column(c, justify="right")
    for r in result.rounds:
        t.add_row(str(r.round), f"{r.weighted_error:.4f}", f"{r.alpha:.3f}", pct(r.member_top1),
                  pct(r.ensemble_top1), pct(r.ensemble_train_top1), f"{r.weight_ess:,.0f}")
    console = make_console()
    console.print(t)
    if result.stopped:
        console.print(f"stopped early: {result.stopped}")
    print_ensemble(result.ensemble, plot)
    console.print(f"rounds: {out}/rounds.csv, figure {out}/boost.png")
    return 0


def parse_sweep(text: str) -> tuple[str, list]:
    """``KEY=1,2,4`` or ``KEY=[JSON, ...]`` -> (key, values); scalars are JSON-decoded when possible."""
    key, sep, rest = text.partition("=")
    key, rest = key.strip(), rest.strip()
    if not sep or not key or not rest:
        raise ConfigError(f"--sweep {text!r}: expected KEY=VALUES, e.g. epochs=1,2,4 or widths=[[8,16,32],[16,32,64]]")
    if rest.startswith("["):
        try:
            values = json.loads(rest)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--sweep {text!r}: the values are not a JSON list ({e})") from None
    else:
        values = []
        for v in rest.split(","):
            try:
                values.append(json.loads(v))
            except json.JSONDecodeError:
                values.append(v.strip())
    if not isinstance(values, list) or not values:
        raise ConfigError(f"--sweep {text!r}: give at least one value")
    return key.replace("-", "_"), values


def cmd_biasvar(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cnnlab.ensemble.biasvar import bias_variance
    from cnnlab.ensemble.plots import plot_biasvar

    key, values = parse_sweep(args.sweep) if args.sweep else (None, [])
    cfg, out = _config(args, "biasvar")
    result = bias_variance(cfg, args.models, sweep=key, values=values, workers=args.workers, out_dir=out,
                           holdout=args.holdout, on_member=None if args.json else _member_line)
    plot = plot_biasvar(result, out / "biasvar.png")
    if args.json:
        _write_json(args, result.to_dict())
        return 0
    t = Table(title=f"Domingos 0-1 bias/variance on {result.data} ({args.models} bootstrap models per setting)")
    for c in (key or "setting", "error", "bias", "net var", "+V unbiased", "-V biased", "V unsigned"):
        t.add_column(c, justify="right")
    for p in result.points:
        d = p.decomposition
        t.add_row(str(p.value) if key else cfg.model, pct(d.loss), pct(d.bias), pct(d.net_variance),
                  pct(d.var_unbiased), pct(d.var_biased), pct(d.variance))
    console = make_console()
    console.print(t)
    console.print("error = bias + net var = bias + V unbiased - V biased (exactly; Domingos 2000); "
                  f"wall {result.wall_s:.1f} s; {out}/biasvar.json, "
                  f"figure {plot}")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from cnnlab.ensemble.combine import check_compatible, ensemble_runs, load_member, snapshot_paths
    from cnnlab.ensemble.plots import plot_ensemble

    tta = canonical_tta(args.tta, "--tta")
    if args.snapshots:  # checkpoint files stay members as given
        args.runs = [s for r in args.runs for s in (snapshot_paths(r) if Path(r).is_dir() else [r])]
    if not args.eval:
        from rich.table import Table

        members = [load_member(p) for p in args.runs]
        check_compatible(members)
        if args.json:
            print(json.dumps([{"name": m.name, "checkpoint": str(m.path), "model": m.meta.get("model"),
                               "data": m.meta.get("data"), "epoch": m.meta.get("epoch")} for m in members], indent=1))
            return 0
        t = Table(title=f"{len(members)} compatible members ({members[0].meta['num_classes']} classes, "
                        f"{members[0].meta['in_chans']}x{members[0].meta['img_size']}x{members[0].meta['img_size']})")
        for c in ("member", "model", "data", "epoch", "checkpoint"):
            t.add_column(c)
        for m in members:
            t.add_row(m.name, str(m.meta.get("model")), str(m.meta.get("data")), str(m.meta.get("epoch")), str(m.path))
        console = make_console()
        console.print(t)
        console.print("add --eval to evaluate them and their vote")
        return 0
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    result = ensemble_runs(args.runs, data=args.data, data_dir=args.data_dir, split=args.split, vote=args.vote,
                           tta=tta, batch_size=args.batch_size, device=args.device, holdout=args.holdout,
                           holdout_seed=args.holdout_seed, train_subset=args.train_subset)
    plot = Path(args.plot) if args.plot else Path("runs") / f"ensemble-{time.strftime('%Y%m%d-%H%M%S')}.png"
    plot_ensemble(result, plot)
    if args.json:
        _write_json(args, {**result.to_dict(), "plot": str(plot)})
        return 0
    print_ensemble(result, plot)
    return 0
