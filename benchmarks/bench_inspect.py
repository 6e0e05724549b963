"""Benchmark: ``cnnlab.inspect`` vs torchvision construction + ``torchinfo.summary``.

(a) by name, end to end as a user meets it: ``cnnlab.inspect(name, (3, S, S))`` vs
    ``torchinfo.summary(torchvision.models.<name>(), (1, 3, S, S))`` at S = 224 and 1024;
(b) on an already-built instance at 224: ``cnnlab.inspect(model)`` vs ``torchinfo.summary(model)``.

Each measurement runs in a fresh subprocess so its peak memory (growth of the process's peak RSS
over the RSS after imports) is its own. Time: best of ``--repeat`` calls after one cold call
(cold time printed too). Goals: (a) >= 10x faster at both sizes with flat memory; (b) >= 3x.
Both bases are judged: "warm" (best of the repeats after the first call, both sides) and "cold"
(the first call in a fresh process, both sides, as a user running one command meets it). The
overall verdict uses the warm ratio, the stricter of the two: torchinfo's first call also pays
one-off CPU-kernel warm-up that its later calls do not.

    python benchmarks/bench_inspect.py [--models resnet50,vgg16] [--repeat 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MODELS = ("resnet50", "vgg16", "densenet121", "efficientnet_b0")


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _peak_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(method: str, name: str, size: int, repeat: int, threads: int) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import torchinfo
    import torchvision

    import cnnlab
    from cnnlab.analysis import inspect

    if threads:
        torch.set_num_threads(threads)
    shape = (3, size, size)
    instance = None
    if method.endswith("instance"):
        instance = getattr(torchvision.models, name)()  # built before the clock and the memory baseline

    def run():
        if method == "cnnlab_name":
            return inspect(name, shape).total_macs
        if method == "torchinfo_name":
            m = getattr(torchvision.models, name)()
            return torchinfo.summary(m, (1, *shape), verbose=0, device="cpu").total_mult_adds
        if method == "cnnlab_instance":
            return inspect(instance, shape).total_macs
        if method == "torchinfo_instance":
            return torchinfo.summary(instance, (1, *shape), verbose=0, device="cpu").total_mult_adds
        raise ValueError(method)

    assert cnnlab.__version__
    base_rss, base_peak = _rss_kb(), _peak_kb()
    t = time.perf_counter()
    macs = run()
    cold = time.perf_counter() - t
    peak_kb = max(_peak_kb() - max(base_rss, base_peak), 0)
    times = [cold]
    for _ in range(repeat - 1):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return {"cold": cold, "best": min(times[1:] or times), "peak_mb": peak_kb / 1024, "macs": macs}


def measure(method: str, name: str, size: int, repeat: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, name, str(size), str(repeat), str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--repeat", type=int, default=3, help="calls per measurement (first is cold)")
    p.add_argument("--big-repeat", type=int, default=2, help="calls for torchinfo at 1024 (slow)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        method, name, size, repeat, threads = args.child
        print(json.dumps(child(method, name, int(size), int(repeat), int(threads))))
        return 0

    print(f"cnnlab inspect benchmark  (cpus: {os.cpu_count()}, load avg: {os.getloadavg()[0]:.1f}; "
          "s = warm: best of repeats after the cold call; cold = first call in a fresh process; "
          "peak = growth of peak RSS)")
    head = f"{'case':34s} {'cnnlab s':>9s} {'cold':>7s} {'peak MB':>8s} | {'torchinfo s':>11s} {'cold':>7s} " \
           f"{'peak MB':>8s} | {'ratio':>7s} {'cold':>6s}  goal"
    print(head)
    print("-" * len(head))
    ok = True
    for name in args.models.split(","):
        for label, size, ours_m, theirs_m, goal in (
            ("(a) by name", 224, "cnnlab_name", "torchinfo_name", 10),
            ("(a) by name", 1024, "cnnlab_name", "torchinfo_name", 10),
            ("(b) instance", 224, "cnnlab_instance", "torchinfo_instance", 3),
        ):
            ours = measure(ours_m, name, size, args.repeat, args.threads)
            rep = args.big_repeat if size > 224 else args.repeat
            theirs = measure(theirs_m, name, size, rep, args.threads)
            ratio = theirs["best"] / ours["best"]
            cold_ratio = theirs["cold"] / ours["cold"]
            same = "" if ours["macs"] <= theirs["macs"] else " (MACs differ!)"
            met, cold_met = ratio >= goal, cold_ratio >= goal
            ok &= met
            verdict = f"warm {'met' if met else 'NOT MET'}, cold {'met' if cold_met else 'NOT MET'}"
            print(f"{name + ' ' + label + f' {size}':34s} {ours['best']:9.4f} {ours['cold']:7.3f} "
                  f"{ours['peak_mb']:8.1f} | {theirs['best']:11.4f} {theirs['cold']:7.3f} {theirs['peak_mb']:8.1f} | "
                  f"{ratio:6.1f}x {cold_ratio:5.1f}x  >={goal}x {verdict}{same}", flush=True)
    print("all goals met (warm basis)" if ok else
          "some goals not met on the warm basis (see above; timings on a shared machine are noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
