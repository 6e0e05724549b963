"""Filter grids and statistics, feature maps with the inspection engine's shapes and receptive fields, CLI."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.analysis import inspect
from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.models import create_model
from cnnlab.viz import feature_maps, filter_grid, filter_stats, plot_feature_maps, plot_filters
from cnnlab.viz.features import default_layers


def test_filter_grid_scales_each_kernel_and_tiles_them():
    w = torch.zeros(5, 3, 2, 2)
    w[0, 0, 0, 0] = 2.0          # one bright red pixel, the rest at the kernel's minimum
    w[1] = -1.0                  # a constant kernel: 0 everywhere
    w[2, 2] = torch.tensor([[0.0, 1.0], [2.0, 4.0]])  # blue ramp: 0, .25, .5, 1
    grid = filter_grid(w)        # 5 kernels -> 3 columns x 2 rows, 1-pixel white gaps
    assert grid.shape == (2 * 3 + 1, 3 * 3 + 1, 3)
    np.testing.assert_array_equal(grid[1:3, 1:3, 0], [[1, 0], [0, 0]])
    np.testing.assert_array_equal(grid[1:3, 4:6], 0)
    np.testing.assert_allclose(grid[1:3, 7:9, 2], [[0, 0.25], [0.5, 1]])
    assert (grid[0] == 1).all() and (grid[:, 3] == 1).all()  # padding
    assert filter_grid(torch.ones(4, 1, 3, 3)).shape == (9, 9)  # 2x2 gray kernels of 3x3 + gaps
    with pytest.raises(ConfigError, match="1 or 3 input channels"):
        filter_grid(torch.zeros(8, 16, 3, 3))


def test_filter_stats_by_hand():
    conv = nn.Conv2d(2, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([3.0, 4.0, 0.0, 0.0, 0.01, 0.0]).view(3, 2, 1, 1))
    model = nn.Sequential(conv)
    (s,) = filter_stats(model)
    assert s.layer == "0" and s.shape == (3, 2, 1, 1) and s.groups == 1
    assert (s.norm_min, s.norm_median, s.norm_max) == pytest.approx((0.0, 0.01, 5.0))
    assert s.near_dead == 2  # norms 0 and 0.01 < 1% of 5
    assert s.mean == pytest.approx(7.01 / 6) and s.abs_mean == pytest.approx(7.01 / 6)


def test_first_layer_picture_and_deeper_layer_statistics():
    torch.manual_seed(0)
    model = create_model("alexnet")
    fig, stats = plot_filters(model)  # registry's first_conv: features.0, 64 kernels of 11x11x3
    assert stats.layer == "features.0" and stats.shape == (64, 3, 11, 11)
    assert fig.axes[0].images[0].get_array().shape == (8 * 12 + 1, 8 * 12 + 1, 3)
    fig, stats = plot_filters(model, "features.3")  # 192 x 64 x 5 x 5: no picture, statistics
    assert stats.shape == (192, 64, 5, 5) and len(fig.axes) == 3  # histogram, |w| map, colorbar
    norms = model.features[3].weight.detach().flatten(1).norm(dim=1)
    assert stats.norm_median == pytest.approx(float(norms.median()))
    with pytest.raises(ConfigError, match="not a Conv2d"):
        plot_filters(model, "features.1")


def test_feature_maps_are_the_layer_outputs_with_inspected_geometry(fashion_run):
    run, image, _ = fashion_run
    fms = feature_maps(run, image, max_channels=8)
    model = create_model("fastnet_s")
    assert [fm.layer for fm in fms] == default_layers(model)
    summary = inspect("fastnet_s", (1, 28, 28), depth=None)
    for fm in fms:
        row = summary.row(fm.layer)
        assert fm.output_shape == row.output_shape and fm.maps.shape == row.output_shape[1:]
        assert (fm.receptive_field, fm.jump) == (row.receptive_field, row.jump)
        assert f"receptive field {row.receptive_field} px" in fm.title
        assert fm.shown == min(8, fm.maps.shape[0])
    first = fms[0]  # recompute the first conv directly from the run's weights
    from cnnlab.train.source import load_model

    conv = load_model(run).model.get_submodule(first.layer)
    direct = conv(first.view.x)[0].detach().numpy()
    np.testing.assert_allclose(first.maps, direct, atol=1e-5)
    fig = plot_feature_maps(fms)
    assert len(fig.axes) == len(fms) + 1
    with pytest.raises(ConfigError, match="no module 'nope'"):
        feature_maps(run, image, ["nope"])


def test_feature_maps_of_a_layer_without_spatial_output(fashion_run):
    run, image, _ = fashion_run
    head = [n for n, m in create_model("fastnet_s").named_modules() if isinstance(m, nn.Linear)][-1]
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\) output"):
        feature_maps(run, image, [head])


def test_viz_cli_writes_pngs_atomically(fashion_run, tmp_path, capsys):
    run, image, _ = fashion_run
    out = tmp_path / "f.png"
    assert main(["viz", "filters", str(run), "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and data["figure"] == str(out)
    assert data["layers"][0]["shape"][1] == 1  # 1-channel kernels
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file left behind
    assert main(["viz", "features", str(run), str(image), "--layers", default_layers(create_model("fastnet_s"))[0],
                 "-o", str(tmp_path / "m.png")]) == 0
    assert "receptive field" in capsys.readouterr().out
    assert main(["viz", "cam", str(run), str(image), "--method", "gradcam", "--target", "Pullover",
                 "-o", str(tmp_path / "c.png")]) == 0
    text = capsys.readouterr().out
    assert "gradcam for Pullover" in text and (tmp_path / "c.png").is_file()
    assert main(["viz", "cam", str(run), str(image), "--target", "Jacket"]) == 2
    assert "unknown target class 'Jacket'" in capsys.readouterr().err
    assert main(["viz", "filters", "resnet9000"]) == 2
    assert "unknown model 'resnet9000'" in capsys.readouterr().err


def test_first_conv_computation_matches_functional():
    # the hook keeps the conv's own output although an in-place ReLU follows it (AlexNet features.1)
    torch.manual_seed(0)
    model = create_model("alexnet").eval()
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8))
    (fm,) = feature_maps(model, img, ["features.0"], max_channels=4)
    conv = model.features[0]
    expected = F.conv2d(fm.view.x, conv.weight, conv.bias, conv.stride, conv.padding)[0].detach().numpy()
    np.testing.assert_allclose(fm.maps, expected, atol=1e-5)
