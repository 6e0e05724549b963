import pytest

from cnnlab.data import load_dataset


@pytest.fixture(scope="session")
def fmnist_train():
    """The real Fashion-MNIST training split (Debian's dataset-fashion-mnist files)."""
    return load_dataset("fashion-mnist", split="train")


@pytest.fixture(scope="session")
def fmnist_test():
    return load_dataset("fashion-mnist", split="test")
