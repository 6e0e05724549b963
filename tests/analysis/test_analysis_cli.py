"""``cnnlab inspect | calc | compare`` through the CLI entry point (in-process)."""

from __future__ import annotations

import json

from cnnlab.cli import main


def test_inspect_formats(capsys):
    assert main(["inspect", "alexnet_original", "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert "features.0" in out and "60,965,224" in out
    assert main(["inspect", "vgg16", "--input", "3x224x224", "--format", "json", "--depth", "-1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][1]["params"] == 1_792
    assert main(["inspect", "resnet50", "--format", "csv", "--depth", "1"]) == 0
    assert capsys.readouterr().out.startswith("depth,layer,type")
    assert main(["inspect", "resnet50", "--format", "md", "--depth", "1"]) == 0
    assert "| `fc` |" in capsys.readouterr().out


def test_inspect_errors_are_one_line(capsys):
    assert main(["inspect", "resnet5O"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model" in err
    assert main(["inspect", "resnet50", "--input", "3x224"]) == 2


def test_calc(capsys):
    assert main(["calc", "conv", "--in", "227x227x3", "--kernel", "11", "--stride", "4", "--pad", "0",
                 "--filters", "96"]) == 0
    out = capsys.readouterr().out
    assert "55x55x96" in out and "34,944" in out
    assert main(["calc", "conv", "--in", "224x224x3", "--kernel", "11", "--stride", "4", "--filters", "96"]) == 2
    assert "54.25" in capsys.readouterr().err
    assert main(["calc", "stack", "--kernel", "3", "--layers", "3", "--channels", "64"]) == 0
    assert "7x7" in capsys.readouterr().out
    assert main(["calc", "depthwise", "--kernel", "3", "--in", "512", "--out", "512", "--size", "14"]) == 0
    assert "1/512 + 1/9" in capsys.readouterr().out
    assert main(["calc", "bottleneck"]) == 0
    assert "12,443,648" in capsys.readouterr().out
    assert main(["calc", "bottleneck", "--style", "resnet"]) == 0
    assert "69,632" in capsys.readouterr().out


def test_compare(capsys, tmp_path):
    png = tmp_path / "balls.png"
    assert main(["compare", "resnet50", "mobilenet_v2", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "71.88" in out and png.exists()
