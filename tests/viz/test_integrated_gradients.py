"""Integrated gradients (Sundararajan et al. 2017): completeness -- the attributions sum to f(x) - f(baseline)
within the integration error -- and `cam(..., "integrated-gradients")` is the map of those attributions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.models import ClassifierMixin
from cnnlab.viz.cam import cam, integrated_gradients

pytest.importorskip("captum")


class SmallNet(ClassifierMixin, nn.Module):
    """Two convs with ReLU, global average pool, linear: non-linear in x, so IG is not a single gradient."""

    classifier_name = "fc"

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 4)
        with torch.no_grad():
            self.fc.weight.mul_(10)  # score differences of O(0.5)
        self.pretrained_cfg = {"in_chans": 3, "img_size": 32, "num_classes": 4, "mean": (0.5,) * 3,
                               "std": (0.25,) * 3}

    def forward_features(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))))

    def forward_head(self, x, pre_logits=False):
        return self.fc(x.mean(dim=(2, 3)))


def test_attributions_sum_to_the_score_difference(tmp_path):
    model = SmallNet().eval()
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f = model(x)[0] - model(torch.zeros_like(x))[0]
    for t in range(4):
        total = float(integrated_gradients(model, x, t, steps=32).sum())
        assert total == pytest.approx(float(f[t]), rel=0.01, abs=3e-3), t  # Gauss-Legendre, 32 points: ~1e-3
    assert float(f.abs().min()) > 0.03 and float(f.abs().max()) > 0.5  # differences worth checking
    # finer integration gets closer: the error is the integration's, not a missing term
    err = [abs(float(integrated_gradients(model, x, 0, steps=n).sum()) - float(f[0])) for n in (4, 64)]
    assert err[1] < err[0] / 10


def test_cam_integrated_gradients_map_is_the_attributions(tmp_path):
    model = SmallNet().eval()
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    r = cam(model, path, "integrated-gradients", target=2, ig_steps=16)
    heat = integrated_gradients(model, r.view.x, 2, steps=16)[0].abs().sum(0)
    q = float(torch.quantile(heat.flatten(), 0.99))
    np.testing.assert_allclose(r.heatmap, (heat / q).clamp(max=1).numpy(), atol=1e-6)
    assert r.peak == np.unravel_index(int(heat.argmax()), heat.shape)
