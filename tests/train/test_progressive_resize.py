"""Progressive resizing (``train_sizes``; Howard's fast.ai DAWNBench 2018): smaller training inputs for
the first epochs, the full size for the rest and for every evaluation."""

import pytest

from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, fit


def test_size_schedule_by_epoch():
    cfg = TrainConfig(epochs=6, train_sizes="16:2,22:3")
    assert cfg.size_schedule() == [(16, 2), (22, 3)]
    assert [cfg.train_size_at(e) for e in range(6)] == [16, 16, 22, 22, 22, None]
    assert TrainConfig(epochs=3).train_size_at(0) is None


@pytest.mark.parametrize("text, message", [
    ("20", "SIZE:EPOCHS"), ("20:0", "SIZE:EPOCHS"), ("a:2", "SIZE:EPOCHS"),
    ("20:3", "leave at least the last one"), ("16:2,20:2", "covers 4 of the 3 epochs"),
])
def test_bad_size_schedules_are_one_line_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(epochs=3, train_sizes=text)


def test_training_sees_the_scheduled_sizes_and_evaluation_the_full_size(job, synth, tmp_path):
    train, test = synth
    net = job.tiny_net()
    seen = []  # (training?, input side) of every forward
    net.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].shape[-1])))
    cfg = TrainConfig(model="tiny", epochs=3, batch_size=256, train_sizes="20:2", out_dir=str(tmp_path),
                      progress="none", plots=False, tensorboard=False, lr=0.05)
    fit(cfg, model=net, train_data=train, test_data=test)
    train_sides = [side for training, side in seen if training]
    assert train_sides == [20, 20, 20, 20, 28, 28]  # 2 steps per epoch: epochs 1-2 at 20 px, epoch 3 at 28
    assert {side for training, side in seen if not training} == {28}


def test_progressive_resizing_is_for_classification(tmp_path):
    from cnnlab.train import get_recipe

    cfg = get_recipe("scenes-fcn8s").replace(epochs=2, train_sizes="64:1", out_dir=str(tmp_path),
                                             data="fashion-scenes:size=64,n_train=32,n_test=8")
    with pytest.raises(ConfigError, match="progressive resizing.*not segmentation"):
        fit(cfg)
