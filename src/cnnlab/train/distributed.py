"""Multi-process training: ``--nproc N`` on one machine, or any launcher that sets torchrun's variables.

``fit()`` looks at the environment: with ``WORLD_SIZE`` > 1 (set by ``torchrun`` or by
:func:`launch`) it joins the process group (``env://``; gloo on CPU, nccl on CUDA), shards the
in-memory training set DistributedSampler-style, and lets only rank 0 log and write checkpoints.
``launch`` spawns ``nproc`` local processes with ``torch.multiprocessing`` and the same variables.
Multi-machine runs use torchrun directly: ``torchrun --nnodes 2 --nproc-per-node 4 ... -m cnnlab.cli train ...``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: torch.device) -> DistInfo:
    """Join the process group described by torchrun's environment variables (no-op when WORLD_SIZE <= 1)."""
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        here = True
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, initialized_here=here)


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, fit: Callable[..., Any], nproc: int, port: int, cfg: Any, kwargs: dict[str, Any]) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc)})
    if kwargs.get("model") is not None:
        # torch.multiprocessing hands tensors over in shared memory: without a private copy every
        # process would step the same parameters. (Datasets stay shared: they are only read.)
        import copy

        kwargs = {**kwargs, "model": copy.deepcopy(kwargs["model"])}
    fit(cfg, **kwargs)


def launch(fit: Callable[..., Any], cfg: Any, nproc: int, **kwargs: Any) -> None:
    """Run ``fit(cfg, **kwargs)`` in ``nproc`` spawned processes; returns when all have finished (``fit`` is
    the engine's, passed in so that this lower module does not import the engine).

    Errors in a child (a CnnlabError included) are re-raised here by ``torch.multiprocessing``
    as ``ProcessRaisedException``; the engine converts them back to one line.
    """
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(fit, nproc, free_port(), cfg, kwargs), nprocs=nproc, join=True)


def shard_for_eval(data: Any) -> tuple[Any, bool]:
    """``(this process's shard, sharded)``: under an initialised process group each process evaluates every
    world-th sample (disjoint shards whose metric sums are all-reduced); otherwise the data whole."""
    if not (dist.is_available() and dist.is_initialized()) or not hasattr(data, "subset"):
        return data, False
    rank, world = dist.get_rank(), dist.get_world_size()
    return data.subset(torch.arange(rank, len(data), world)), True
