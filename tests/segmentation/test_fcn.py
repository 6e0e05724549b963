"""FCN-32s/16s/8s: registry entries, output shapes, bilinear upsampling, the skip fusion, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.analysis import inspect
from cnnlab.errors import ConfigError
from cnnlab.models import get_model_info
from cnnlab.segmentation import bilinear_kernel, bilinear_upsampler, init_from_vgg
from cnnlab.segmentation.fcn import FCN, FastNetBackbone

SEG = cnnlab.list_models(task="segmentation")


def test_registry_task_filter():
    paper = [f"fcn{s}s_{b}" for s in (8, 16, 32) for b in ("fastnet", "resnet18", "vgg16")]
    assert SEG == sorted(paper + ["fcn2s_fastnet", "fcn4s_fastnet"])
    cls = cnnlab.list_models(task="classification")
    det = cnnlab.list_models(task="detection")
    assert not set(SEG) & set(cls) and set(SEG) | set(cls) | set(det) == set(cnnlab.list_models())
    assert cnnlab.list_models("fcn8s*", task="segmentation") == ["fcn8s_fastnet", "fcn8s_resnet18", "fcn8s_vgg16"]
    assert cnnlab.list_models("fcn*", task="classification") == []
    with pytest.raises(ConfigError, match="unknown task"):
        cnnlab.list_models(task="tracking")
    with pytest.raises(ConfigError, match="num_classes"):
        cnnlab.create_model("fcn8s_fastnet", num_classes=0)
    info = get_model_info("fcn8s_vgg16")
    assert info.task == "segmentation" and info.num_classes == 21 and get_model_info("vgg16").task == "classification"


@pytest.mark.parametrize("name", SEG)
def test_param_count_matches_reference(name):
    info = get_model_info(name)
    with torch.device("meta"):
        model = cnnlab.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == info.params
    assert model.pretrained_cfg["task"] == "segmentation"


def test_vgg16_fcn8s_is_the_reference_caffe_net():
    # voc-fcn8s (FCN reference code): VGG-16 convs 14,714,688; fc6 7x7x512x4096 + 4096; fc7 4096^2 + 4096;
    # score_fr 4096*21+21; score_pool4 512*21+21; score_pool3 256*21+21; upscore2, upscore_pool4 21*21*4*4;
    # upscore8 21*21*16*16 (lr 0) -- 134,489,759 in all, the released caffemodel's "134M".
    ref = (14_714_688 + 512 * 49 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 21 + 21 + 512 * 21 + 21
           + 256 * 21 + 21 + 2 * 21 * 21 * 16 + 21 * 21 * 256)
    with torch.device("meta"):
        m = cnnlab.create_model("fcn8s_vgg16")
    assert ref == 134_489_759 == sum(p.numel() for p in m.parameters())
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == ref - 21 * 21 * 256  # fixed 8x upsampling


@pytest.mark.parametrize("name", [n for n in SEG if "vgg" in n])
@pytest.mark.parametrize("size", [(3, 224, 224), (1, 128, 128), (3, 100, 75), (3, 500, 375)])
def test_vgg_output_shapes(name, size):
    # shape-only pass (the inspection engine); the real forwards of the small nets are below
    s = inspect(lambda: cnnlab.create_model(name, num_classes=21, in_chans=size[0]), size)
    assert s.output_shape == (1, 21, *size[1:])


@pytest.mark.parametrize("name", [n for n in SEG if "vgg" not in n])
@pytest.mark.parametrize("size", [(1, 128, 128), (3, 224, 224), (1, 70, 45), (3, 33, 100)])
def test_small_backbones_output_shapes(name, size):
    model = cnnlab.create_model(name, num_classes=5, in_chans=size[0]).eval()
    with torch.inference_mode():
        y = model(torch.randn(2, *size))
    assert y.shape == (2, 5, *size[1:])


# VGG-16's fc6 alone has 103M parameters: one VGG net, in the slow group, covers that backbone
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "fcn8s_vgg16" else n
                                  for n in SEG if n not in ("fcn16s_vgg16", "fcn32s_vgg16")])
def test_forward_backward_train_mode(name):
    size = 32 if "vgg" in name else 64
    model = cnnlab.create_model(name, num_classes=4, in_chans=1).train()
    _randomise_scores(model)
    y = model(torch.randn(2, 1, size, size))
    assert y.shape == (2, 4, size, size)
    F.cross_entropy(y, torch.randint(0, 4, (2, size, size))).backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    assert not model.upscore.weight.requires_grad  # the final upsampling is fixed (§4.2)


def test_bilinear_kernel_known_values():
    k4 = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(bilinear_kernel(4), torch.outer(k4, k4))
    k3 = torch.tensor([0.5, 1.0, 0.5])
    torch.testing.assert_close(bilinear_kernel(3), torch.outer(k3, k3))
    assert bilinear_kernel(16).shape == (16, 16) and bilinear_kernel(16).max() == pytest.approx(15 / 16 * 15 / 16)


@pytest.mark.parametrize("factor", [2, 3, 4, 8, 32])
def test_bilinear_upsampler_equals_interpolate_in_the_interior(factor):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 6, 7)
    up = bilinear_upsampler(3, factor)
    with torch.no_grad():
        y = up(x)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert y.shape == ref.shape == (1, 3, 6 * factor, 7 * factor)
    m = factor  # the outer input unit's half-kernel is clamped by interpolate, zero-padded by the conv
    torch.testing.assert_close(y[..., m:-m, m:-m], ref[..., m:-m, m:-m], rtol=0, atol=1e-5)
    assert (y[..., m:-m, m:-m] - ref[..., m:-m, m:-m]).abs().max() < 1e-5 < (y - ref).abs().max()


def _randomise_scores(model: nn.Module) -> None:
    """Score layers start at zero (§4.3); give them weights so every path shows in the output."""
    torch.manual_seed(1)
    for name in ("score_fr", "score_pool4", "score_pool3", "score_pool2", "score_pool1"):
        if hasattr(model, name):
            nn.init.normal_(getattr(model, name).weight, std=0.5)
            nn.init.normal_(getattr(model, name).bias, std=0.5)


@pytest.mark.parametrize("stride", [2, 4, 8, 16, 32])
def test_fusion_matches_an_interpolate_reference(stride):
    """FCN-ks == upsample(score_fr) + skips with F.interpolate (bilinear, align_corners=False), away from
    the border: the skips are added, the upsamplers are bilinear and the crops are aligned."""
    net = FCN(FastNetBackbone((4, 8, 8, 16, 16), in_chans=1), num_classes=3, stride=stride).eval()
    _randomise_scores(net)
    x = torch.randn(1, 1, 256, 192)
    with torch.no_grad():
        y = net(x)
        pools = net.backbone(x)
        s = net.score_fr(pools[4])

        def up(t, f):
            return F.interpolate(t, scale_factor=f, mode="bilinear", align_corners=False)

        for k, pool_stride in ((4, 16), (3, 8), (2, 4), (1, 2)):  # pool_k, its stride
            if stride <= pool_stride:
                s = up(s, 2) + getattr(net, f"score_pool{k}")(pools[k - 1])
        ref = up(s, stride)
    m = 64  # border effects of the upsamplings stay within 2 coarse units
    assert y.shape == ref.shape == (1, 3, 256, 192)
    assert ref[..., m:-m, m:-m].std() > 0.1  # O(1) and input dependent
    torch.testing.assert_close(y[..., m:-m, m:-m], ref[..., m:-m, m:-m], rtol=0, atol=1e-4)


def test_skip_layers_start_at_zero():
    # a new skip starts as the coarser net (§4.2): at init FCN-8s == FCN-16s == FCN-32s's first stage
    net = cnnlab.create_model("fcn2s_fastnet")
    for name in ("score_fr", "score_pool4", "score_pool3", "score_pool2", "score_pool1"):
        layer = getattr(net, name)
        assert layer.weight.abs().sum() == 0 and layer.bias.abs().sum() == 0
    for name in ("upscore2", "upscore_pool4", "upscore_pool3", "upscore_pool2"):  # learned, bilinear at start
        up = getattr(net, name)
        assert up.weight.requires_grad and up.weight[0, 0].equal(bilinear_kernel(4))
        assert up.weight[0, 1].abs().sum() == 0
    assert not net.upscore.weight.requires_grad and net.upscore.stride == (2, 2)  # the fixed final 2x


@pytest.mark.parametrize("stride,skips", [(32, []), (16, [4]), (8, [4, 3]), (4, [4, 3, 2]), (2, [4, 3, 2, 1])])
def test_each_stride_fuses_the_pools_at_or_above_it(stride, skips):
    net = FCN(FastNetBackbone((4, 8, 8, 16, 16), in_chans=1), num_classes=3, stride=stride)
    assert net.skips == skips
    assert sorted(k for k in range(1, 5) if hasattr(net, f"score_pool{k}")) == sorted(skips)
    assert net.upscore.stride == (stride, stride)
    with pytest.raises(ValueError, match="one of 32, 16, 8, 4, 2"):
        FCN(FastNetBackbone((4, 8, 8, 16, 16), in_chans=1), num_classes=3, stride=64)


@pytest.mark.slow
def test_init_from_vgg_is_convolutionalized_vgg16():
    torch.manual_seed(0)
    vgg = cnnlab.create_model("vgg16").eval()
    fcn = init_from_vgg(cnnlab.create_model("fcn32s_vgg16").eval(), vgg)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        fc7_vgg = vgg.forward_head(vgg.forward_features(x), pre_logits=True)
        fc7_fcn = fcn.head(fcn.backbone(x)[-1])
    # fc6 is padded by 3 (crop-free): only the centre unit of the 7x7 map sees the exact 7x7 window
    torch.testing.assert_close(fc7_fcn[0, :, 3, 3], fc7_vgg[0], rtol=1e-4, atol=1e-5 * fc7_vgg.abs().max().item())


def test_zoo_table_has_the_task():
    from cnnlab.zoo import zoo_rows

    rows = zoo_rows("fcn8s*", macs=False)
    assert [r.name for r in rows] == ["fcn8s_fastnet", "fcn8s_resnet18", "fcn8s_vgg16"]
    assert {r.task for r in rows} == {"segmentation"} and rows[2].params == 134_489_759
    assert [r.name for r in zoo_rows("vgg16*", macs=False, task="classification")] == ["vgg16", "vgg16_bn"]


def test_init_from_resnet_copies_the_backbone():
    from cnnlab.segmentation import init_from_resnet

    torch.manual_seed(0)
    resnet = cnnlab.create_model("resnet18", in_chans=1).eval()
    fcn = init_from_resnet(cnnlab.create_model("fcn8s_resnet18", in_chans=1), resnet).eval()
    x = torch.randn(1, 1, 96, 96)
    with torch.inference_mode():
        torch.testing.assert_close(fcn.backbone(x)[-1], resnet.forward_features(x))


def test_the_fixed_final_upsampler_runs_in_fp32_under_autocast():
    # oneDNN's bf16 transposed convolution with FCN-32s's 64x64 kernel was ~10x slower on CPU than fp32
    # (benchmarks/bench_fcn_step.py); the fixed upsampler now leaves autocast, so the logits are fp32
    net = cnnlab.create_model("fcn32s_fastnet").eval()
    torch.manual_seed(0)
    nn.init.normal_(net.score_fr.weight, std=0.5)  # the zero-initialised score layer would make every logit 0
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (2, 11, 64, 64)
    assert float(ref.std()) > 0.1 and torch.allclose(out, ref, atol=0.05 * float(ref.abs().max()))


@pytest.mark.parametrize("backbone", ["vgg16", "resnet18", "fastnet"])
def test_backbones_return_pool1_to_pool5(backbone):
    # every backbone hands the FCN its five pooled maps, 1/2 ... 1/32 of the input, with the widths it declares
    from cnnlab.segmentation.fcn import ResNetBackbone, VGGBackbone

    net = {"vgg16": lambda: VGGBackbone("D", 3), "resnet18": lambda: ResNetBackbone(in_chans=3),
           "fastnet": lambda: FastNetBackbone(in_chans=3)}[backbone]().eval()
    with torch.no_grad():
        pools = net(torch.randn(1, 3, 64, 96))
    assert [tuple(p.shape[1:]) for p in pools] == [(c, 64 // 2**k, 96 // 2**k)
                                                  for k, c in enumerate(net.channels, start=1)]
