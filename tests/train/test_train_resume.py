"""Exact resume: a run SIGKILLed mid-epoch and resumed ends bit-identical to an uninterrupted run;
Ctrl-C saves and resumes the same way; checkpoints are atomic single files."""

import os
import signal
import subprocess
import sys

import pytest
import torch

from cnnlab.train import TrainConfig, fit, load_checkpoint


def _same_checkpoints(a, b):
    ca, cb = load_checkpoint(a, prefer="last"), load_checkpoint(b, prefer="last")
    assert sorted(ca.tensors) == sorted(cb.tensors)
    for k in ca.tensors:
        assert torch.equal(ca.tensors[k], cb.tensors[k]), k
    assert ca.meta["global_step"] == cb.meta["global_step"]
    strip = ("epoch_time_s", "train_img_per_s")
    ha = [{k: v for k, v in r.items() if k not in strip} for r in ca.meta["fit_state"]["history"]]
    hb = [{k: v for k, v in r.items() if k not in strip} for r in cb.meta["fit_state"]["history"]]
    assert ha == hb  # losses and accuracies of every epoch, the killed epoch included


@pytest.fixture(scope="module")
def ref_run(job, tmp_path_factory):
    """The uninterrupted run (in this process), shared by the kill tests."""
    ref = tmp_path_factory.mktemp("ref")
    job.run(str(ref))
    return ref


def test_sigkill_mid_epoch_then_resume_is_bit_identical(job, ref_run, tmp_path):
    ref, killed = ref_run, tmp_path / "killed"

    env = {**os.environ, "PYTHONHASHSEED": "0"}
    script = job.__file__
    # 4 epochs x 4 optimizer steps; checkpoints every 3 steps; killed right after step 10
    # (epoch 3, mid-epoch), so step 10 is lost and must be recomputed identically.
    proc = subprocess.run([sys.executable, script, "kill", str(killed), "10"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    mid = load_checkpoint(killed, prefer="last")
    assert (mid.meta["epoch"], mid.meta["micro_step"], mid.meta["global_step"]) == (2, 2, 9)
    job.run(str(killed), resume=True)  # resumed here, in a fresh fit() of this process
    _same_checkpoints(ref, killed)
    assert (killed / "best.safetensors").exists() and (killed / "metrics.csv").read_text().count("\n") == 5
    assert not list(killed.glob(".*tmp*"))  # no temporary files left behind


# The run's checkpoint writes (train_job.resume_config): 0 last@3, 1 best@4, 2 last@4, 3 last@6, 4 last@8,
# 5 last@9, 6 last@12, 7 last@15, 8 best@16, 9 last@16 (global steps; best improves at epochs 1 and 4).
@pytest.mark.parametrize("write, how, last_step", [
    (5, "partial", 8),  # mid-epoch last.safetensors half written: resume from step 8
    (8, "before-rename", 15),  # epoch 4's best.safetensors complete in its temp file, not yet renamed
])
def test_sigkill_inside_a_checkpoint_write_then_resume_is_bit_identical(job, ref_run, tmp_path, write, how,
                                                                         last_step):
    """A kill that lands inside a write leaves the previous complete checkpoint in place; resuming from it
    ends bit-identical to an uninterrupted run, best.safetensors included."""
    ref, killed = ref_run, tmp_path / "killed"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, job.__file__, "kill-in-write", str(killed), str(write), how], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [tmp] = killed.glob(".*.safetensors.tmp-*")  # the kill did land inside the write
    assert tmp.name.startswith(".last." if write == 5 else ".best.")
    assert load_checkpoint(killed, prefer="last").meta["global_step"] == last_step
    job.run(str(killed), resume=True)
    assert not tmp.exists()  # the dead writer's temp file is cleaned up on resume
    _same_checkpoints(ref, killed)
    best, ref_best = load_checkpoint(killed / "best.safetensors"), load_checkpoint(ref / "best.safetensors")
    assert best.meta["epoch"] == ref_best.meta["epoch"] == 4
    assert sorted(best.tensors) == sorted(ref_best.tensors)
    assert all(torch.equal(best.tensors[k], ref_best.tensors[k]) for k in ref_best.tensors)


class _CtrlC:
    def on_step_end(self, state):
        if state.global_step == 6:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_and_resume_matches(job, tmp_path):
    train, test = job.datasets()
    ref = job.run(str(tmp_path / "ref"))
    out = str(tmp_path / "int")
    r = fit(job.resume_config(out), model=job.tiny_net(), train_data=train, test_data=test, callbacks=[_CtrlC()])
    assert r.interrupted and r.epochs_run == 1
    ck = load_checkpoint(out, prefer="last")
    # the stop is seen at the next step boundary
    assert (ck.meta["epoch"], ck.meta["micro_step"], ck.meta["global_step"]) == (1, 6, 7)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    r2 = fit(job.resume_config(out), model=job.tiny_net(), train_data=train, test_data=test, resume=out)
    assert not r2.interrupted and r2.epochs_run == 4
    _same_checkpoints(tmp_path / "ref", out)
    assert r2.final["top1"] == ref.final["top1"]


def test_resume_with_more_epochs_continues(job, tmp_path, synth):
    train, test = synth
    out = str(tmp_path / "r")
    cfg = TrainConfig(model="tiny", epochs=1, batch_size=64, lr=0.05, progress="none", plots=False,
                      tensorboard=False, out_dir=out, threads=1)
    fit(cfg, model=job.tiny_net(), train_data=train, test_data=test)
    r = fit(cfg.replace(epochs=2), model=job.tiny_net(), train_data=train, test_data=test, resume=out)
    assert [row["epoch"] for row in r.history] == [1, 2]
    assert load_checkpoint(out, prefer="last").meta["global_step"] == 16  # 2 x 512 / 64
