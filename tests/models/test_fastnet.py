"""FastNet (cnnlab's fast 28x28 design): layer parameter counts, stage shapes, multiply-adds."""

import pytest
import torch
import torch.nn.functional as F
from helpers import n_params

import cnnlab
from cnnlab.models.fastnet import FastNet, PoolBlock, WhitenedStem


def conv_bn(cin: int, cout: int) -> int:
    """3x3 conv without bias + BN (weight, bias)."""
    return 9 * cin * cout + 2 * cout


@pytest.mark.parametrize("name, widths", [("fastnet", (32, 64, 128)), ("fastnet_s", (24, 48, 96))])
def test_layer_parameter_counts(name, widths):
    model = cnnlab.create_model(name, num_classes=10, in_chans=1, img_size=28)
    w0, w1, w2 = widths
    assert n_params(model.stem) == conv_bn(1, w0)
    assert n_params(model.blocks[0]) == conv_bn(w0, w1) + conv_bn(w1, w1)
    assert n_params(model.blocks[1]) == conv_bn(w1, w2) + conv_bn(w2, w2)
    assert n_params(model.fc) == w2 * 10 + 10
    assert n_params(model) == conv_bn(1, w0) + conv_bn(w0, w1) + conv_bn(w1, w1) + conv_bn(w1, w2) \
        + conv_bn(w2, w2) + w2 * 10 + 10


def test_widths_can_be_overridden_for_architecture_sweeps():
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, widths=[32, 96, 192])
    assert [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == [32, 96, 96, 192, 192]
    assert n_params(model) == conv_bn(1, 32) + conv_bn(32, 96) + conv_bn(96, 96) + conv_bn(96, 192) \
        + conv_bn(192, 192) + 192 * 10 + 10


def test_fashion_fast_model_sizes():
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, img_size=28)
    assert n_params(model) == 278_890
    assert model.num_features == 128


def test_stage_shapes_at_28x28():
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, img_size=28).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.inference_mode():
        s = model.stem(x)
        b1 = model.blocks[0](s)
        b2 = model.blocks[1](b1)
        assert s.shape == (2, 32, 14, 14)  # conv + 2x2 pool
        assert b1.shape == (2, 64, 7, 7)
        assert b2.shape == (2, 128, 4, 4)  # ceil_mode: 7 -> 4
        assert torch.equal(model.forward_features(x), b2)
        assert model.forward_head(b2, pre_logits=True).shape == (2, 128)
        assert model(x).shape == (2, 10)


def test_multiply_adds_at_28x28():
    """11.6 M MACs for fastnet at 1x28x28 (the cost figure quoted in the module docstring)."""
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, img_size=28).eval()
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out[0].numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups
        elif isinstance(mod, torch.nn.Linear):
            total += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.inference_mode():
        model(torch.zeros(1, 1, 28, 28))
    for h in handles:
        h.remove()
    assert total == 11_618_048


def test_pool_block_pools_after_the_first_conv():
    block = PoolBlock(8, 16)
    out = block(torch.randn(2, 8, 14, 14))
    assert out.shape == (2, 16, 7, 7)
    assert (out >= 0).all()  # ends with ReLU


def test_logit_scale_multiplies_the_classifier_output():
    model = FastNet((8, 16, 32), num_classes=5, in_chans=1, logit_scale=0.5).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.inference_mode():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(model(x), 0.5 * model.fc(feats))


def test_any_input_size_works():
    assert cnnlab.models.get_model_info("fastnet").min_size == 1
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, img_size=5)
    assert model(torch.randn(2, 1, 5, 5)).shape == (2, 10)


def test_stride2_stem_is_one_4x4_stride_2_conv_without_the_full_resolution_map():
    """stem='stride2': a 4x4 stride-2 pad-1 conv replaces conv3x3 + max-pool:
    512 instead of 288 stem weights, the same 14x14 map, 11.49 M instead of 11.62 M MACs."""
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, img_size=28, stem="stride2").eval()
    assert n_params(model) == 278_890 - 9 * 32 + 16 * 32
    assert model.stem.conv.kernel_size == (4, 4) and model.stem.conv.stride == (2, 2)
    assert isinstance(model.stem.pool, torch.nn.Identity)
    x = torch.randn(2, 1, 28, 28)
    with torch.inference_mode():
        assert model.stem(x).shape == (2, 32, 14, 14)
        assert model(x).shape == (2, 10)
    assert cnnlab.count_macs(model, (1, 28, 28)) == 11_618_048 - 28 * 28 * 9 * 32 + 14 * 14 * 16 * 32
    with pytest.raises(ValueError, match="stem='conv'"):
        FastNet(stem="conv")


def _fashion_batch(n: int = 2000) -> torch.Tensor:
    """Real Fashion-MNIST training images, normalised as training sees them (whitening needs real structure)."""
    from cnnlab.data import load_dataset
    from cnnlab.errors import DataError

    try:
        ds = load_dataset("fashion-mnist", "train")
    except DataError as e:  # `make test` installs it; a bare checkout may not have it
        pytest.skip(f"needs Fashion-MNIST: {e}")
    return (ds.images[:n].float() / 255 - ds.mean[0]) / ds.std[0]


def test_whitened_stem_outputs_whitened_patches():
    """stem='whitened' (airbench): on the patches it was fitted to, the first 16 filters' responses are
    uncorrelated with variance lambda / (lambda + eps) (~1); the other 16 are their negatives."""
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, stem="whitened")
    stem = model.stem
    assert isinstance(stem, WhitenedStem) and stem.conv.kernel_size == (4, 4) and stem.conv.stride == (2, 2)
    assert not stem.conv.weight.requires_grad and float(stem.whitened) == 0.0
    x = _fashion_batch()
    model.init_from_data(x)
    assert float(stem.whitened) == 1.0
    w = stem.conv.weight.detach().double()
    assert torch.equal(w[16:], -w[:16])
    patches = F.unfold(x.double(), 4, stride=2, padding=1).transpose(1, 2).reshape(-1, 16)
    out = patches @ w[:16].reshape(16, 16).T
    cov = out.T @ out / len(out)
    lam = torch.linalg.eigvalsh(patches.T @ patches / len(patches)).flip(0)
    assert torch.allclose(cov, torch.diag(lam / (lam + stem.eps)), atol=1e-4)
    assert (cov.diagonal() > 0.5).all()  # every direction carries signal (largest eigenvalue first)
    with torch.inference_mode():
        assert model.eval()(x[:4]).shape == (4, 10)


def test_whitened_stem_refuses_to_train_uninitialised_and_rejects_impossible_widths():
    model = cnnlab.create_model("fastnet", num_classes=10, in_chans=1, stem="whitened").train()
    with pytest.raises(RuntimeError, match="init_from_data"):
        model(torch.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="at most 2 x 16"):
        FastNet(widths=(34, 64, 128), in_chans=1, stem="whitened")
    with pytest.raises(ValueError, match="even width"):
        FastNet(widths=(31, 64, 128), in_chans=1, stem="whitened")
    rgb = FastNet(widths=(32, 64, 128), in_chans=3, stem="whitened")  # the 16 largest of 48 components
    rgb.init_from_data(torch.randn(64, 3, 32, 32))
    w = rgb.stem.conv.weight.detach()
    assert w.shape == (32, 3, 4, 4) and torch.equal(w[16:], -w[:16])


def test_whitened_stem_is_deterministic_up_to_rounding():
    """Eigenvector signs are arbitrary in LAPACK; the stem fixes them, so the same images give the same filters
    in any thread count."""
    x = _fashion_batch(500)
    a, b = FastNet(in_chans=1, stem="whitened"), FastNet(in_chans=1, stem="whitened")
    a.init_from_data(x)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        b.init_from_data(x * 1.0000001)
    finally:
        torch.set_num_threads(threads)
    wa, wb = a.stem.conv.weight, b.stem.conv.weight
    assert torch.allclose(wa, wb, atol=1e-4)
    peak = wa[:16].flatten(1).abs().argmax(1)
    assert (wa[:16].flatten(1).gather(1, peak[:, None]) > 0).all()
