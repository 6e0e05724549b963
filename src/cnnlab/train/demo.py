"""The training part of ``make demo``: the ``fashion-fast`` recipe with a progress bar, and an honest verdict.

Prints the CPU kind and the precision ``amp=auto`` chose on it, the recipe's target (``TARGETS`` in
:mod:`cnnlab.train.recipes`: >= 93.0 % test top-1 in <= 90 s, set on a 2-core Xeon with AMX-BF16),
trains FastNet on the real Fashion-MNIST (``/usr/share/datasets/fashion-mnist``) on all the machine's
physical cores, then prints the final test top-1 (the full 10,000-image test set, flip + shift TTA),
the wall time of the training run (data loading, training, per-epoch evaluation and checkpoints
included), whether the target was met and, when not, one line on why, from the CPU kind and the
recipe's measured times on each kind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from cnnlab.train.hardware import CPU_KINDS, CpuInfo
from cnnlab.train.recipes import SpeedTarget

# Overrides that leave the recipe as its target was measured (threads and device are named in the verdict):
# a run with any other override is not judged.
NEUTRAL_OVERRIDES = frozenset({"out_dir", "progress", "plots", "tensorboard", "seed", "threads", "device"})


@dataclass(frozen=True)
class Verdict:
    """``met`` or not, the one-line ``summary`` and, when not met, the one line saying ``why``."""

    met: bool
    summary: str
    why: str | None = None


def _time_reason(target: SpeedTarget, cpu: CpuInfo, threads: int, device: str, load: str) -> str:
    """Why the wall time went over the target, from where the run ran and the recipe's measured times."""
    if device != "cpu":
        return f"trained on {device}; the target and its measurements are for CPUs"
    few = f"{threads} thread(s) here, the target was set at {target.threads}; " if threads < target.threads else ""
    base = target.measured.get(target.kind)
    here = target.measured.get(cpu.kind)
    if cpu.kind == target.kind:
        took = f", where this recipe took {base.low_s:.0f}-{base.high_s:.0f} s" if base else ""
        return (f"{few}this CPU has {CPU_KINDS[cpu.kind].split(':')[0]} like the machine the target was set on"
                f"{took}: the rest is other load here ({load}) or fewer free cores")
    if here is None or base is None:
        return f"{few}this recipe has not been measured on a CPU of this kind ({CPU_KINDS[cpu.kind]})"
    ratio = (here.low_s + here.high_s) / (base.low_s + base.high_s)
    took = f"{here.low_s:.0f}" if round(here.low_s) == round(here.high_s) else f"{here.low_s:.0f}-{here.high_s:.0f}"
    if cpu.kind == "fp32":
        return (f"{few}no native bf16 (no AVX512-BF16, no AMX): this CPU trains in fp32, ~{ratio:.1f}x slower than "
                f"bf16 on the CPU the target was set on (this recipe in fp32: {took} s, {here.where})")
    return (f"{few}no AMX: bf16 runs on AVX512-BF16 here, ~{ratio:.1f}x slower than on the CPU the target was set "
            f"on (this recipe: {took} s on {here.where})")


def speed_verdict(target: SpeedTarget, value: float, wall_s: float, cpu: CpuInfo, threads: int,
                  device: str = "cpu", load: str = "load average n/a") -> Verdict:
    """Judge one run of a recipe against its ``target``; the reason for a miss comes from the CPU kind."""
    got = f"{target.format_value(value, measured=True)} in {wall_s:.1f} s, against {target.describe()}"
    if target.met(value, wall_s):
        return Verdict(True, f"target met: {got}")
    reasons = []
    if value < target.value:
        seen = target.measured_value
        runs = (f"; this recipe reached {target.format_value(seen[0], True)} to {target.format_value(seen[1], True)}"
                f" ({target.measured_runs})") if seen else ""
        reasons.append(f"{target.metric_name} is below {target.format_value(target.value)}{runs}")
    if wall_s > target.seconds:
        reasons.append(_time_reason(target, cpu, threads, device, load))
    return Verdict(False, f"target not met: {got}", "; ".join(reasons))


def train_demo(console: Console | None = None, out_dir: str = "runs/fashion-fast", recipe: str = "fashion-fast",
               **overrides) -> dict:
    """Run ``recipe`` (CLI-style ``overrides`` allowed, e.g. ``epochs=1``); returns a summary dict."""
    import torch

    from cnnlab.train import fit, get_recipe
    from cnnlab.train.hardware import cpu_info, load_average, resolve_amp
    from cnnlab.train.recipes import TARGETS

    console = console or Console()
    cfg = get_recipe(recipe).replace(out_dir=out_dir, progress="bar" if console.is_terminal else "line",
                                     **overrides)
    device = "cuda" if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()) \
        else "cpu"
    cpu, threads = cpu_info(), cfg.threads or torch.get_num_threads()
    target = TARGETS.get(recipe)
    changed = sorted(set(overrides) - NEUTRAL_OVERRIDES)
    console.print(f"\n[bold]CPU[/] {cpu.model}, {cpu.cores} cores, {CPU_KINDS[cpu.kind].split(':')[0]}; "
                  f"precision path: {resolve_amp(cfg.amp, device)[1]}; {threads} thread{'s' * (threads != 1)} "
                  f"on {device}")
    if target is not None:
        console.print(f"[bold]target[/] {target.describe()}, set on {target.machine} at {target.threads} threads")
    console.print(f"[bold]Training[/] {cfg.model} on {cfg.data} with the [bold]{recipe}[/] recipe "
                  f"({cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.schedule} SGD, augment {cfg.augment}, "
                  f"TTA {cfg.tta}, amp {cfg.amp})")
    t0 = time.perf_counter()
    result = fit(cfg)
    wall = time.perf_counter() - t0
    value = result.final.get(target.metric if target else "top1", float("nan"))
    if target is None or target.metric == "top1":
        console.print(f"[bold]test top-1 {100 * value:.2f}%[/] on {result.final.get('n', 0):,} test images "
                      f"(no TTA {100 * result.final.get('top1_no_tta', value):.2f}%), wall {wall:.1f} s")
    else:
        console.print(f"[bold]{target.metric_name} {target.format_value(value)}[/], wall {wall:.1f} s")
    verdict = None
    if target is None or changed:
        why = f"the run changed {', '.join(changed)} from the recipe" if changed else "the recipe has no target"
        console.print(f"no verdict: {why}")
    else:
        verdict = speed_verdict(target, value, wall, cpu, threads, device, load_average())
        console.print(f"[{'green' if verdict.met else 'yellow'}]{verdict.summary}[/]")
        if verdict.why:
            console.print(f"  why: {verdict.why}")
    run_dir = Path(result.run_dir)
    console.print(f"run directory: {run_dir}  (curves.png, confusion_matrix.png, metrics.csv, "
                  f"tb/ for TensorBoard, best/last.safetensors)")
    return {"top1": value, "wall_s": wall, "run_dir": str(run_dir), "target_met": verdict.met if verdict else None}
