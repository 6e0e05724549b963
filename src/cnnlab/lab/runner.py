"""Running experiments: one directory each, cached by a hash of the configuration, failures isolated.

:func:`run_experiment` is the unit of work -- a plain function of (name, mode, seeds, results root)
that writes ``ROOT/NAME/`` and returns its ``result.json`` -- so a later executor (Ray, Slurm via
submitit) can call it anywhere. :func:`run_experiments` runs several, in this process or in
``workers`` local processes (:mod:`concurrent.futures`), printing a progress line per experiment.

A directory is built under ``ROOT/.NAME.tmp-PID`` and renamed into place when done, so an interrupted
run (Ctrl-C, SIGKILL) never leaves a half-written result and keeps every experiment that finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cnnlab._io import atomic_write, pid_alive
from cnnlab.errors import ConfigError
from cnnlab.lab.experiment import Context, Experiment, Verdict, get_experiment, list_experiments, read_result

__all__ = ["RunSummary", "config_hash", "resolve_names", "run_experiment", "run_experiments"]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def source_hash(exp: Experiment) -> str | None:
    """SHA-256 of the file defining the experiment (its run function and rule): editing it reruns it."""
    import inspect

    try:
        return hashlib.sha256(Path(inspect.getsourcefile(exp.run)).read_bytes()).hexdigest()[:16]
    except (OSError, TypeError):
        return None


def config_hash(exp: Experiment, mode: str, seeds: int | None, root: Path) -> str:
    """SHA-256 (16 hex digits) of what determines the result: name, version, the source of its module, mode,
    the configuration, the hashes of the results it reads (so a changed input reruns the reader) and the
    fingerprint of its outside inputs (``exp.inputs(config)``: e.g. the detection runs it reads)."""
    reads = {}
    for other in exp.reads:
        data = read_result(root / other)
        reads[other] = data.get("config_hash") if data and data.get("status") == "ok" else None
    config = exp.config(mode, seeds)
    key = {"name": exp.name, "version": exp.version, "source": source_hash(exp), "mode": mode,
           "config": config, "reads": reads, "inputs": exp.inputs(config) if exp.inputs else None}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def apply_verdict(exp: Experiment, numbers: dict[str, Any]) -> dict[str, str]:
    """The experiment's rule applied to its numbers; a rule that crashes is reported, not hidden."""
    try:
        verdict = exp.verdict(numbers)
        if not isinstance(verdict, Verdict):
            raise TypeError(f"verdict rule returned {type(verdict).__name__}, not Verdict")
        return verdict.as_dict()
    except Exception as e:
        return {"status": "not measurable", "reason": f"verdict rule failed: {type(e).__name__}: {e}"}


def _cached(exp: Experiment, directory: Path, digest: str) -> dict[str, Any] | None:
    """The stored result if it was made with this configuration; its verdict re-derived from its numbers."""
    data = read_result(directory)
    if not data or data.get("status") != "ok" or data.get("config_hash") != digest:
        return None
    verdict = apply_verdict(exp, data["numbers"])
    if verdict != data.get("verdict"):
        data["verdict"] = verdict
        atomic_write(directory / "result.json", json.dumps(data, indent=2, ensure_ascii=False).encode())
    data["cached"] = True
    return data


def _swap_into_place(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def run_experiment(name: str, mode: str = "quick", seeds: int | None = None, root: str | os.PathLike = "lab", *,
                   force: bool = False, threads: int = 0,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run one experiment into ``root/name`` (or return its cached result) and return its result dict.
    An exception inside the experiment is recorded (``status: failed``, ``error``), not raised."""
    exp = get_experiment(name)
    log = log or say
    root = Path(root)
    final = root / name
    digest = config_hash(exp, mode, seeds, root)
    if not force and (hit := _cached(exp, final, digest)) is not None:
        return hit
    if threads:
        import torch

        torch.set_num_threads(threads)
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = exp.config(mode, seeds)
    ctx = Context(name, mode, config, tmp, root, log=log)
    data: dict[str, Any] = {
        "name": name, "mode": mode, "config": _jsonable(config), "config_hash": digest,
        "claim": {"quote": exp.claim.quote, "paraphrase": exp.claim.paraphrase, "seed": exp.claim.seed},
        "estimate_s": exp.cost[mode], "load_average_start": list(os.getloadavg()),
    }
    start = time.perf_counter()
    try:
        result = exp.run(ctx)
        data.update(status="ok", setup=result.setup, numbers=_jsonable(result.numbers),
                    table=_jsonable(result.table), figures=list(ctx.figures))
        data["verdict"] = apply_verdict(exp, data["numbers"])
    except KeyboardInterrupt:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as e:
        data.update(status="failed", error=f"{type(e).__name__}: {e}", figures=list(ctx.figures))
        atomic_write(tmp / "error.txt", traceback.format_exc().encode())
    data["elapsed_s"] = round(time.perf_counter() - start, 2)
    data["load_average_end"] = list(os.getloadavg())
    data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    atomic_write(tmp / "result.json", json.dumps(data, indent=2, ensure_ascii=False).encode())
    _swap_into_place(tmp, final)
    return data


def resolve_names(names: Sequence[str]) -> list[str]:
    """``all`` or names -> registered names in run order (readers after what they read)."""
    if not names:
        raise ConfigError("name at least one experiment, or `all` (see `cnnlab lab list`)")
    order = [e.name for e in list_experiments()]
    if "all" in names:
        return order
    wanted = {get_experiment(n).name for n in names}
    return [n for n in order if n in wanted]


@dataclass
class RunSummary:
    results: dict[str, dict[str, Any]]
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [n for n, r in self.results.items() if r.get("status") != "ok"]


def progress_line(index: int, total: int, data: dict[str, Any]) -> str:
    """``[3/9] depthwise   partly          12.3 s (est. 40 s, load 2.1)  reason``"""
    name = data["name"]
    if data.get("status") != "ok":
        return f"[{index}/{total}] {name:<22} FAILED          {data.get('error', '')}"
    v = data["verdict"]
    when = "cached" if data.get("cached") else (f"{data['elapsed_s']:.1f} s (est. {data['estimate_s']:.0f} s, "
                                                f"load {data['load_average_end'][0]:.1f})")
    return f"[{index}/{total}] {name:<22} {v['status']:<15} {when}  {v['reason']}"


def run_experiments(names: Sequence[str], mode: str = "quick", seeds: int | None = None,
                    root: str | os.PathLike = "lab", *, workers: int = 1, force: bool = False,
                    log: Callable[[str], None] | None = None) -> RunSummary:
    """Run ``names`` (see :func:`resolve_names`) into ``root``; Ctrl-C keeps what finished."""
    order = resolve_names(names)
    log = log or say
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_dirs(root)
    summary, start = RunSummary({}), time.perf_counter()
    total = len(order)

    def done(data: dict[str, Any]) -> None:
        summary.results[data["name"]] = data
        log(progress_line(len(summary.results), total, data))

    try:
        if workers == 1:
            for name in order:
                exp = get_experiment(name)
                log(f"[{len(summary.results) + 1}/{total}] {name}: running ({mode}, est. {exp.cost[mode]:.0f} s)")
                done(run_experiment(name, mode, seeds, root, force=force, log=log))
        else:
            _run_parallel(order, mode, seeds, root, workers, force, done, log)
    except KeyboardInterrupt:
        summary.interrupted = True
        log(f"interrupted: {len(summary.results)} of {total} finished experiments kept under {root}")
    summary.wall_s = time.perf_counter() - start
    return summary


def _run_parallel(order: list[str], mode: str, seeds: int | None, root: Path, workers: int, force: bool,
                  done: Callable[[dict[str, Any]], None], log: Callable[[str], None]) -> None:
    """Independent experiments in ``workers`` processes; readers (``reads``) after the rest, in this process."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    readers = [n for n in order if get_experiment(n).reads]
    independent = [n for n in order if n not in readers]
    pool = cf.ProcessPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(run_experiment, n, mode, seeds, root, force=force, threads=threads, log=_quiet): n
                   for n in independent}
        log(f"running {len(independent)} experiments in {workers} processes ({threads} threads each)")
        for fut in cf.as_completed(futures):
            try:
                done(fut.result())
            except KeyboardInterrupt:
                raise
            except Exception as e:
                done({"name": futures[fut], "status": "failed", "error": f"worker: {type(e).__name__}: {e}"})
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    for name in readers:
        done(run_experiment(name, mode, seeds, root, force=force, log=log))


def say(message: str) -> None:
    """Print one progress line now (stdout may be a file or a pipe)."""
    print(message, flush=True)


def remove_stale_dirs(root: Path) -> list[Path]:
    """Delete ``.NAME.tmp-PID`` / ``.NAME.old-PID`` directories left by killed runs (PID no longer alive)."""
    removed = []
    for d in root.glob(".*.*-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if d.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _quiet(message: str) -> None:
    """Worker processes keep their logs to themselves; the parent prints one line per experiment."""
