"""What this CPU computes natively, and the training settings that follow from it.

Machines differ between runs of the same recipe (2-core AMD EPYCs with and without AVX512-BF16, a
2-core Intel Xeon with AVX512-BF16 and AMX): a recipe asks for ``amp="auto"`` and this module decides,
by one stated rule, instead of tuning to one CPU silently.

Rule (``resolve_amp``): on a CPU, bf16 autocast iff the CPU has native bf16 dot products --
AVX512_BF16 (``vdpbf16ps``) or AMX-BF16 tiles -- because oneDNN then runs bf16 convolutions at
2-4x the fp32 rate; without them bf16 is emulated by converting to fp32 and every cast costs time.
On CUDA, bf16 where the GPU supports it (Ampere and newer), else fp32.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["CPU_KINDS", "CpuInfo", "cpu_info", "load_average", "resolve_amp"]

_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")

# The three CPU kinds a recipe's time depends on, and how amp=auto trains on each.
CPU_KINDS = {"amx": "AMX-BF16 (bf16 matrix tiles): bf16 autocast",
             "avx512_bf16": "AVX512-BF16 without AMX (bf16 dot products): bf16 autocast",
             "fp32": "no native bf16 (no AVX512-BF16, no AMX): fp32"}


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name, usable cores and the instruction-set flags that matter for training."""

    model: str
    cores: int
    flags: tuple[str, ...]

    @property
    def native_bf16(self) -> bool:
        return "avx512_bf16" in self.flags or "amx_bf16" in self.flags

    @property
    def kind(self) -> str:
        """One of :data:`CPU_KINDS`: ``amx``, ``avx512_bf16`` (native bf16 without AMX) or ``fp32``."""
        return "amx" if "amx_bf16" in self.flags else "avx512_bf16" if "avx512_bf16" in self.flags else "fp32"

    def describe(self) -> str:
        flags = " ".join(self.flags) or "no AVX2/AVX-512/AMX"
        return f"{self.model}, {self.cores} cores, {flags}; native bf16: {'yes' if self.native_bf16 else 'no'}"


def _proc_cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) of the first CPU listed; the platform's name where /proc/cpuinfo has none."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """Read ``/proc/cpuinfo`` (Linux), cross-checked with what PyTorch's CPU dispatcher reports."""
    model, flags = _proc_cpuinfo()
    probes = {"avx2": "_is_avx2_supported", "avx512f": "_is_avx512_supported",
              "avx512_bf16": "_is_avx512_bf16_supported", "amx_tile": "_is_amx_tile_supported"}
    for flag, probe in probes.items():  # private helpers of torch.cpu: used when present
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            try:
                if fn():
                    flags.add(flag)
                else:
                    flags.discard(flag)
            except RuntimeError:
                pass
    if "amx_tile" not in flags:
        flags.discard("amx_bf16")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return CpuInfo(model=model or "unknown CPU", cores=cores, flags=tuple(f for f in _FLAGS if f in flags))


def load_average() -> str:
    """``"load average 1m 5m 15m"`` (``"n/a"`` where the OS has none): benchmarks print it, because on a
    shared machine other jobs inflate every timing."""
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except (OSError, AttributeError):
        return "load average n/a"


def resolve_amp(amp: str, device: torch.device | str) -> tuple[str, str]:
    """``(amp mode, reason)``: ``auto`` becomes bf16 or off by the module's rule; others pass through."""
    device = torch.device(device)
    if amp != "auto":
        return amp, f"amp={amp} as configured"
    if device.type == "cuda":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "off"
        return amp, f"amp auto -> {amp} ({torch.cuda.get_device_name(device)})"
    if device.type != "cpu":
        return "off", f"amp auto -> off (no autocast rule for {device.type})"
    info = cpu_info()
    if info.native_bf16:
        native = "AMX-BF16" if "amx_bf16" in info.flags else "AVX512-BF16"
        return "bf16", f"amp auto -> bf16 (the CPU has {native})"
    return "off", "amp auto -> off (the CPU has no native bf16: no AVX512-BF16 or AMX)"
