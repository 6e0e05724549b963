"""TrainConfig (YAML + overrides), learning-rate schedules, recipes."""

import math

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.train import RECIPES, TrainConfig, fit, get_recipe
from cnnlab.train.optim import lr_factor


def test_yaml_round_trip_and_precedence(tmp_path):
    cfg = TrainConfig(model="resnet20", lr=0.1, milestones="3,6", schedule="multistep", betas=(0.8, 0.9))
    assert cfg.milestones == [3, 6] and cfg.betas == [0.8, 0.9]
    cfg.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == cfg
    (tmp_path / "o.yaml").write_text("lr: 0.5\nepochs: 3\n")
    merged = TrainConfig.from_yaml(tmp_path / "o.yaml", base=cfg)
    assert (merged.model, merged.lr, merged.epochs) == ("resnet20", 0.5, 3)


def test_config_errors_name_the_problem(tmp_path):
    (tmp_path / "bad.yaml").write_text("lrr: 0.1\n")
    with pytest.raises(ConfigError, match="unknown training option 'lrr' \\(did you mean lr\\?\\)"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.from_yaml(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("lr: [0.1\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        TrainConfig.from_yaml(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "none.yaml")
    for bad in ({"epochs": 0}, {"lr": -1.0}, {"schedule": "exp"}, {"schedule": "multistep"},
                {"label_smoothing": 1.0}, {"tta": "rotate"}, {"batch_size": 2.5}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_step_schedule_is_the_seeds_steplr():
    """schedule=step with step_size=7, gamma=0.1 reproduces torch's StepLR(7, 0.1) epoch by epoch."""
    cfg = TrainConfig(lr=0.001, schedule="step", step_size=7, gamma=0.1, epochs=25)
    f = lr_factor(cfg, steps_per_epoch=10)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.001)
    ref = torch.optim.lr_scheduler.StepLR(opt, 7, 0.1)
    for epoch in range(25):
        for step in range(epoch * 10, epoch * 10 + 10):
            assert 0.001 * f(step) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()


def test_other_schedules():
    spe = 10
    multi = lr_factor(TrainConfig(schedule="multistep", milestones=[2, 4], gamma=0.5, epochs=6), spe)
    assert [multi(e * spe) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cos = lr_factor(TrainConfig(lr=0.1, schedule="cosine", min_lr=0.001, epochs=5), spe)
    assert cos(0) == 1.0 and cos(25) == pytest.approx((1 + 0.01) / 2) and cos(50) == pytest.approx(0.01)
    one = lr_factor(TrainConfig(schedule="onecycle", epochs=10, onecycle_pct=0.3, onecycle_div=25), spe)
    assert one(0) == pytest.approx(1 / 25) and one(29) == pytest.approx(1.0)
    assert max(one(s) for s in range(100)) == pytest.approx(1.0) and one(99) < 1e-3
    warm = lr_factor(TrainConfig(schedule="cosine", warmup_epochs=1, epochs=5), spe)
    assert [warm(s) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert warm(10) == pytest.approx(1.0)
    # per-step: the torch reference OneCycleLR has the same peak position
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=100, pct_start=0.3,
                                              cycle_momentum=False, div_factor=25)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    ours = [one(s) for s in range(100)]
    assert ours == pytest.approx(lrs, rel=1e-6, abs=1e-9)  # identical to torch's OneCycleLR


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_and_trains_a_step(name, synth, tmp_path):
    cfg = get_recipe(name)
    data = synth[0]
    if cfg.task in ("segmentation", "detection"):
        from cnnlab.data import make_scenes

        data = make_scenes("train", 32, size=64, max_items=2, data_dir=tmp_path)
    short = cfg.replace(data="synthetic", epochs=1, train_subset=64, batch_size=min(cfg.batch_size, 32),
                        eval_test=False, progress="none", plots=False, tensorboard=False,
                        out_dir=str(tmp_path / "r"))
    r = fit(short, train_data=data)
    assert r.epochs_run == 1 and math.isfinite(r.history[0]["train_loss"])


def test_unknown_recipe():
    with pytest.raises(ConfigError, match="did you mean lenet5-fashion"):
        get_recipe("lenet5-fashon")


@pytest.mark.parametrize("yaml_text,message", [
    ("model: 5\n", "model must be a string, got 5"),
    ("data: [1]\n", "data must be a string"),
    ("out_dir: 3\n", "out_dir must be a path"),
    ("betas: abc\n", "betas must be a list of numbers"),
    ("milestones: [a, 2]\n", "milestones must be a list of integers"),
    ("milestones: [1.5]\n", "milestones must be a list of integers"),
])
def test_yaml_values_of_the_wrong_type_are_config_errors(tmp_path, yaml_text, message):
    (tmp_path / "c.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_yaml(tmp_path / "c.yaml")


def test_to_yaml_is_atomic_and_accepts_path_dirs(tmp_path, monkeypatch):
    cfg = TrainConfig(data_dir=tmp_path, out_dir=tmp_path / "run")
    assert cfg.data_dir == str(tmp_path) and cfg.out_dir == str(tmp_path / "run")
    target = tmp_path / "c.yaml"
    target.write_text("old\n")
    import yaml

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)  # the write fails half-way
    with pytest.raises(OSError, match="disk full"):
        cfg.to_yaml(target)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # no temp file left behind
    monkeypatch.undo()
    cfg.to_yaml(target)
    assert yaml.safe_load(target.read_text())["out_dir"] == str(tmp_path / "run")
