"""Small real Fashion-MNIST subsets and a tiny, fast training configuration for the ensemble tests."""

import pytest
import torch

from cnnlab.data import load_dataset, stratified_split_indices
from cnnlab.ensemble import MemberData
from cnnlab.train import TrainConfig


def stratified_subset(ds, n: int, seed: int = 0):
    """``n`` images of ``ds`` in class proportion (seeded)."""
    _, idx = stratified_split_indices(ds.labels, val_fraction=n / len(ds), seed=seed)
    return ds.subset(idx)


@pytest.fixture(scope="session")
def fmnist():
    """1,000 training and 500 test images of the real Fashion-MNIST, stratified."""
    train = stratified_subset(load_dataset("fashion-mnist", "train"), 1000)
    test = stratified_subset(load_dataset("fashion-mnist", "test"), 500)
    return MemberData(train, test, "500-image stratified test subset")


@pytest.fixture(scope="session")
def tiny_cfg():
    """LeNet-5 (modern) with Adam for 2 epochs: ~70 % on the subsets above (majority class: 10 %)."""
    return TrainConfig(model="lenet5_modern", data="fashion-mnist", epochs=2, batch_size=64, optimizer="adam",
                       lr=3e-3, threads=1, progress="none", plots=False, tensorboard=False, seed=0)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (the CLI evaluations would otherwise take torch's default), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
