"""Detection speed: R-CNN's per-proposal CNN passes vs one shared pass (SPPNet, Fast/Faster R-CNN) vs a single
shot (YOLO), read from the detection runs that ``cnnlab detect train`` or ``benchmarks/bench_detect.py --out``
wrote (their ``result.json`` carries ``ms_per_image`` since the detection task times its forward passes)."""

from __future__ import annotations

from typing import Any

from cnnlab.lab.experiment import Claim, Context, Result, Verdict, register_experiment

SEED_BOOTCAMP = "002_3b1430c23a712c60.txt"

ORDER = ("rcnn", "sppnet", "fast-rcnn", "faster-rcnn", "yolo")
# Test-time speed-up over R-CNN as the papers report it (GPU, ~2,000 proposals of 227 px per image):
# SPPNet 24-102x (He et al. 2014, Table 7), Fast R-CNN 146-213x (Girshick 2015, Table 4); Faster R-CNN 5 fps vs
# YOLO 45 fps (Redmon et al. 2016, Table 1), i.e. YOLO 9x Faster R-CNN.
PAPER_SPEEDUP = {"sppnet": "24-102x", "fast-rcnn": "146-213x", "faster-rcnn": "-", "yolo": "9x Faster R-CNN"}
SHARED_PASS_FACTOR = 10  # "far slower": the rule's threshold, set before any run


def detection_runs(search: list[str]) -> list[dict[str, Any]]:
    """The newest finished detection run per method under the ``search`` folders, with its mAP and speed."""
    from cnnlab.detection.predict import method_of_run
    from cnnlab.errors import ConfigError
    from cnnlab.train.runs import find_runs, read_run

    newest: dict[str, dict[str, Any]] = {}
    for root in search:
        for path in find_runs(root):  # newest first
            try:
                run = read_run(path)
            except ConfigError:
                continue
            final = run.result.get("final") or {}
            method = method_of_run(run.result, run.config)
            if run.task != "detection" or not final.get("ms_per_image") or method is None or method in newest:
                continue
            newest[method] = {"method": method, "model": run.config.get("model") or method, "run": str(path),
                              "map_50": final.get("map_50"), "map": final.get("map"),
                              "ms_per_image": float(final["ms_per_image"]),
                              "proposals_per_image": final.get("proposals_per_image")}
    return [newest[m] for m in ORDER if m in newest]


def runs_fingerprint(config: dict[str, Any]) -> str:
    """Every ``result.json`` under the search folders with its modification time: a new or retrained detection
    run reruns the experiment instead of returning its cached verdict."""
    from cnnlab.train.runs import find_runs

    found = [p / "result.json" for root in config["search"] for p in find_runs(root)]
    return ";".join(sorted(f"{p}@{p.stat().st_mtime_ns}" for p in found if p.is_file()))


def detection_verdict(n: dict[str, Any]) -> Verdict:
    """Not measurable without an R-CNN run and at least one shared-pass or single-shot run. Confirmed: every
    other method is at least 10x faster per image than R-CNN (the lecture's "2,000 passes -> slow"); partly:
    all faster, some by less than 10x; not confirmed: some method is not faster than R-CNN. The reason also
    states the paper-ordering check YOLO > Faster > Fast >= SPPNet > R-CNN on the methods present."""
    runs = {r["method"]: r for r in n["runs"]}
    if "rcnn" not in runs or len(runs) < 2:
        return Verdict("not measurable", "needs a `cnnlab detect train --method rcnn` run and a shared-pass one "
                                         f"(found: {', '.join(runs) or 'none'} under {', '.join(n['searched'])})")
    base = runs["rcnn"]["ms_per_image"]
    ups = {m: base / r["ms_per_image"] for m, r in runs.items() if m != "rcnn"}
    text = "speed-up over R-CNN per image: " + ", ".join(f"{m} {u:.1f}x" for m, u in ups.items())
    present = [m for m in ("yolo", "faster-rcnn", "fast-rcnn", "sppnet", "rcnn") if m in runs]
    speeds = [1 / runs[m]["ms_per_image"] for m in present]
    ordered = all(a >= b for a, b in zip(speeds, speeds[1:]))
    text += f"; paper ordering {' > '.join(present)} {'holds' if ordered else 'does not hold'}"
    if min(ups.values()) < 1:
        return Verdict("not confirmed", text)
    return Verdict("confirmed" if min(ups.values()) >= SHARED_PASS_FACTOR else "partly", text)


@register_experiment(
    "detection_speed",
    claim=Claim(quote="계산의 비효율성: 2000개의 region proposals을 모두 CNN에 통과시켜야 함 -> 연산시간이 높음",
                paraphrase="R-CNN runs the CNN once per proposal (~2000), so it is far slower per image than "
                           "detectors sharing one pass (SPPNet, Fast/Faster R-CNN) or a single shot (YOLO).",
                seed=SEED_BOOTCAMP),
    configs={m: {"search": ["runs"]} for m in ("quick", "full")},
    cost={"quick": 2, "full": 2}, verdict=detection_verdict, version=2, inputs=runs_fingerprint)
def detection_speed(ctx: Context) -> Result:
    from cnnlab.lab.style import new_figure

    runs = detection_runs(ctx.config["search"])
    base = next((r["ms_per_image"] for r in runs if r["method"] == "rcnn"), None)
    for r in runs:
        r["speedup_over_rcnn"] = base / r["ms_per_image"] if base else None
        r["paper_speedup"] = PAPER_SPEEDUP.get(r["method"], "1x")
    if runs:
        fig, ax = new_figure(width=10)
        ax.bar([r["method"] for r in runs], [r["ms_per_image"] for r in runs])
        for i, r in enumerate(runs):
            ax.annotate(f"mAP@0.5 {r['map_50']:.2f}" if r["map_50"] is not None else "", (i, r["ms_per_image"]),
                        ha="center", va="bottom")
        ax.set(yscale="log", xlabel="detector", ylabel="forward time per image (ms, log scale)",
               title="test-time cost per image (proposals excluded)")
        ctx.save_figure(fig, "detection_speed.png")
    setup = (f"the newest finished detection run per method under {ctx.config['search']} (`cnnlab detect train` or "
             "`benchmarks/bench_detect.py --out`); time = the forward passes of the final test evaluation in the "
             "run's batch and threads, selective-search proposals excluded (cached), as in the papers' test-time "
             "comparisons")
    return Result({"runs": runs, "searched": ctx.config["search"]}, setup, runs)
