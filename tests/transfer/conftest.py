"""Shared fixtures: a "pretrained" ResNet-18 file with real BN statistics, tiny array data, a real-photo folder."""

import pytest
import torch
from safetensors.torch import save_file
from transfer_helpers import IMG

import cnnlab


@pytest.fixture(scope="session")
def r18_file(tmp_path_factory):
    """ResNet-18 weights whose BN running statistics are not the init values (so freezing them is visible)."""
    torch.manual_seed(123)
    model = cnnlab.create_model("resnet18")
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, IMG, IMG))
    path = tmp_path_factory.mktemp("weights") / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return str(path)


@pytest.fixture
def quick():
    """Training options that keep a run to a few steps and write nothing optional."""
    return dict(epochs=1, batch_size=4, img_size=IMG, progress="none", plots=False, tensorboard=False)
