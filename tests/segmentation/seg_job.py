"""A small segmentation job run as a script by test_segment_paths.py.

``python seg_job.py kill DATA_DIR OUT K`` trains :func:`config` and SIGKILLs its own process right after optimizer
step K; ``python seg_job.py eval CKPT OUT.json RANK WORLD PORT`` joins a gloo process group of WORLD processes and
evaluates the checkpoint on its test split (sharded by the task), rank 0 writing the metrics as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import torch

from cnnlab.train import TrainConfig

SCENES = "fashion-scenes:size=64,max_items=2,n_train=64,n_test=32"
EVAL_DATA = "fashion-scenes:size=64,max_items=2,n_train=192,n_test=10"  # the sharded evaluation's data


def config(data_dir: str, out_dir: str) -> TrainConfig:
    """Everything that must replay exactly across a mid-epoch kill: crop+flip, input noise, Adam, one-cycle,
    checkpoints every 3 steps (4 steps an epoch)."""
    return TrainConfig(task="segmentation", model="fcn8s_fastnet", data=SCENES, data_dir=data_dir, epochs=2,
                       batch_size=16, optimizer="adam", lr=3e-3, schedule="onecycle", augment="crop:4,flip",
                       input_noise=0.05, ckpt_every_steps=3, seed=5, deterministic=True, threads=1, progress="none",
                       plots=False, tensorboard=False, out_dir=out_dir, eval_batch_size=16)


class KillAt:
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def evaluate_sharded(ckpt: str, out: str, rank: int, world: int, port: int) -> None:
    from cnnlab.train.evaluation import evaluate_checkpoint

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world)
    try:
        r = evaluate_checkpoint(ckpt, batch_size=2, device="cpu", data=EVAL_DATA)
    finally:
        torch.distributed.destroy_process_group()
    if rank == 0:
        with open(out, "w") as f:
            json.dump(r, f)


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "kill":
        from cnnlab.train import fit

        fit(config(sys.argv[2], sys.argv[3]), callbacks=[KillAt(int(sys.argv[4]))])
    elif sys.argv[1] == "eval":
        evaluate_sharded(sys.argv[2], sys.argv[3], *(int(v) for v in sys.argv[4:7]))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
