"""fit(): each optimizer and regularizer changes training the way the lectures say; hooks; NaN stop."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models import AuxOutputs
from cnnlab.train import NonFiniteLossError, TrainConfig, evaluate, fit, load_checkpoint
from cnnlab.train.metrics import predict_probs, tta_views


def cfg(tmp_path, **kw):
    base = dict(model="tiny", epochs=2, batch_size=32, lr=0.05, momentum=0.9, progress="none", plots=False,
                tensorboard=False, out_dir=str(tmp_path / "run"), threads=1, eval_test=True)
    return TrainConfig(**{**base, **kw})


def weights(model):
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if p.ndim > 1])


def run(job, synth, tmp_path, bn=False, net_dropout=0.0, **kw):
    train, test = synth
    return fit(cfg(tmp_path, **kw), model=job.tiny_net(batch_norm=bn, dropout=net_dropout), train_data=train,
               test_data=test)


def test_training_learns_synthetic(job, synth, tmp_path):
    r = run(job, synth, tmp_path, epochs=3, optimizer="adam", lr=3e-3, schedule="cosine")
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert r.final["top1"] > 0.5  # chance is 0.1
    assert set(r.final) >= {"loss", "top1", "top5", "per_class", "confusion"}
    assert sum(map(sum, r.final["confusion"])) == 128 and len(r.final["per_class"]) == 10


@pytest.mark.parametrize("opt,extra", [("sgd", {"momentum": 0.0}), ("sgd", {"momentum": 0.9}),
                                       ("sgd", {"momentum": 0.9, "nesterov": True}), ("adagrad", {"lr": 0.05}),
                                       ("rmsprop", {"lr": 1e-3, "momentum": 0.0}), ("adam", {"lr": 3e-3}),
                                       ("adamw", {"lr": 3e-3, "weight_decay": 0.01})])
def test_every_optimizer_lowers_the_loss(job, synth, tmp_path, opt, extra):
    r = run(job, synth, tmp_path, epochs=2, optimizer=opt, eval_test=False,
            **{"lr": 0.05, "momentum": 0.0, **extra})
    first, last = r.history[0]["train_loss"], r.history[-1]["train_loss"]
    assert last < first and last < math.log(10)


def test_momentum_and_nesterov_change_the_trajectory(job, synth, tmp_path):
    w = [weights(run(job, synth, tmp_path, epochs=1, eval_test=False, momentum=m, nesterov=n).model)
         for m, n in ((0.0, False), (0.9, False), (0.9, True))]
    assert not torch.allclose(w[0], w[1]) and not torch.allclose(w[1], w[2])


def test_weight_decay_lowers_the_weight_norm(job, synth, tmp_path):
    plain = run(job, synth, tmp_path, epochs=2, eval_test=False)
    decayed = run(job, synth, tmp_path, epochs=2, eval_test=False, weight_decay=0.05)
    assert weights(decayed.model).norm() < 0.9 * weights(plain.model).norm()


def test_no_decay_norm_bias_keeps_biases_out(job, synth, tmp_path):
    from cnnlab.train.optim import build_param_groups

    net = job.tiny_net(batch_norm=True)
    groups = build_param_groups(net, cfg(tmp_path, weight_decay=0.1, no_decay_norm_bias=True))
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {n for n, p in net.named_parameters() if id(p) in decayed}
    assert names == {"0.weight", "4.weight", "9.weight"}  # conv/linear weights only, not BN or biases


def test_l1_raises_sparsity(job, synth, tmp_path):
    def sparsity(m):
        w = weights(m)
        return (w.abs() < 1e-3).float().mean().item()

    plain = run(job, synth, tmp_path, epochs=2, eval_test=False, momentum=0.0, lr=0.05)
    l1 = run(job, synth, tmp_path, epochs=2, eval_test=False, momentum=0.0, lr=0.05, l1=2e-3)
    assert sparsity(l1.model) > sparsity(plain.model) + 0.02
    assert weights(l1.model).abs().sum() < weights(plain.model).abs().sum()


def test_label_smoothing_lowers_the_max_softmax(job, synth, tmp_path):
    train, test = synth

    def mean_max_prob(result):
        with torch.no_grad():
            x = (test.images.float() / 255 - test.mean[0]) / test.std[0]
            return F.softmax(result.model.eval()(x), 1).max(1).values.mean().item()

    sharp = run(job, synth, tmp_path, epochs=3, lr=0.1)
    smooth = run(job, synth, tmp_path, epochs=3, lr=0.1, label_smoothing=0.3)
    assert mean_max_prob(smooth) < mean_max_prob(sharp) - 0.05


def test_dropout_override_sets_every_layer(job, synth, tmp_path):
    r = run(job, synth, tmp_path, epochs=1, eval_test=False, net_dropout=0.1, dropout=0.4)
    assert [m.p for m in r.model.modules() if isinstance(m, nn.Dropout)] == [0.4]
    with pytest.raises(ConfigError, match="no dropout layers"):
        fit(cfg(tmp_path, dropout=0.3), model=nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
            train_data=synth[0])


def test_input_noise_and_augmentation_change_training(job, synth, tmp_path):
    base = weights(run(job, synth, tmp_path, epochs=1, eval_test=False).model)
    noisy = weights(run(job, synth, tmp_path, epochs=1, eval_test=False, input_noise=0.5).model)
    aug = weights(run(job, synth, tmp_path, epochs=1, eval_test=False, augment="crop:2,flip").model)
    assert not torch.allclose(base, noisy) and not torch.allclose(base, aug)


def test_gradient_accumulation_equals_the_big_batch(job, synth, tmp_path):
    """Without batch norm, 2 x 32 accumulated == one batch of 64 (same data order: the loader's
    permutation depends on the seed only, and batch k of size 64 = micro-batches 2k, 2k+1)."""
    big = run(job, synth, tmp_path, epochs=1, eval_test=False, batch_size=64)
    acc = run(job, synth, tmp_path, epochs=1, eval_test=False, batch_size=32, accum_steps=2)
    torch.testing.assert_close(weights(acc.model), weights(big.model), rtol=1e-5, atol=1e-6)


def test_channels_last_and_bf16_autocast_paths_train(job, synth, tmp_path):
    """The speed options reach the model: a probe on the second conv sees channels-last bf16 activations in
    training (plain float32 NCHW without the options), the weights stay float32, and the loss falls."""
    def probed_run(**kw):
        net, seen = job.tiny_net(batch_norm=True, dropout=0.0), []

        def probe(m, inp, out):
            if m.training:
                seen.append((inp[0].is_contiguous(memory_format=torch.channels_last), out.dtype))

        net[4].register_forward_hook(probe)  # 8 input channels: NCHW and NHWC strides differ
        r = fit(cfg(tmp_path, **{"epochs": 2, "optimizer": "adam", "lr": 3e-3, "eval_test": False, **kw}), model=net,
                train_data=synth[0])
        return r, set(seen)

    r, seen = probed_run(channels_last=True, amp="bf16")
    assert seen == {(True, torch.bfloat16)}
    assert all(p.dtype == torch.float32 for p in r.model.parameters())
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert probed_run(epochs=1)[1] == {(False, torch.float32)}


def test_early_stopping_restores_the_best(job, synth, tmp_path):
    # wreck the weights after every epoch from the second on: validation stops improving
    class Blowup:
        def on_epoch_end(self, state, row):
            if row["epoch"] >= 2:
                with torch.no_grad():
                    for p in state.model.parameters():
                        p.add_(torch.randn_like(p) * 2.0)

    train, test = synth
    r = fit(cfg(tmp_path, epochs=8, lr=0.1, val_fraction=0.25, early_stop_patience=2, schedule="constant"),
            model=job.tiny_net(batch_norm=False, dropout=0.0), train_data=train, test_data=test,
            callbacks=[Blowup()])
    assert r.stopped_early and len(r.history) < 8
    best = r.best
    assert best["metric"] == "val_top1"
    assert best["value"] == max(row["val_top1"] for row in r.history)
    v = evaluate(r.model, test)
    assert v["top1"] == pytest.approx(r.final["top1"])  # the returned model is the restored best
    assert r.history[best["epoch"] - 1]["test_top1"] == pytest.approx(r.final["top1"])


def test_ema_is_evaluated_and_checkpointed(job, synth, tmp_path):
    r = run(job, synth, tmp_path, bn=True, epochs=1, ema_decay=0.9)
    ck = load_checkpoint(tmp_path / "run", prefer="last")
    assert ck.ema_state is not None and ck.meta["eval_weights"] == "ema"
    live = ck.model_state["0.weight"]
    assert not torch.equal(ck.eval_state()["0.weight"], live)
    assert torch.equal(r.model.state_dict()["0.weight"], ck.eval_state()["0.weight"])


def test_aux_outputs_add_weighted_aux_loss(synth, tmp_path):
    class AuxNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU())
            self.head, self.aux = nn.Linear(32, 10), nn.Linear(32, 10)

        def forward(self, x):
            h = self.body(x)
            return AuxOutputs(self.head(h), (self.aux(h),), 0.3) if self.training else self.head(h)

    torch.manual_seed(0)
    net = AuxNet()
    r = fit(cfg(tmp_path, epochs=1), model=net, train_data=synth[0], test_data=synth[1])
    # the aux head was trained too (its gradient comes only from the aux term)
    torch.manual_seed(0)
    fresh = AuxNet()
    assert not torch.equal(fresh.aux.weight, r.model.aux.weight)
    from cnnlab.train.engine import compute_loss

    out = AuxOutputs(torch.randn(4, 10), (torch.randn(4, 10),), 0.3)
    y = torch.tensor([1, 2, 3, 4])
    loss, logits = compute_loss(out, y, nn.CrossEntropyLoss())
    expected = F.cross_entropy(out.logits, y) + 0.3 * F.cross_entropy(out.aux[0], y)
    assert torch.allclose(loss, expected) and logits is out.logits


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(job, synth, tmp_path):
    calls = {"n": 0}

    def poisoned(output, target):
        calls["n"] += 1
        loss = F.cross_entropy(output, target)
        return loss * float("nan") if calls["n"] == 7 else loss

    train, _ = synth
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 1, step 7.*last good checkpoint"):
        fit(cfg(tmp_path, epochs=2, ckpt_every_steps=3, eval_test=False), model=job.tiny_net(),
            train_data=train, loss_fn=poisoned)
    ck = load_checkpoint(tmp_path / "run", prefer="last")
    assert ck.meta["global_step"] == 6
    assert all(torch.isfinite(t).all() for t in ck.model_state.values() if t.is_floating_point())


def test_sample_weights_focus_the_loss(job, synth, tmp_path):
    train, _ = synth
    w = (train.labels == 3).float() + 1e-3  # nearly all weight on class 3
    r = fit(cfg(tmp_path, epochs=2, eval_test=False, lr=0.1), model=job.tiny_net(batch_norm=False, dropout=0.0),
            train_data=train, sample_weights=w)
    with torch.no_grad():
        x = (train.images.float() / 255 - train.mean[0]) / train.std[0]
        pred = r.model.eval()(x).argmax(1)
    assert (pred == 3).float().mean() > 0.8


def test_param_groups_hook_keeps_per_group_lr(job, synth, tmp_path):
    net = job.tiny_net(batch_norm=False, dropout=0.0)
    frozen = list(net[0].parameters())
    for p in frozen:
        p.requires_grad_(False)
    before = [p.clone() for p in frozen]
    groups = [{"params": list(net[3].parameters()), "lr": 0.001}, {"params": list(net[8].parameters())}]
    r = fit(cfg(tmp_path, epochs=1, eval_test=False, schedule="step"), model=net, train_data=synth[0],
            param_groups=groups)
    assert all(torch.equal(a, b) for a, b in zip(before, frozen))
    lrs = sorted({g["lr"] for g in load_checkpoint(r.run_dir).meta["optimizer"]["param_groups"]})
    assert lrs == [0.001, 0.05]


def test_tta_averages_softmax_over_views(job):
    """flip,crop = the image, its mirror and four +-2 px shifts (28 // 14) with edge replication, built here
    by explicit index arithmetic, not with the tta_views helper under test."""
    net = job.tiny_net().eval()
    x = torch.randn(3, 1, 28, 28)

    def shift(sy, sx):  # out[i, j] = x[clamp(i - sy), clamp(j - sx)]
        iy, ix = (torch.arange(28) - sy).clamp(0, 27), (torch.arange(28) - sx).clamp(0, 27)
        return x[..., iy[:, None], ix[None, :]]

    views = [x, x.flip(-1)] + [shift(sy, sx) for sy, sx in ((2, 2), (2, -2), (-2, 2), (-2, -2))]
    with torch.no_grad():
        expected = torch.stack([F.softmax(net(v), 1) for v in views]).mean(0)
        torch.testing.assert_close(predict_probs(net, x, "flip,crop"), expected)
        flip = torch.stack([F.softmax(net(v), 1) for v in views[:2]]).mean(0)
        torch.testing.assert_close(predict_probs(net, x, "flip"), flip)
    assert len(tta_views(x, "flip,crop")) == 6


def test_shift_tta_is_the_one_pixel_translations_of_the_image_and_its_mirror(job):
    """flip,shift = the image, its mirror, and each of them moved one pixel up, down, left and right
    (edge replicated), built here by index arithmetic."""
    net = job.tiny_net().eval()
    x = torch.randn(2, 1, 28, 28)

    def shift(img, sy, sx):
        iy, ix = (torch.arange(28) - sy).clamp(0, 27), (torch.arange(28) - sx).clamp(0, 27)
        return img[..., iy[:, None], ix[None, :]]

    one = ((1, 0), (-1, 0), (0, 1), (0, -1))
    views = [x, x.flip(-1)] + [shift(v, sy, sx) for v in (x, x.flip(-1)) for sy, sx in one]
    with torch.no_grad():
        expected = torch.stack([F.softmax(net(v), 1) for v in views]).mean(0)
        torch.testing.assert_close(predict_probs(net, x, "flip,shift"), expected)
        only = torch.stack([F.softmax(net(v), 1) for v in [x] + views[2:6]]).mean(0)
        torch.testing.assert_close(predict_probs(net, x, "shift"), only)
    assert len(tta_views(x, "flip,shift")) == 10


@pytest.mark.parametrize("text, mode", [("crop,flip", "flip,crop"), ("shift,flip", "flip,shift"), ("flip", "flip")])
def test_tta_modes_are_accepted_in_any_order(text, mode):
    from cnnlab.errors import ConfigError
    from cnnlab.train.config import canonical_tta

    assert canonical_tta(text) == mode
    with pytest.raises(ConfigError, match="not one of none, flip"):
        canonical_tta("flip,rotate")


def test_evaluate_matches_a_hand_count(job, synth):
    _, test = synth
    net = job.tiny_net().eval()
    m = evaluate(net, test, batch_size=50)
    with torch.no_grad():
        x = (test.images.float() / 255 - test.mean[0]) / test.std[0]
        logits = net(x)
    pred = logits.argmax(1)
    assert m["top1"] == pytest.approx((pred == test.labels).float().mean().item())
    top5 = logits.topk(5, 1).indices.eq(test.labels[:, None]).any(1).float().mean().item()
    assert m["top5"] == pytest.approx(top5)
    assert m["loss"] == pytest.approx(F.cross_entropy(logits, test.labels).item(), rel=1e-4)
    cls = 4
    mask = test.labels == cls
    assert m["per_class"][cls] == pytest.approx((pred[mask] == cls).float().mean().item())
    assert m["confusion"][cls][int(pred[mask][0])] >= 1


def test_batch_norm_switch_picks_the_family_variant():
    from cnnlab.train.task import ClassificationTask, DataSpec

    def bn_layers(model):
        return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())

    spec = DataSpec(num_classes=10, in_chans=1, img_size=32, data_size=(32, 32), classes=list("0123456789"),
                    mean=[0.5], std=[0.5])
    on, on_name, _ = ClassificationTask().build_model(TrainConfig(model="vgg11", batch_norm=True), spec)
    off, off_name, _ = ClassificationTask().build_model(TrainConfig(model="vgg11_bn", batch_norm=False), spec)
    assert bn_layers(on) == 8 and bn_layers(off) == 0
    assert (on_name, off_name) == ("vgg11_bn", "vgg11")


def test_bad_settings_are_config_errors(job, synth, tmp_path):
    with pytest.raises(ConfigError, match="nesterov"):
        TrainConfig(nesterov=True, momentum=0.0)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="validation split"):
        TrainConfig(early_stop_patience=3)
    with pytest.raises(ConfigError, match="cannot take 1x28x28"):
        fit(cfg(tmp_path), model=nn.Sequential(nn.Flatten(), nn.Linear(100, 10)), train_data=synth[0])
    with pytest.raises(ConfigError, match="does not accept the option 'batch_norm'"):
        fit(cfg(tmp_path, model="lenet5", batch_norm=False), train_data=synth[0])
    with pytest.raises(ConfigError, match=r"model fastnet: stem='x' is not one of pool, stride2"):
        fit(cfg(tmp_path, model="fastnet", model_kwargs={"stem": "x"}), train_data=synth[0])
    with pytest.raises(ConfigError, match="fp16 needs a CUDA"):
        fit(cfg(tmp_path, amp="fp16", device="cpu"), model=job.tiny_net(), train_data=synth[0])


def test_run_dir_that_cannot_be_created_is_a_config_error(job, synth, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the run directory"):
        fit(cfg(tmp_path, epochs=1, out_dir=str(tmp_path / "afile" / "run")), model=job.tiny_net(),
            train_data=synth[0])


def test_result_plots_and_csv_are_written_atomically(job, synth, tmp_path, monkeypatch):
    import os

    from cnnlab import _io
    from cnnlab.train import checkpoint, engine

    written = []
    real = _io.atomic_write

    def spy(path, data):
        written.append(os.path.basename(path))
        real(path, data)

    for module in (_io, checkpoint, engine):
        monkeypatch.setattr(module, "atomic_write", spy)
    fit(cfg(tmp_path, epochs=1, plots=True), model=job.tiny_net(), train_data=synth[0], test_data=synth[1])
    for name in ("config.yaml", "metrics.csv", "result.json", "curves.png", "confusion_matrix.png"):
        assert name in written, (name, written)
    run = tmp_path / "run"
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]


def test_fit_whitens_the_stem_from_the_training_images_and_keeps_it_frozen(synth, tmp_path):
    """A model with ``init_from_data`` (FastNet's whitened stem) gets the first training images, normalised as
    the loader does; the frozen filters do not move while the rest trains."""
    from cnnlab.models import create_model

    train, _ = synth
    model = create_model("fastnet_s", num_classes=10, in_chans=1, stem="whitened")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    r = fit(cfg(tmp_path, epochs=1, lr=0.1, eval_test=False), model=model, train_data=train)
    ref = create_model("fastnet_s", num_classes=10, in_chans=1, stem="whitened")
    x = (train.images.float() / 255 - torch.tensor(train.mean).view(1, -1, 1, 1)) \
        / torch.tensor(train.std).view(1, -1, 1, 1)
    ref.init_from_data(x)
    assert torch.allclose(model.stem.conv.weight, ref.stem.conv.weight, atol=1e-5)
    assert not torch.equal(model.stem.conv.weight, before["stem.conv.weight"])
    assert not torch.equal(model.blocks[0].conv1.weight, before["blocks.0.conv1.weight"])
    assert float(load_checkpoint(r.run_dir).model_state["stem.whitened"]) == 1.0
    # an already whitened stem (a loaded or trained model, e.g. fine-tuned on other data) is left as it is
    assert not model.needs_data_init
    kept = model.stem.conv.weight.detach().clone()
    fit(cfg(tmp_path, epochs=1, lr=0.1, eval_test=False, out_dir=str(tmp_path / "again")), model=model,
        train_data=train.subset(torch.arange(256, 512)))
    assert torch.equal(model.stem.conv.weight, kept)


def test_eval_every_evaluates_every_nth_and_the_last_epoch(job, synth, tmp_path):
    # eval_every=2 over 5 epochs: epochs 2, 4 and 5 are evaluated; the others have empty test columns, are
    # never the best epoch and the run's final metrics are the last epoch's
    r = run(job, synth, tmp_path, epochs=5, eval_every=2, optimizer="adam", lr=3e-3, plots=True)
    evaluated = [row["epoch"] for row in r.history if row["test_top1"] is not None]
    assert evaluated == [2, 4, 5] and all(row["test_loss"] is None for row in r.history if row["epoch"] in (1, 3))
    assert r.best["epoch"] in (2, 4, 5) and r.best["metric"] == "test_top1"
    assert r.final["top1"] == r.history[-1]["test_top1"]
    lines = (r.run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert lines[1].split(",")[header.index("test_top1")] == "" != lines[2].split(",")[header.index("test_top1")]
    assert (r.run_dir / "curves.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="eval_every"):
        TrainConfig(eval_every=0)


def test_early_stopping_counts_evaluated_epochs_only(job, synth, tmp_path):
    # lr 0: the validation score never improves; with eval_every=2 the first score is epoch 2 (the best), the
    # next at epoch 4 is the one bad epoch that patience 1 allows -> stop after epoch 4, not after epoch 3
    r = run(job, synth, tmp_path, epochs=8, eval_every=2, val_fraction=0.25, early_stop_patience=1, lr=0.0,
            momentum=0.0)
    assert [row["epoch"] for row in r.history] == [1, 2, 3, 4]
    assert r.best["epoch"] == 2 and r.best["metric"] == "val_top1"
