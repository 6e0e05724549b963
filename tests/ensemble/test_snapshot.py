"""Snapshot ensembles (Huang et al. 2017): the cyclic schedule, its snapshot checkpoints, and their ensemble."""

import json
import math

import pytest
import torch

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.ensemble import ensemble_runs, snapshot_paths
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.train import TrainConfig, fit, load_checkpoint
from cnnlab.train.optim import lr_factor


def test_cyclic_schedule_is_huang_eq2_restarted_m_times():
    """lr(t) = lr0/2 (cos(pi mod(t-1, T/M) / (T/M)) + 1), t = step + 1: a restart to the peak every T/M steps."""
    f = lr_factor(TrainConfig(lr=0.1, schedule="cyclic", cycles=3, epochs=6), steps_per_epoch=2)  # T/M = 4 steps
    one_cycle = [1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2]
    assert [f(s) for s in range(12)] == pytest.approx(one_cycle * 3)
    assert [s for s in range(12) if f(s) == 1.0] == [0, 4, 8]  # M = 3 restarts to the peak, at epochs 0, 2, 4
    # min_lr as for cosine: each cycle anneals from lr to min_lr, reached at the cycle's end (t = T/M)
    g = lr_factor(TrainConfig(lr=0.1, schedule="cyclic", cycles=2, epochs=4, min_lr=0.01), steps_per_epoch=250)
    assert g(499) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 499 / 500)) / 2)
    assert g(499) == pytest.approx(0.1, abs=1e-4) and g(999) == pytest.approx(0.1, abs=1e-4)
    assert min(g(s) for s in range(1000)) == g(499) == g(999) and g(500) == 1.0 and g(250) == pytest.approx(0.55)
    # one cycle is the cosine schedule
    cos = lr_factor(TrainConfig(lr=0.1, schedule="cosine", min_lr=0.01, epochs=4), steps_per_epoch=5)
    one = lr_factor(TrainConfig(lr=0.1, schedule="cyclic", min_lr=0.01, epochs=4), steps_per_epoch=5)
    assert [one(s) for s in range(20)] == [cos(s) for s in range(20)]


def test_cyclic_warmup_only_at_the_very_start():
    f = lr_factor(TrainConfig(schedule="cyclic", cycles=2, epochs=4, warmup_epochs=1), steps_per_epoch=4)
    plain = lr_factor(TrainConfig(schedule="cyclic", cycles=2, epochs=4), steps_per_epoch=4)
    assert [f(s) for s in range(4)] == pytest.approx([plain(s) * (s + 1) / 4 for s in range(4)])
    assert [f(s) for s in range(4, 16)] == [plain(s) for s in range(4, 16)]
    assert f(8) == 1.0  # the second cycle restarts at the full peak


@pytest.mark.parametrize("kw,message", [
    (dict(schedule="cyclic", cycles=0), "cycles must be an integer >= 1, got 0"),
    (dict(schedule="cyclic", cycles=2.5), "cycles must be an integer >= 1"),
    (dict(schedule="cyclic", cycles=3, epochs=10), "epochs to be a multiple of cycles.*epochs=10, cycles=3"),
    (dict(schedule="cyclic", cycles=5, epochs=10, warmup_epochs=2), "warmup_epochs < epochs/cycles"),
    (dict(schedule="cosine", cycles=5), "cycles=5 needs schedule=cyclic"),
])
def test_cyclic_config_errors(kw, message):
    with pytest.raises(ConfigError, match=message) as e:
        TrainConfig(**kw)
    assert "\n" not in str(e.value)
    assert TrainConfig(schedule="cyclic", cycles=5, epochs=10, warmup_epochs=1.5).cycles == 5


@pytest.fixture(scope="module")
def cyclic_run(tmp_path_factory):
    """LeNet-5 (modern) on 256 synthetic images, 2 cycles x 2 epochs (8 optimizer steps per epoch)."""
    out = tmp_path_factory.mktemp("cyc") / "snap"
    train = load_dataset("synthetic", "train", n_train=256, n_test=128)
    test = load_dataset("synthetic", "test", n_train=256, n_test=128)
    cfg = TrainConfig(model="lenet5_modern", data="synthetic", epochs=4, batch_size=32, optimizer="adam", lr=3e-3,
                      schedule="cyclic", cycles=2, threads=1, progress="none", plots=False,
                      tensorboard=False, out_dir=str(out))
    return fit(cfg, train_data=train, test_data=test)


def test_cyclic_fit_saves_one_snapshot_per_cycle(cyclic_run):
    run_dir = cyclic_run.run_dir
    assert sorted(p.name for p in run_dir.glob("snapshot-*.safetensors")) == ["snapshot-1.safetensors",
                                                                              "snapshot-2.safetensors"]
    assert [row["lr"] for row in cyclic_run.history] == pytest.approx([1.5e-3, 3e-3, 1.5e-3, 3e-3])  # restarts
    s1, s2, last = (load_checkpoint(run_dir / f"{n}.safetensors") for n in ("snapshot-1", "snapshot-2", "last"))
    assert (s1.meta["epoch"], s2.meta["epoch"]) == (2, 4)  # the ends of the cycles
    assert any(not torch.equal(a, s2.model_state[k]) for k, a in s1.model_state.items())
    assert all(torch.equal(a, last.model_state[k]) for k, a in s2.model_state.items())
    assert not list(run_dir.glob("*.tmp*"))  # written atomically like best/last


def test_no_snapshots_without_the_cyclic_schedule(tmp_path):
    train = load_dataset("synthetic", "train", n_train=128, n_test=64)
    cfg = TrainConfig(model="lenet5", data="synthetic", epochs=1, batch_size=64, schedule="cosine", threads=1,
                      progress="none", plots=False, tensorboard=False, eval_test=False, out_dir=str(tmp_path / "r"))
    fit(cfg, train_data=train)
    assert (tmp_path / "r" / "last.safetensors").is_file() and not list((tmp_path / "r").glob("snapshot-*"))


def test_snapshot_paths_sorts_by_k_and_explains_a_run_without_snapshots(tmp_path):
    for name in ("snapshot-10", "snapshot-2", "snapshot-1", "snapshot-x", "snapshot-4-old", "last", "best"):
        (tmp_path / f"{name}.safetensors").touch()
    (tmp_path / "snapshot-3.safetensors.tmp").touch()
    assert [p.name for p in snapshot_paths(tmp_path)] == [f"snapshot-{k}.safetensors" for k in (1, 2, 10)]
    (tmp_path / "plain").mkdir()
    with pytest.raises(CheckpointError, match="has no snapshot-K.safetensors.*--schedule cyclic --cycles M"):
        snapshot_paths(tmp_path / "plain")
    with pytest.raises(CheckpointError, match="is not a run directory"):
        snapshot_paths(tmp_path / "last.safetensors")


def test_ensemble_snapshots_cli_end_to_end(cyclic_run, tmp_path, capsys):
    run_dir = str(cyclic_run.run_dir)
    assert main(["ensemble", run_dir, "--snapshots"]) == 0  # the compatibility listing
    assert "2 compatible members" in capsys.readouterr().out
    assert main(["ensemble", run_dir, "--snapshots", "--eval", "--json", "--plot", str(tmp_path / "p.png")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in result["members"]] == ["snap/snapshot-1", "snap/snapshot-2"]
    assert all(m["top1"] > 0.2 for m in result["members"])  # trained snapshots (chance: 0.1)
    mean_member = sum(m["top1"] for m in result["members"]) / 2
    assert result["top1"] > mean_member, (result["top1"], [m["top1"] for m in result["members"]])
    assert result["n"] == 500 and (tmp_path / "p.png").stat().st_size > 1000
    assert result["top1"] == ensemble_runs(snapshot_paths(run_dir)).top1  # the Python API, the same members
    assert main(["ensemble", run_dir, "--snapshots", "--eval", "--plot", str(tmp_path / "q.png")]) == 0
    assert "snap/snapshot-2" in capsys.readouterr().out
    (tmp_path / "plain").mkdir()
    assert main(["ensemble", str(tmp_path / "plain"), "--snapshots", "--eval"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no snapshot-K" in err[0] and "--schedule cyclic --cycles M" in err[0]
