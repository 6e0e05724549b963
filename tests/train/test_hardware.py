"""CPU detection and the ``amp=auto`` rule: bf16 autocast only where the CPU has native bf16."""

import pytest
import torch

from cnnlab.train import hardware
from cnnlab.train.hardware import CpuInfo, cpu_info, resolve_amp


@pytest.mark.parametrize("flags, expected", [
    (("avx2", "avx512f", "avx512_bf16"), "bf16"),
    (("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"), "bf16"),
    (("avx2", "avx512f", "amx_bf16", "amx_tile"), "bf16"),
    (("avx2", "avx512f"), "off"),  # AVX-512 without BF16: bf16 would be emulated
    (("avx2",), "off"),  # e.g. an AMD EPYC (Zen 2/3)
    ((), "off"),
])
def test_auto_amp_follows_native_bf16(monkeypatch, flags, expected):
    monkeypatch.setattr(hardware, "cpu_info", lambda: CpuInfo("test CPU", 2, flags))
    amp, reason = resolve_amp("auto", "cpu")
    assert amp == expected
    assert reason.startswith(f"amp auto -> {expected}")


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_explicit_amp_is_kept(monkeypatch, amp):
    monkeypatch.setattr(hardware, "cpu_info", lambda: CpuInfo("test CPU", 2, ()))
    assert resolve_amp(amp, "cpu")[0] == amp


def test_cpu_info_reads_this_machine():
    info = cpu_info()
    assert info.cores >= 1 and info.model
    assert set(info.flags) <= set(hardware._FLAGS)
    # Where torch can tell, it agrees with the flags we report.
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    if probe is not None:
        assert ("avx512_bf16" in info.flags) == bool(probe())
    assert ("native bf16: yes" in info.describe()) == info.native_bf16


def test_fit_records_what_auto_chose(tmp_path, monkeypatch):
    from cnnlab.data import ArrayDataset
    from cnnlab.train import TrainConfig, fit

    monkeypatch.setattr(hardware, "cpu_info", lambda: CpuInfo("test CPU", 2, ("avx2",)))
    g = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.randint(0, 255, (64, 1, 8, 8), dtype=torch.uint8, generator=g),
                        torch.arange(64) % 2, classes=["a", "b"])
    cfg = TrainConfig(model="lenet5", img_size=32, epochs=1, batch_size=32, amp="auto", eval_test=False,
                      out_dir=str(tmp_path), progress="none", plots=False, tensorboard=False)
    fit(cfg, train_data=data)
    import yaml

    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["amp"] == "off"  # what ran, not "auto"


def test_load_average_states_the_three_numbers(monkeypatch):
    monkeypatch.setattr(hardware.os, "getloadavg", lambda: (1.5, 0.25, 2.0))
    assert hardware.load_average() == "load average 1.50 0.25 2.00"

    def unavailable():
        raise OSError("no load average here")

    monkeypatch.setattr(hardware.os, "getloadavg", unavailable)
    assert hardware.load_average() == "load average n/a"
