"""What every ensemble/validation command shares: the data, one ``fit()`` per member, local workers.

A *member* (a CV fold, a bagged or boosted model, a bias-variance replicate) is an ordinary training run
with its own run directory: ``fit(cfg, train_data=train.subset(idx), val_data=..., test_data=test,
sample_weights=w)``. Nothing else trains, so a member is exactly what ``cnnlab train --out-dir`` makes
and ``cnnlab ensemble`` can combine run directories trained anywhere (another machine, a cluster job).

``workers > 1`` trains members in that many local processes (``ProcessPoolExecutor`` with the spawn
start method), each with ``cores // workers`` intra-op threads; each process loads the data itself
from its :class:`DataSource` and trains on the member's indices, so nothing large is pickled.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import ConfigError, DataError
from cnnlab.train.rundir import default_run_dir

IN_MEMORY_BYTES = 2 << 30  # decode an image folder once into memory when it is at most this big


@dataclass(frozen=True)
class DataSource:
    """Where the members' training and evaluation images come from (picklable, for worker processes).

    ``holdout``: when the dataset has no test split (an image folder without ``test/``), this stratified
    fraction of the training images (seeded by ``seed``) is held out as the evaluation set.
    """

    name: str
    data_dir: str | None = None
    train_subset: int = 0
    seed: int = 0
    holdout: float = 0.2


@dataclass
class MemberData:
    train: Any
    test: Any
    test_name: str  # "test split" or "20% stratified hold-out of the training images"


def source_of(cfg, holdout: float = 0.2) -> DataSource:
    """Where ``cfg``'s members get their images; a run that is not image classification is one clear error
    (members are scored right or wrong per image: folds, resamples, votes and boosting weights need it)."""
    from cnnlab.models import get_model_info

    task = cfg.task if cfg.task != "classification" else get_model_info(cfg.model).task
    if task != "classification":
        raise ConfigError(f"cv, bag, boost and biasvar train image classifiers; {cfg.model} with task={cfg.task} "
                          f"is {task} (use `cnnlab segment train` / its --val-fraction for dense tasks)")
    return DataSource(cfg.data, cfg.data_dir, cfg.train_subset, cfg.seed, holdout)


def _in_memory(ds, mean=None, std=None):
    """An image folder decoded once (fast repeated epochs) when small enough; arrays as they are."""
    from cnnlab.data import ArrayDataset, FolderDataset

    if isinstance(ds, FolderDataset) and len(ds) * ds.channels * ds.image_size[0] * ds.image_size[1] <= IN_MEMORY_BYTES:
        arr = ds.to_array()
        if mean is not None:
            arr = ArrayDataset(arr.images, arr.labels, arr.classes, arr.name, mean, std)
        return arr
    return ds


def load_data(spec: DataSource, need_test: bool = True) -> MemberData:
    """The training images (``train_subset`` applied as :func:`cnnlab.train.fit` does) and the evaluation
    images: the dataset's test split, normalised and sized like the training images, or a hold-out."""
    from cnnlab.data import DenseDataset, load_dataset, stratified_split

    train = load_dataset(spec.name, split="train", data_dir=spec.data_dir)
    if isinstance(train, DenseDataset):
        raise DataError(f"{spec.name} is dense data (masks/boxes, no label per image); cv, bag, boost, biasvar "
                        "and ensemble --eval take classification data such as fashion-mnist or imagefolder:DIR")
    folder = spec.name.startswith("imagefolder:")
    train = _in_memory(train)
    if spec.train_subset and spec.train_subset < len(train):
        g = torch.Generator().manual_seed(spec.seed)
        train = train.subset(torch.randperm(len(train), generator=g)[: spec.train_subset].sort().values)
    if not need_test:
        return MemberData(train, None, "none")
    try:
        opts = dict(image_size=tuple(train.image_shape[1:]), channels=train.image_shape[0]) if folder else {}
        test = load_dataset(spec.name, split="test", data_dir=spec.data_dir, **opts)
    except DataError:
        if not folder:
            raise
        if not 0.0 < spec.holdout < 1.0:
            raise ConfigError(f"{spec.name} has no test/ sub-folder and the hold-out fraction is {spec.holdout}; "
                              "give a fraction in (0, 1) or add a test/ folder") from None
        train, test = stratified_split(train, val_fraction=spec.holdout, seed=spec.seed)
        return MemberData(train, test, f"{100 * spec.holdout:g}% stratified hold-out of the training images")
    if folder:
        test = _in_memory(test, train.mean, train.std)
    if list(test.classes) != list(train.classes):
        raise DataError(f"{spec.name}: the test split's classes {test.classes} differ from the training "
                        f"split's {train.classes}")
    return MemberData(train, test, "test split")


# ------------------------------------------------------------------------------ one member
@dataclass
class MemberJob:
    """One training run: its name, its TrainConfig (as a dict; ``out_dir`` set), the indices of the
    training images it trains on (repeats allowed; ``None`` = all), those it validates on (a CV fold),
    and optional per-sample loss weights (boosting)."""

    name: str
    cfg: dict
    train_idx: list[int] | None = None
    val_idx: list[int] | None = None
    sample_weights: list[float] | None = None
    evaluate_test: bool = True


@dataclass
class MemberRun:
    """What a member's training returns: its run directory, final metrics and last history row."""

    name: str
    run_dir: str
    final: dict
    last_epoch: dict = field(default_factory=dict)
    final_weights: str = "last"
    wall_s: float = 0.0


def train_member(job: MemberJob, data: MemberData) -> MemberRun:
    """``fit()`` the member on its subset of ``data``."""
    from cnnlab.train import TrainConfig, fit

    cfg = TrainConfig.from_dict(job.cfg)
    train = data.train if job.train_idx is None else data.train.subset(job.train_idx)
    val = None if job.val_idx is None else data.train.subset(job.val_idx)
    test = data.test if job.evaluate_test else None
    weights = None if job.sample_weights is None else torch.tensor(job.sample_weights, dtype=torch.float32)
    t0 = time.perf_counter()
    result = fit(cfg, train_data=train, val_data=val, test_data=test, sample_weights=weights)
    wall = time.perf_counter() - t0
    if result.interrupted:  # Ctrl-C/SIGTERM: the member saved its last checkpoint; stop the whole command
        raise KeyboardInterrupt(f"{job.name} interrupted; its run directory {result.run_dir} can be resumed with "
                                f"`cnnlab train --resume {result.run_dir}`")
    summary_path = Path(result.run_dir) / "result.json"
    final_weights = "last"
    if summary_path.is_file():
        import json

        final_weights = json.loads(summary_path.read_text()).get("final_weights", "last")
    last = dict(result.history[-1]) if result.history else {}
    return MemberRun(job.name, str(result.run_dir), dict(result.final), last, final_weights, wall)


@lru_cache(maxsize=2)
def _worker_data(spec: DataSource, need_test: bool) -> MemberData:
    return load_data(spec, need_test)


def _worker(spec: DataSource, job: MemberJob) -> MemberRun:
    return train_member(job, _worker_data(spec, job.evaluate_test or job.val_idx is None))


def run_members(jobs: Sequence[MemberJob], data: MemberData, spec: DataSource, workers: int = 1,
                on_done: Callable[[MemberRun], None] | None = None) -> list[MemberRun]:
    """Train ``jobs`` (in order in this process, or in ``workers`` spawned processes) -> runs in job order."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if workers == 1 or len(jobs) == 1:
        runs = []
        for job in jobs:
            runs.append(train_member(job, data))
            if on_done:
                on_done(runs[-1])
        return runs
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs = [MemberJob(j.name, {**j.cfg, "threads": threads, "progress": "none"},
                      j.train_idx, j.val_idx, j.sample_weights, j.evaluate_test) for j in jobs]
    out: dict[int, MemberRun] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_worker, spec, job): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            run = fut.result()
            out[futures[fut]] = run
            if on_done:
                on_done(run)
    return [out[i] for i in range(len(jobs))]


def member_config(cfg, out_dir: Path, name: str, **changes) -> dict:
    """The member's TrainConfig dict: ``cfg`` writing to ``out_dir/name``; the training subset is already
    applied by :func:`load_data`, so ``train_subset`` is cleared."""
    return cfg.replace(out_dir=str(Path(out_dir) / name), train_subset=0, **changes).to_dict()


@contextlib.contextmanager
def torch_threads(n: int):
    """Evaluate with the members' ``threads`` setting (0 = leave torch's), restored afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_out_dir(kind: str, cfg) -> Path:
    return default_run_dir(cfg.data, kind, cfg.model)


def out_dir_for(kind: str, cfg, out_dir: str | Path | None) -> Path:
    """The command's parent folder: ``out_dir``, else ``cfg.out_dir``, else ``runs/KIND-MODEL-DATA-TIME``."""
    return Path(out_dir) if out_dir is not None else Path(cfg.out_dir or default_out_dir(kind, cfg))
