"""A small, fully specified training job used by the resume and DDP tests, in-process and as a script.

``python train_job.py run OUT`` trains uninterrupted; ``kill OUT K`` SIGKILLs its own process right
after optimizer step K; ``kill-in-write OUT N HOW`` SIGKILLs it inside its N-th checkpoint write (0-based,
``.safetensors`` files only; HOW = ``partial``: half the bytes in the temp file, ``before-rename``: the
temp file complete and fsynced, ``os.replace`` not yet run); ``resume OUT`` continues the killed run from
its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch import nn

from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, fit


def tiny_net(batch_norm: bool = True, dropout: float = 0.1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # a provided model is initialised by its caller
    norm = [nn.BatchNorm2d(8)] if batch_norm else []
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), *norm, nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Dropout(dropout), nn.Linear(16 * 16, 10))


def datasets(n_train: int = 256, n_test: int = 128):
    return (load_dataset("synthetic", "train", n_train=n_train, n_test=n_test),
            load_dataset("synthetic", "test", n_train=n_train, n_test=n_test))


def resume_config(out_dir: str) -> TrainConfig:
    """Everything that must replay exactly: dropout, BN, crop+flip, input noise, EMA, Nesterov,
    one-cycle, label smoothing, gradient accumulation, mid-epoch checkpoints."""
    return TrainConfig(model="tiny", data="synthetic", epochs=4, batch_size=32, accum_steps=2, optimizer="sgd",
                       lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4, schedule="onecycle",
                       label_smoothing=0.1, augment="crop:2,flip", input_noise=0.05, ema_decay=0.9,
                       ckpt_every_steps=3, seed=3, deterministic=True, threads=1, progress="none",
                       plots=False, tensorboard=False, out_dir=out_dir)


class KillAt:
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, state) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class _DyingFile:
    """A file whose first ``write`` stores half the bytes, fsyncs them and SIGKILLs the process."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        os.fsync(self.f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


def kill_in_write(n: int, how: str) -> None:
    """Make this process die inside cnnlab's ``atomic_write`` of its ``n``-th checkpoint (see the module
    docstring): its ``open`` (``partial``) or its ``os.replace`` (``before-rename``) is patched for that write."""
    from cnnlab import _io
    from cnnlab.train import checkpoint

    if how not in ("partial", "before-rename"):
        raise SystemExit(f"unknown kill point {how}; use partial or before-rename")
    real_write, real_replace = checkpoint.atomic_write, os.replace
    count, target = 0, False

    def dying_open(file, mode="r", *args, **kwargs):
        f = open(file, mode, *args, **kwargs)
        return _DyingFile(f) if target and how == "partial" else f

    def dying_replace(src, dst):
        if target:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    def write(path, data):
        nonlocal count, target
        target = str(path).endswith(".safetensors") and count == n
        count += str(path).endswith(".safetensors")
        try:
            real_write(path, data)
        finally:
            target = False

    checkpoint.atomic_write = write
    _io.open = dying_open  # module globals shadow the builtin inside cnnlab._io
    _io.os.replace = dying_replace  # the os module itself: this process dies anyway


def run(out_dir: str, kill_at: int | None = None, resume: bool = False):
    train, test = datasets()
    callbacks = [KillAt(kill_at)] if kill_at else []
    return fit(resume_config(out_dir), model=tiny_net(), train_data=train, test_data=test, callbacks=callbacks,
               resume=out_dir if resume else None)


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    if mode == "run":
        run(out)
    elif mode == "kill":
        run(out, kill_at=int(sys.argv[3]))
    elif mode == "kill-in-write":
        kill_in_write(int(sys.argv[3]), sys.argv[4])
        run(out)
    elif mode == "resume":
        run(out, resume=True)
    else:
        raise SystemExit(f"unknown mode {mode}")
