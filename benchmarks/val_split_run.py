"""How the speed-record settings were chosen: a recipe on a validation split, never the test set.

Trains a recipe with overrides on the training set minus a stratified validation split (default 1/12 =
5,000 images), evaluates on the split each epoch and with the recipe's TTA at the end, and prints one JSON
line (also appended to ``--log``): the overrides, wall seconds, final validation top-1 with and without TTA,
and per epoch (epoch, val top-1, seconds). The 5,000-image split has a standard error of ~0.34 points: treat
single-run differences below ~0.7 points as noise. Runs on ``--threads`` 2 by default, as the recorded
walls (docs/fashion-fast-ablation.md).

    python benchmarks/val_split_run.py fashion-fast '{}'
    python benchmarks/val_split_run.py fashion-fast '{"model_kwargs": {"stem": "pool"}, "tta": "flip"}'
    python benchmarks/val_split_run.py fashion-record '{"epochs": 16, "train_sizes": "20:6"}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from cnnlab.train import fit, get_recipe
from cnnlab.train.recipes import RECIPES


def main() -> None:
    t0 = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recipe", choices=sorted(RECIPES), metavar="RECIPE")
    ap.add_argument("overrides", nargs="?", default="{}", help="JSON object of TrainConfig fields")
    ap.add_argument("--val-fraction", type=float, default=1 / 12)
    ap.add_argument("--log", default=None, help="append the result line to this file")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads [2: the recorded walls'; 0: torch's default, all physical cores]")
    args = ap.parse_args()

    over = json.loads(args.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = get_recipe(args.recipe).replace(val_fraction=args.val_fraction, eval_test=False, plots=False,
                                              tensorboard=False, progress="line", out_dir=tmp,
                                              threads=args.threads, **over)
        res = fit(cfg)
    row = {"recipe": args.recipe, "overrides": over, "threads": args.threads,
           "wall_s": round(time.perf_counter() - t0, 1),
           "val_top1": round(100 * res.final["top1"], 2),
           "val_top1_no_tta": round(100 * res.final.get("top1_no_tta", res.final["top1"]), 2),
           "epochs": [(r["epoch"], round(100 * r["val_top1"], 2), round(r["epoch_time_s"], 1)) for r in res.history]}
    print(json.dumps(row))
    if args.log:
        with open(args.log, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
