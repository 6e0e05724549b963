"""A bagged ensemble of FastNets on Fashion-MNIST (target: 5 members' soft vote >= 94.0 % test top-1).

Each member is the ``--recipe`` (default ``fashion-fast``: one FastNet, ~93.8-94.0 % alone on all the data,
~1 min on 2 quiet cores; ``fashion-record``: ~93.9-94.2 %, ~2 min) trained by ``cnnlab.ensemble.bag`` on its own
bootstrap resample of the 60,000 training images (``--resample none``: all images, a different seed per
member), evaluated with the recipe's TTA on the 10,000 test images and combined by a soft vote. Prints every
member, the ensemble, the gain over the mean member, the accuracy of the first k members' ensemble, and the
wall time (with the load average: on a shared machine the times are inflated). Members train on ``--threads``
2 by default, as the recorded numbers (the recipes themselves use all physical cores).

    python benchmarks/bench_ensemble.py                       # 5 members (~6 min on 2 quiet cores)
    python benchmarks/bench_ensemble.py --members 3 --threads 1
    python benchmarks/bench_ensemble.py --quick               # 2 members x 1 epoch: a smoke run
    python benchmarks/bench_ensemble.py --epochs 12 --seed 5  # members seeded 5-9 (another draw of the ensemble)
    python benchmarks/bench_ensemble.py --recipe fashion-record --resample none   # 5 seeds of the record recipe

``--snapshot``: a snapshot ensemble instead (Huang et al. 2017, *Snapshot Ensembles: Train 1, get M for
free*): ONE run of the recipe (``fashion-fast`` by default) trained with the cyclic schedule -- cosine
annealing from the recipe's lr restarted M times (``--cycles``, 5) over M x E epochs (``--cycle-epochs``, 6)
-- whose M end-of-cycle checkpoints are evaluated with the recipe's TTA and combined by a soft vote. Prints
every snapshot, the ensemble, its gain over the last snapshot and over the mean snapshot, the ensemble of the
last k snapshots, and the wall time (training + evaluation).

    python benchmarks/bench_ensemble.py --snapshot            # 5 cycles x 6 epochs (~30 epochs of FastNet)
    python benchmarks/bench_ensemble.py --snapshot --quick --train-subset 2000   # 2 cycles x 1 epoch
"""

from __future__ import annotations

import argparse
import tempfile
import time

from cnnlab.train.hardware import load_average
from cnnlab.train.recipes import RECIPES

TARGET = 0.940


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=5)
    classifiers = sorted(n for n, r in RECIPES.items() if r.get("task", "classification") == "classification")
    ap.add_argument("--recipe", default="fashion-fast", choices=classifiers, metavar="RECIPE",
                    help="the members' recipe: any classification recipe (cnnlab train --recipe) [fashion-fast]")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--resample", default="bootstrap", choices=("bootstrap", "stratified", "none"))
    ap.add_argument("--vote", default="soft", choices=("soft", "hard"))
    ap.add_argument("--seed", type=int, default=None,
                    help="override the recipe's seed (member i uses seed + i; --snapshot: the run's seed) [0]")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads per member [2: the recorded numbers'; 0: torch's default, all cores]")
    ap.add_argument("--train-subset", type=int, default=0, help="train on N of the 60,000 images (a reduced run)")
    ap.add_argument("--amp", default=None, help="override the recipe's bf16 autocast (off: fp32, faster on CPUs "
                                                "without native bf16)")
    ap.add_argument("--no-epoch-eval", action="store_true",
                    help="members skip the per-epoch test evaluation (they are evaluated once, by the ensemble)")
    ap.add_argument("--out-dir", default=None, help="keep the members' run directories here")
    ap.add_argument("--quick", action="store_true", help="2 members x 1 epoch (--snapshot: 2 cycles x 1 epoch)")
    ap.add_argument("--snapshot", action="store_true", help="a snapshot ensemble of one cyclic-schedule run instead")
    ap.add_argument("--cycles", type=int, default=5, help="--snapshot: cosine cycles = snapshots M [5]")
    ap.add_argument("--cycle-epochs", type=int, default=6, help="--snapshot: epochs per cycle E [6]")
    ap.add_argument("--lr", type=float, default=None, help="--snapshot: override the recipe's peak lr (0.4)")
    args = ap.parse_args()
    if args.snapshot:
        if args.epochs is not None:
            ap.error("--snapshot trains --cycles x --cycle-epochs epochs; --epochs is for bagging")
        snapshot(args)
        return

    from cnnlab.ensemble import bag
    from cnnlab.train import get_recipe

    members, epochs = (2, 1) if args.quick else (args.members, args.epochs)
    cfg = with_overrides(get_recipe(args.recipe).replace(progress="line", tensorboard=False), args)
    if epochs:
        cfg = cfg.replace(epochs=epochs)
    out = args.out_dir or tempfile.mkdtemp(prefix="bench_ensemble-")
    print(f"{members} x {args.recipe} ({cfg.model}, seeds {cfg.seed}-{cfg.seed + members - 1}, {cfg.epochs} epochs "
          f"on {cfg.train_subset or 60000:,} images, "
          f"TTA {cfg.tta}, amp {cfg.amp}, {cfg.threads or 'default'} threads), "
          f"resample {args.resample}, {args.vote} vote, {args.workers} worker(s); {load_average()}", flush=True)
    t0 = time.perf_counter()

    def done(run) -> None:
        acc = ""
        if run.final.get("split") == "test":
            acc = f"test top-1 {100 * run.final['top1']:.2f}% ({run.final.get('tta', 'no')} TTA), "
        print(f"  {run.name}: {acc}{run.wall_s:.0f} s, {load_average()}", flush=True)

    r = bag(cfg, members, vote=args.vote, resample=args.resample, workers=args.workers, out_dir=out, on_member=done)
    wall = time.perf_counter() - t0
    print("\nmember    test top-1")
    for m in r.members:
        print(f"{m.name}  {100 * m.top1:.2f}%")
    print(f"mean member      {100 * r.mean_member:.2f}%   best {100 * r.best_member:.2f}%")
    print(f"ensemble ({r.vote})  {100 * r.top1:.2f}%   (hard vote {100 * r.votes['hard']:.2f}%, "
          f"soft {100 * r.votes['soft']:.2f}%)")
    print(f"gain             {100 * r.gain:+.2f} points over the mean member, "
          f"{100 * (r.top1 - r.best_member):+.2f} over the best")
    print("first k members: " + ", ".join(f"k={k + 1} {100 * a:.2f}%" for k, a in enumerate(r.by_size)))
    full = members >= 5 and not args.train_subset and not args.quick  # 5 members on all 60,000 images
    verdict = ("met" if r.top1 >= TARGET else "not met") if full else "not judged (reduced run)"
    print(f"wall {wall:.0f} s for {members} members ({wall / members:.0f} s each); {load_average()}; run dirs in {out}")
    print(f"target >= {100 * TARGET:.1f}% with 5 members: {verdict}")


def with_overrides(cfg, args: argparse.Namespace):
    """The recipe with the command line's --seed, --threads, --train-subset, --amp and --no-epoch-eval applied."""
    if args.seed is not None:
        cfg = cfg.replace(seed=args.seed)
    cfg = cfg.replace(threads=args.threads)
    if args.train_subset:
        cfg = cfg.replace(train_subset=args.train_subset)
    if args.amp:
        cfg = cfg.replace(amp=args.amp)
    if args.no_epoch_eval:
        cfg = cfg.replace(eval_test=False)
    return cfg


def snapshot(args: argparse.Namespace) -> None:
    """One run of --recipe with schedule=cyclic; its snapshots' soft vote (Huang et al. 2017)."""
    from cnnlab.ensemble import ensemble_runs, snapshot_paths
    from cnnlab.train import fit, get_recipe

    cycles, per_cycle = (2, 1) if args.quick else (args.cycles, args.cycle_epochs)
    out = args.out_dir or tempfile.mkdtemp(prefix="bench_snapshot-")
    cfg = get_recipe(args.recipe).replace(progress="line", tensorboard=False, schedule="cyclic", cycles=cycles,
                                             epochs=cycles * per_cycle, out_dir=out)
    cfg = with_overrides(cfg, args)
    if args.lr:
        cfg = cfg.replace(lr=args.lr)
    print(f"snapshot ensemble: 1 x {args.recipe} ({cfg.model}, {cycles} cosine cycles x {per_cycle} epochs from lr "
          f"{cfg.lr:g} on {cfg.train_subset or 60000:,} images, TTA {cfg.tta}, amp {cfg.amp}, "
          f"{cfg.threads or 'default'} threads), "
          f"{args.vote} vote; {load_average()}", flush=True)
    t0 = time.perf_counter()
    fit(cfg)
    train_s = time.perf_counter() - t0
    paths = snapshot_paths(out)
    # members last-first, so by_size[k - 1] is the ensemble of the last k snapshots (Huang et al. 2017, Fig. 4)
    r = ensemble_runs(paths[::-1], vote=args.vote, tta=cfg.tta, device=cfg.device)
    wall = time.perf_counter() - t0
    snaps = r.members[::-1]
    last = snaps[-1].top1
    print(f"\nsnapshot          test top-1 (TTA {r.tta})")
    for m in snaps:
        print(f"{m.name.split('/')[-1]:<16}  {100 * m.top1:.2f}%")
    print(f"mean snapshot     {100 * r.mean_member:.2f}%   best {100 * r.best_member:.2f}%")
    print(f"ensemble ({r.vote})   {100 * r.top1:.2f}%   (hard vote {100 * r.votes['hard']:.2f}%, "
          f"soft {100 * r.votes['soft']:.2f}%)")
    print(f"gain              {100 * (r.top1 - last):+.2f} points over the last snapshot, "
          f"{100 * r.gain:+.2f} over the mean snapshot")
    print("last k snapshots: " + ", ".join(f"k={k + 1} {100 * a:.2f}%" for k, a in enumerate(r.by_size)))
    print(f"wall {wall:.0f} s ({train_s:.0f} s training {cfg.epochs} epochs, {wall - train_s:.0f} s evaluating "
          f"{len(paths)} snapshots); {load_average()}; run dir {out}")


if __name__ == "__main__":
    main()
