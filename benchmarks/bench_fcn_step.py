"""Training-step speed of the FastNet FCNs per precision and memory layout, as a ratio to fp32 NCHW.

Each model takes forward + backward steps on a batch of 1x128x128 images (the ``scenes-fcn8s`` shape) with
bf16 autocast on or off and NCHW or channels_last, and prints ms per step, images/s and the ratio to fp32 NCHW
measured in the same run. It found that oneDNN's bf16 transposed convolution with FCN-32s's fixed 64x64
upsampling kernel made a step ~10x slower than fp32 (so the FCN's final, fixed upsampler now runs in fp32).
bf16 only helps on CPUs that compute it natively (AVX512-BF16 / AMX; the CPU line says which).

    python benchmarks/bench_fcn_step.py
    python benchmarks/bench_fcn_step.py --models fcn8s_fastnet --batch 16 --seconds 2
"""

from __future__ import annotations

import argparse
import time

import torch

from cnnlab.models import create_model
from cnnlab.train.hardware import cpu_info, load_average


def step_seconds(name: str, amp: bool, channels_last: bool, batch: int, size: int, seconds: float) -> float:
    """Mean seconds of one forward + backward step after a warm-up step."""
    net = create_model(name, stem="whitened")
    net.init_from_data(torch.randn(64, 1, size, size, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(1))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = net(x)
        out.float().mean().backward()

    step()
    t, n = time.perf_counter(), 0
    while n < 3 or (time.perf_counter() - t < seconds and n < 50):
        step()
        n += 1
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="fcn32s_fastnet,fcn16s_fastnet,fcn8s_fastnet,fcn4s_fastnet,fcn2s_fastnet")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=4.0, help="time per setting [4]")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"cpu: {cpu_info().describe()}; torch {torch.__version__}, {args.threads} threads; {load_average()}")
    print("| model | precision | layout | ms / step | img/s | speed vs fp32 NCHW |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.models.split(","):
        base = None
        for amp in (False, True):
            for cl in (False, True):
                s = step_seconds(name, amp, cl, args.batch, args.size, args.seconds)
                base = base or s
                print(f"| {name} | {'bf16 autocast' if amp else 'fp32'} | {'channels_last' if cl else 'NCHW'} | "
                      f"{1000 * s:.0f} | {args.batch / s:.0f} | {base / s:.2f}x |", flush=True)
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
