"""Speed record: Fashion-MNIST test accuracy against wall time on this CPU, several seeds, 2 threads.

Each run is a fresh Python process that does what ``cnnlab train --recipe R --seed S`` does (the
recipe's ``fit``, at ``--threads`` threads: 2 by default, as the recorded numbers; recipes themselves use
all physical cores), timed from just before the process is started to the end of the final (TTA)
evaluation: interpreter start, imports, data loading, training, the per-epoch test evaluation
(logging only: nothing is selected on it) and the final evaluation all count. Printed per recipe:

- wall time and final test top-1 (with the recipe's TTA) per seed, then min / mean / max;
- time-to-93 % and time-to-94 %: the first moment a test evaluation (an epoch's, or the final one)
  reached it;
- accuracy at 90 s and at 180 s: the last test accuracy known at that moment;
- each recipe's goal (``TARGETS`` in ``cnnlab.train.recipes``) as the **minimum over the seeds**:
  fashion-fast >= 93.0 % test top-1 in <= 90 s, fashion-record >= 94.0 % in <= 180 s;
- the CPU model and flags, what ``amp=auto`` chose, and the load average (this machine is shared:
  timings under load are inflated);
- ``--profile``: where one epoch's seconds go (``torch.profiler`` over training steps of the
  recipe, grouped into convolutions, pooling, batch norm, activations, loss, optimizer, data and
  augmentation), the model's measured multiply-add rate and, as the ceiling, the rate of a large
  matrix multiply in the same precision.

Usage::

    python benchmarks/bench_record.py                      # both recipes, seeds 0 1 2 (about 15 min)
    python benchmarks/bench_record.py --recipes fashion-fast --seeds 0
    python benchmarks/bench_record.py --profile-only       # the breakdown, about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from cnnlab.train.hardware import load_average
from cnnlab.train.recipes import RECIPES, TARGETS

CHILD = r"""
import json, sys, time
from cnnlab.train import fit, get_recipe

recipe, seed, out_dir, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cfg = get_recipe(recipe).replace(seed=seed, out_dir=out_dir, progress="none", threads=threads)
evals = []

class Clock:
    def on_epoch_end(self, state, row):
        evals.append([time.time(), row.get("test_top1"), row["epoch"]])

res = fit(cfg, callbacks=[Clock()])
evals.append([time.time(), res.final.get("top1"), "final"])
print("RESULT " + json.dumps({"evals": evals, "epochs": cfg.epochs, "amp": cfg.amp}))
"""


def run_once(recipe: str, seed: int, tmp: str, threads: int) -> dict:
    out_dir = os.path.join(tmp, f"{recipe}-s{seed}")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, recipe, str(seed), out_dir, str(threads)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{recipe} seed {seed} failed:\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    evals = [(t - t0, acc, ep) for t, acc, ep in res["evals"] if acc is not None]
    wall = evals[-1][0]

    def time_to(target: float) -> float | None:
        return next((t for t, acc, _ in evals if acc >= target), None)

    def acc_at(limit: float) -> float | None:
        known = [acc for t, acc, _ in evals if t <= limit]
        return known[-1] if known else None

    return {"seed": seed, "wall": wall, "final": evals[-1][1], "t93": time_to(0.93), "t94": time_to(0.94),
            "at90": acc_at(90.0), "at180": acc_at(180.0), "epochs": res["epochs"], "amp": res["amp"],
            "load": load_average().removeprefix("load average ")}


def _fmt_t(t: float | None) -> str:
    return "   -   " if t is None else f"{t:6.1f}s"


def _fmt_a(a: float | None) -> str:
    return "   -   " if a is None else f"{100 * a:6.2f}%"


def report(recipe: str, rows: list[dict]) -> bool | None:
    print(f"\n{recipe}: {rows[0]['epochs']} epochs, amp {rows[0]['amp']}")
    print(" seed |   wall  | final top-1 | time-to-93 | time-to-94 | acc@90s | acc@180s | load avg")
    for r in rows:
        print(f" {r['seed']:4d} | {_fmt_t(r['wall'])} |   {_fmt_a(r['final'])}   |  {_fmt_t(r['t93'])}   |"
              f"  {_fmt_t(r['t94'])}   | {_fmt_a(r['at90'])} | {_fmt_a(r['at180'])}  | {r['load']}")
    walls, finals = [r["wall"] for r in rows], [r["final"] for r in rows]
    print(f" wall  min/mean/max {min(walls):.1f} / {statistics.mean(walls):.1f} / {max(walls):.1f} s")
    spread = f" (std {100 * statistics.stdev(finals):.2f})" if len(finals) > 1 else ""
    print(f" top-1 min/mean/max {100 * min(finals):.2f} / {100 * statistics.mean(finals):.2f} / "
          f"{100 * max(finals):.2f} %{spread}")
    target = TARGETS.get(recipe)
    if target is None:
        return None
    ok = all(target.met(r["final"], r["wall"]) for r in rows)
    print(f" goal: {target.describe()} on every seed (min over {len(rows)}; set on {target.machine} at "
          f"{target.threads} threads): {'MET' if ok else 'NOT met'} "
          f"(worst: {100 * min(finals):.2f} % / {max(walls):.1f} s)")
    return ok


# ----------------------------------------------------------------------------------------- profile
_GROUPS = [  # (group, substrings of aten op names); first match wins
    ("convolution", ("convolution", "conv2d", "mkldnn_conv")),
    ("max-pool", ("max_pool", "adaptive_max")),
    ("batch norm", ("batch_norm",)),
    ("activation", ("relu", "threshold", "clamp_min", "gelu")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
    ("optimizer", ("Optimizer.step", "_foreach", "sgd", "lerp")),
    ("linear", ("addmm", "aten::mm", "linear")),
    ("data + augmentation", ("index_select", "addcmul", "gather", "where", "flip", "randint", "rand", "bernoulli")),
]


def profile(recipe: str, threads: int, steps: int = 30) -> None:
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from cnnlab.analysis import count_macs
    from cnnlab.models import create_model
    from cnnlab.train import fit, get_recipe
    from cnnlab.train.hardware import cpu_info, resolve_amp

    cfg = get_recipe(recipe).replace(threads=threads)
    amp, why = resolve_amp(cfg.amp, "cpu")
    warm = 5
    prof = torch_profile(activities=[ProfilerActivity.CPU])

    class Stepper:  # steps [warm, warm + steps) are timed bare, the next `steps` under the profiler
        def __init__(self) -> None:
            self.t: list[float] = []

        def on_step_end(self, state) -> None:
            self.t.append(time.perf_counter())
            if len(self.t) == warm + steps:
                prof.start()
            elif len(self.t) == warm + 2 * steps:
                prof.stop()

    stepper = Stepper()
    n_images = cfg.batch_size * (warm + 2 * steps + 1)
    with tempfile.TemporaryDirectory() as tmp:
        fit(cfg.replace(epochs=1, train_subset=n_images, eval_test=False, tta="none", plots=False,
                        tensorboard=False, progress="none", out_dir=tmp), callbacks=[stepper])
    step_s = (stepper.t[warm + steps - 1] - stepper.t[warm - 1]) / steps
    groups: dict[str, float] = {}
    total = 0.0
    for ev in prof.key_averages():
        us = ev.self_cpu_time_total
        if us <= 0 or ev.key.startswith("ProfilerStep"):
            continue
        total += us
        name = next((g for g, keys in _GROUPS if any(k in ev.key for k in keys)), "other")
        groups[name] = groups.get(name, 0.0) + us
    steps_per_epoch = -(-60_000 // cfg.batch_size)
    print(f"\nprofile of {recipe} ({cfg.model}, batch {cfg.batch_size}, {why}): {1e3 * step_s:.1f} ms per step, "
          f"one epoch = {steps_per_epoch} steps = {steps_per_epoch * step_s:.1f} s")
    print("  group                 ms/step   share")
    for name, us in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {name:20s} {us / steps / 1e3:8.2f}  {100 * us / total:5.1f} %")
    model_macs = count_macs(create_model(cfg.model, num_classes=10, in_chans=1, **cfg.model_kwargs), (1, 28, 28))
    achieved = 3 * model_macs * cfg.batch_size / step_s  # forward + backward ~ 3x the forward MACs
    dtype = torch.bfloat16 if amp == "bf16" else torch.float32
    if threads:  # fit() put the thread count back: the ceiling is measured on the run's threads
        torch.set_num_threads(threads)
    a = torch.randn(2048, 2048, dtype=dtype)
    b = torch.randn(2048, 2048, dtype=dtype)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(5):
        a @ b
    peak = 5 * 2048**3 / (time.perf_counter() - t0)
    print(f"  model: {model_macs / 1e6:.1f} M MACs/image forward; training runs {achieved / 1e9:.1f} G MAC/s "
          f"= {100 * achieved / peak:.1f} % of a 2048^3 {str(dtype)[6:]} matmul's {peak / 1e9:.0f} G MAC/s "
          f"on {torch.get_num_threads()} threads ({cpu_info().describe()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", default="fashion-record,fashion-fast")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--profile", action="store_true", help="also print the per-step breakdown of each recipe")
    ap.add_argument("--profile-only", action="store_true", help="only the breakdown, no timed runs")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads per run [2: the recorded numbers'; 0: torch's default, all physical cores]")
    args = ap.parse_args()
    from cnnlab.train.hardware import cpu_info, resolve_amp

    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        ap.error(f"unknown recipe(s) {', '.join(unknown)} (known: {', '.join(sorted(RECIPES))})")
    print(f"CPU: {cpu_info().describe()}")
    print(f"amp=auto rule: {resolve_amp('auto', 'cpu')[1]}; {args.threads or 'default'} threads per run; "
          f"before: {load_average()}")
    if args.profile or args.profile_only:
        for recipe in recipes:
            profile(recipe, args.threads)
    if args.profile_only:
        return
    seeds = [int(s) for s in args.seeds.split(",") if s != ""]
    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in recipes:
            rows = []
            for seed in seeds:
                rows.append(run_once(recipe, seed, tmp, args.threads))
                r = rows[-1]
                print(f"  {recipe} seed {seed}: {100 * r['final']:.2f} % in {r['wall']:.1f} s (load {r['load']})",
                      flush=True)
            verdicts[recipe] = report(recipe, rows)
    for recipe, ok in verdicts.items():
        if ok is not None:
            print(f"{recipe}: {'goal met' if ok else 'goal NOT met'}")


if __name__ == "__main__":
    main()
