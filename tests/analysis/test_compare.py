"""``compare``, published accuracies (cited, never invented) and the ball chart."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from cnnlab.analysis import ball_chart, compare, format_compare, published_accuracy
from cnnlab.errors import ConfigError


def test_reference_data_is_cited():
    data = json.loads(resources.files("cnnlab.analysis").joinpath("reference_accuracy.json").read_text())
    for section in ("models", "torchvision"):
        for name, e in data[section].items():
            assert e["source"] and 0 < e["top1"] < 100, name


def test_published_accuracy_lookup():
    assert published_accuracy("resnet50")["top1"] == pytest.approx(76.13)  # via the torchvision twin
    assert published_accuracy("alexnet_original")["top1"] == pytest.approx(59.3)  # paper, Table 2
    assert published_accuracy("mobilenet_v1")["top1"] == pytest.approx(70.6)  # paper, Table 8
    assert published_accuracy("lenet5") is None  # no ImageNet figure: none invented


def test_compare_table_and_chart(tmp_path):
    rows = compare(["vgg16", "resnet50", "mobilenet_v1", "lenet5"])
    by = {r.name: r for r in rows}
    assert by["resnet50"].macs == 4_089_184_256 and by["vgg16"].params == 138_357_544
    assert by["vgg16"].receptive_field == 212
    assert by["lenet5"].top1 is None and by["lenet5"].source == ""
    text = format_compare(rows)
    assert "76.13" in text and "no published figure" in text
    assert json.loads(format_compare(rows, "json"))[1]["name"] == "resnet50"
    assert format_compare(rows, "csv").count("\n") == 5
    path = ball_chart(rows, tmp_path / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError):
        format_compare(rows, "xml")
    with pytest.raises(ConfigError):
        compare([])


def test_ball_chart_is_written_atomically(tmp_path, monkeypatch):
    from cnnlab import _io

    written, real = [], _io.atomic_write
    monkeypatch.setattr(_io, "atomic_write", lambda path, data: (written.append(path), real(path, data)))
    path = ball_chart(compare(["resnet18", "vgg11"]), tmp_path / "sub" / "chart.png")
    assert written == [path] and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["chart.png"]
