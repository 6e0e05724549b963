"""Checkpoints: safetensors + JSON, no pickle, round trip, clear errors for corrupt files."""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.errors import CheckpointError
from cnnlab.train import TrainConfig, fit, load_checkpoint
from cnnlab.train.checkpoint import get_rng_state, save_checkpoint, set_rng_state


@pytest.fixture(scope="module")
def trained(job, synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "run"
    cfg = TrainConfig(model="tiny", epochs=1, batch_size=64, optimizer="adam", lr=1e-3, progress="none",
                      plots=False, tensorboard=False, out_dir=str(out), threads=1)
    return fit(cfg, model=job.tiny_net(), train_data=synth[0], test_data=synth[1]), out


def test_round_trip(job, trained):
    result, out = trained
    ck = load_checkpoint(out, prefer="last")
    raw = (out / "last.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])  # a plain safetensors header: JSON, no pickle anywhere
    assert header["__metadata__"]["format"] == "cnnlab-checkpoint"
    meta = json.loads(header["__metadata__"]["meta"])
    assert meta["classes"] == [f"angle{18 * k}" for k in range(10)]
    assert meta["epoch"] == 1 and meta["global_step"] == 8 and meta["config"]["optimizer"] == "adam"
    assert isinstance(meta["rng"][0]["torch"], list)
    sidecar = json.loads((out / "last.json").read_text())
    assert sidecar["global_step"] == 8 and "rng" not in sidecar
    # weights, optimizer moments and step counts come back exactly
    net = ck.build_model(model=job.tiny_net(seed=5))
    for k, v in result.model.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    opt = torch.optim.Adam(job.tiny_net().parameters(), lr=1e-3)
    opt.load_state_dict(ck.optimizer_state)
    assert float(opt.state_dict()["state"][0]["step"]) == 8.0
    assert ck.config == TrainConfig.from_dict(meta["config"])


def test_registry_model_checkpoint_rebuilds_itself(synth, tmp_path):
    cfg = TrainConfig(model="lenet5_modern", epochs=1, batch_size=128, progress="none", plots=False,
                      tensorboard=False, out_dir=str(tmp_path / "run"), threads=1)
    r = fit(cfg, train_data=synth[0], test_data=synth[1])
    model = load_checkpoint(tmp_path / "run").build_model()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), r.model.eval()(x))


def test_rng_state_round_trip():
    state = json.loads(json.dumps(get_rng_state()))
    a = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), a)


def test_corrupt_checkpoints_are_one_line_errors(trained, tmp_path):
    _, out = trained
    good = (out / "last.safetensors").read_bytes()
    cases = {
        "truncated.safetensors": good[: len(good) // 2],
        "garbage.safetensors": b"\x00\x01not a checkpoint" * 10,
        "empty.safetensors": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match="not a readable checkpoint") as e:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(e.value)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(CheckpointError, match="not a cnnlab checkpoint"):
        load_checkpoint(tmp_path / "bare.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)
    ck = load_checkpoint(out)
    from torch import nn

    with pytest.raises(CheckpointError, match="does not match the model"):
        ck.build_model(model=nn.Sequential(nn.Linear(3, 3)))
    with pytest.raises(CheckpointError, match="custom model"):
        ck.build_model()


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"x": 1}, {"w": torch.ones(2)})
    first = path.read_bytes()
    save_checkpoint(path, {"x": 2}, {"w": torch.zeros(2)})
    assert path.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.safetensors"]
