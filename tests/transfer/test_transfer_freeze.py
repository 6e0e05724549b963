"""Freezing does exactly what the mode says: parameters, gradients and BatchNorm running statistics."""

import pytest
import torch
from safetensors.torch import load_file
from transfer_helpers import IMG, synthetic

import cnnlab
from cnnlab.errors import ConfigError
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.transfer import finetune, freeze, param_groups


def _changed(before: dict, after: dict, prefix: str) -> dict[str, bool]:
    return {k: not torch.equal(before[k], after[k].cpu()) for k in before
            if (k == prefix or k.startswith(prefix + ".")) and before[k].dtype.is_floating_point}


def _run(r18_file, tmp_path, quick, **kw):
    before = load_file(r18_file)
    r = finetune("resnet18", weights=r18_file, train_data=synthetic(8, 0), test_data=synthetic(4, 1),
                 out_dir=str(tmp_path / "run"), **quick, **kw)
    return before, {k: v for k, v in r.model.state_dict().items()}, r


def test_feature_extract_trains_only_the_head_and_keeps_bn_statistics(r18_file, tmp_path, quick):
    before, after, r = _run(r18_file, tmp_path, quick, mode="feature-extract")
    assert r.freeze.trainable == ["fc"] and r.freeze.trainable_params == 512 * 2 + 2
    assert r.freeze.frozen_params == 11_176_512 and len(r.freeze.frozen_bn) == 20
    backbone = {k for k in before if not k.startswith("fc.")}
    moved = [k for k in backbone if not torch.equal(before[k], after[k])]
    assert moved == []  # weights *and* running_mean/var/num_batches_tracked of every frozen BN
    torch.manual_seed(0)  # the new head's initialisation (seed 0)
    initial = cnnlab.create_model("resnet18", num_classes=2, img_size=IMG, weights=r18_file).fc.weight
    assert after["fc.weight"].shape == (2, 512) and not torch.equal(after["fc.weight"], initial)
    assert [n for n, p in r.model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]


def test_fine_tune_with_unfreeze_trains_those_layers_and_their_bn_only(r18_file, tmp_path, quick):
    before, after, r = _run(r18_file, tmp_path, quick, mode="fine-tune", unfreeze="layer4", lr_backbone=1e-2)
    assert r.freeze.trainable == ["fc", "layer4"]
    layer4 = _changed(before, after, "layer4")
    assert layer4 and all(layer4.values())  # conv weights, BN affine and running statistics all learn
    assert "layer4.0.bn1.running_mean" in layer4
    for frozen in ("conv1", "bn1", "layer1", "layer2", "layer3"):
        assert not any(_changed(before, after, frozen).values()), frozen
    assert after["layer3.1.bn2.num_batches_tracked"] == before["layer3.1.bn2.num_batches_tracked"]
    assert after["layer4.1.bn2.num_batches_tracked"] == before["layer4.1.bn2.num_batches_tracked"] + 2
    # discriminative learning rates reached the optimizer: backbone 1e-2, head the recipe's 1e-3
    lrs = {g["lr"] for g in load_checkpoint(r.run_dir, prefer="last").meta["optimizer"]["param_groups"]}
    assert lrs == {1e-2, 1e-3}


def test_fine_tune_everything_moves_every_bn(r18_file, tmp_path, quick):
    before, after, r = _run(r18_file, tmp_path, quick, mode="fine-tune")
    assert r.freeze.trainable == ["*"] and r.freeze.frozen_params == 0 and r.freeze.frozen_bn == []
    stats = [k for k in before if k.endswith("running_var")]
    assert len(stats) == 20 and all(not torch.equal(before[k], after[k]) for k in stats)


def test_frozen_bn_stays_in_eval_mode_under_train_and_gradients_stop_at_the_head():
    torch.manual_seed(0)
    model = cnnlab.create_model("resnet18", num_classes=3, img_size=IMG)
    report = freeze(model, "feature-extract")
    model.train()
    x = torch.randn(2, 3, IMG, IMG)
    stats = model.layer2[0].bn1.running_mean.clone()
    model(x).sum().backward()
    assert torch.equal(model.layer2[0].bn1.running_mean, stats) and not model.layer2[0].bn1.training
    assert model.fc.weight.grad is not None
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("fc."))
    # frozen BN uses its running statistics: the output equals eval mode's
    with torch.no_grad():
        model.train()
        train_out = model(x)
        model.eval()
        torch.testing.assert_close(train_out, model(x))
    report.remove()
    model.train()
    model(x)
    assert not torch.equal(model.layer2[0].bn1.running_mean, stats)  # hooks removed: BN learns again


def test_param_groups_and_errors():
    model = cnnlab.create_model("resnet18", num_classes=3, img_size=IMG)
    freeze(model, "fine-tune", ["layer3", "layer4"])
    groups = param_groups(model, lr=1e-3, lr_backbone=1e-5)
    assert [g["lr"] for g in groups] == [1e-5, 1e-3]
    assert sum(p.numel() for p in groups[1]["params"]) == 512 * 3 + 3
    with pytest.raises(ConfigError, match="has no module 'layer5'.*top-level modules: conv1, bn1"):
        freeze(model, "fine-tune", ["layer5"])
    with pytest.raises(ConfigError, match="feature-extract trains only the head"):
        freeze(model, "feature-extract", ["layer4"])
    with pytest.raises(ConfigError, match="mode='linear' is not one of feature-extract, fine-tune"):
        freeze(model, "linear")
