"""Output polish: names never cut, MACs with three significant figures, no hard wrapping in logs."""

import io

import pytest

from cnnlab._console import LOG_WIDTH, make_console
from cnnlab.analysis import inspect
from cnnlab.analysis.summary import format_macs
from cnnlab.zoo import print_zoo


@pytest.mark.parametrize("macs, text", [
    (416_520, "0.417 MMACs"),          # LeNet-5 at 1x32x32 (was "0.000" GMACs)
    (11_618_048, "11.6 MMACs"),         # FastNet
    (385_187_552, "385 MMACs"),         # EfficientNet-Lite0
    (714_188_480, "714 MMACs"),         # AlexNet (torchvision)
    (15_470_264_320, "15.5 GMACs"),     # VGG-16
    (999_960_000, "1.00 GMACs"),        # rounds up across the unit boundary
    (12_300, "0.0123 MMACs"),
])
def test_format_macs_keeps_three_significant_figures(macs, text):
    assert format_macs(macs) == text


def test_zoo_table_in_a_pipe_keeps_every_name(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    print_zoo("shufflenet_v2*")
    out = capsys.readouterr().out
    for name in ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"):
        assert f"│ {name} " in out
    assert "…" not in out
    assert "145 MMACs" in out and "40.5 MMACs" in out  # x1_0: Ma et al. 2018, Table 5: 146 MFLOPs


def test_zoo_names_survive_a_narrow_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "50")
    print_zoo("efficientnet_lite*", macs=False)
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "efficientnet_lite2" in out


def test_inspect_footer_of_a_small_net_is_not_zero():
    text = str(inspect("lenet5"))
    assert "416,520 (0.417 MMACs; FLOPs = 2 x MACs = 0.833 MFLOPs)" in text


def test_log_console_does_not_wrap_long_lines(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    buf = io.StringIO()  # not a TTY, like a log file
    console = make_console(file=buf)
    assert console.width == LOG_WIDTH
    path = "/a/very/long/" + "directory/" * 40 + "grace_hopper.jpg"
    console.print(f"efficientnet_lite0 with real ImageNet weights on {path}: " + "word " * 80)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and path in lines[0]
