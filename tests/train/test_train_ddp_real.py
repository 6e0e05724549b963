"""Two-process DDP equals the single-process run; LeNet-5 on real Fashion-MNIST beats a linear model."""

from pathlib import Path

import pytest
import torch

from cnnlab.train import TrainConfig, fit, load_checkpoint

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def test_two_process_ddp_matches_single_process(job, synth, tmp_path):
    """Same global batch (64 = 2 x 32): DDP averages the two shards' gradients, which equals the
    gradient of the union batch, so without batch norm (per-process statistics) and augmentation
    (seeded per process) the runs agree to float rounding."""
    train, test = synth
    base = TrainConfig(model="tiny", epochs=2, batch_size=64, lr=0.05, momentum=0.9, weight_decay=1e-4,
                       schedule="cosine", progress="none", plots=False, tensorboard=False,
                       threads=1, seed=1)
    single = fit(base.replace(out_dir=str(tmp_path / "one")), model=job.tiny_net(batch_norm=False, dropout=0.0),
                 train_data=train, test_data=test)
    multi = fit(base.replace(out_dir=str(tmp_path / "two"), nproc=2),
                model=job.tiny_net(batch_norm=False, dropout=0.0), train_data=train, test_data=test)
    a, b = load_checkpoint(tmp_path / "one", prefer="last"), load_checkpoint(tmp_path / "two", prefer="last")
    assert b.meta["world_size"] == 2 and len(b.meta["rng"]) == 2
    for k, v in a.model_state.items():
        torch.testing.assert_close(b.model_state[k], v, rtol=1e-4, atol=1e-5)
    for ra, rb in zip(single.history, multi.history):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-4)
        assert rb["train_top1"] == pytest.approx(ra["train_top1"], abs=1 / 512 + 1e-9)
        assert rb["test_loss"] == pytest.approx(ra["test_loss"], rel=1e-4)  # all-reduced over shards
    assert multi.final["top1"] == pytest.approx(single.final["top1"], abs=1 / 128 + 1e-9)
    assert sum(map(sum, multi.final["confusion"])) == 128  # every test image counted once
    assert multi.model is not None and not (tmp_path / "two" / "tb").exists()


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.exists(), reason="needs Debian's dataset-fashion-mnist")
def test_lenet5_beats_a_linear_model_on_20k_real_fashion_mnist(tmp_path):
    """One epoch on a seeded 20k subset (Adam 3e-3, one-cycle, batch 16), evaluated on the full 10k test set;
    a 784->10 linear model trained under the same protocol is the baseline the CNN must beat.

    Measured on a 2-core CPU, 1 thread, seed 1: lenet5_modern 84.4 %, linear 82.9 %. (On 10k images the
    linear model wins, 82.1 % vs 81.0 %, and so does it over the faithful 1998 lenet5 -- 80.7 % on 20k --
    whose scaled tanh and tiny init learn too slowly for a short test.)"""
    from torch import nn

    from cnnlab.data import load_dataset

    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    common = dict(data="fashion-mnist", epochs=1, train_subset=20_000, batch_size=16, optimizer="adam", lr=3e-3,
                  schedule="onecycle", progress="none", plots=False, tensorboard=False, threads=1, seed=1)
    modern = fit(TrainConfig(model="lenet5_modern", out_dir=str(tmp_path / "m"), **common),
                 train_data=train, test_data=test)
    torch.manual_seed(1)
    linear = fit(TrainConfig(model="linear", out_dir=str(tmp_path / "l"), **common),
                 model=nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), train_data=train, test_data=test)
    assert modern.final["n"] == linear.final["n"] == 10_000
    assert linear.final["top1"] > 0.75  # the baseline itself trained
    assert modern.final["top1"] >= linear.final["top1"] + 0.01, (modern.final["top1"], linear.final["top1"])
