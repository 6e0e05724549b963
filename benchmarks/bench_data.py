"""Input-pipeline throughput: cnnlab's InMemoryLoader vs the PyTorch tutorial's per-sample pipeline.

(a) ``cnnlab.data.InMemoryLoader`` over real Fashion-MNIST with batched ``crop,flip`` augmentation;
(b) a torchvision ``FashionMNIST``-style Dataset (``__getitem__`` makes a PIL image and runs
    ``transforms.Compose([RandomCrop(28, padding=4), RandomHorizontalFlip(), ToTensor(), Normalize])``)
    fed through ``torch.utils.data.DataLoader`` -- the same augmentation, one sample at a time.

Both produce normalised float32 batches of the same size in the same process; no model runs, so
this is the ceiling each pipeline puts on training speed. Usage:

    python benchmarks/bench_data.py [--batch-size 256] [--threads 1] [--workers 0] [--slow-batches 40]
"""

from __future__ import annotations

import argparse
import time

import torch

from tutorial_pipeline import TutorialFashionMNIST  # run as a script: benchmarks/ is on sys.path


def _rate(batches, limit: int) -> tuple[float, int]:
    n, t0 = 0, time.perf_counter()
    for i, (x, _) in enumerate(batches):
        n += x.shape[0]
        if i + 1 >= limit:
            break
    return n / (time.perf_counter() - t0), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers for the tutorial pipeline")
    ap.add_argument("--slow-batches", type=int, default=40, help="batches timed for the tutorial pipeline")
    ap.add_argument("--epochs", type=int, default=2, help="epochs timed for the in-memory loader")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from torchvision import transforms

    from cnnlab.data import InMemoryLoader, load_dataset

    ds = load_dataset("fashion-mnist", split="train")

    fast = InMemoryLoader(ds, batch_size=args.batch_size, shuffle=True, augment="crop:4,flip", seed=0)
    list(fast.iter_from(len(fast) - 2))  # warm-up
    rates = []
    for epoch in range(args.epochs):
        fast.set_epoch(epoch)
        rates.append(_rate(fast, len(fast))[0])
    fast_rate = max(rates)

    tf = transforms.Compose([transforms.RandomCrop(28, padding=4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)])
    slow = torch.utils.data.DataLoader(TutorialFashionMNIST(ds.images, ds.labels, tf), batch_size=args.batch_size,
                                       shuffle=True, num_workers=args.workers)
    slow_rate, n_slow = _rate(slow, args.slow_batches)

    print(f"Fashion-MNIST train, batch {args.batch_size}, augmentation crop(pad 4)+flip, "
          f"torch threads {args.threads}, DataLoader workers {args.workers}")
    print(f"  cnnlab InMemoryLoader        {fast_rate:>12,.0f} img/s  (best of {args.epochs} epochs)")
    print(f"  Dataset+DataLoader+transforms {slow_rate:>11,.0f} img/s  ({n_slow} images)")
    print(f"  ratio                        {fast_rate / slow_rate:>12.1f} x")


if __name__ == "__main__":
    main()
