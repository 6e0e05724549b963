"""Training throughput: cnnlab's ``fashion-fast`` recipe vs the plain PyTorch tutorial pipeline.

Both train the same model (the recipe's ``fastnet``, same initialisation seed) for the same epochs
on real Fashion-MNIST with the same optimizer (Nesterov SGD, same lr / momentum / weight decay with
norm and bias exempt, one-cycle schedule, label smoothing) and the same augmentation (2-pixel
random crop + horizontal flip), in one process:

(a) cnnlab: ``fit(get_recipe("fashion-fast"))`` -- in-memory uint8 batches, batched augmentation,
    bf16 autocast, channels_last, flip TTA at the end; its per-epoch test accuracy
    (logging only, no TTA) gives the time-to-93 %;
(b) the tutorial: a torchvision ``FashionMNIST``-style Dataset (PIL image per sample) +
    ``transforms.Compose([RandomCrop(28, padding=2), RandomHorizontalFlip(), ToTensor(), Normalize])``
    + ``DataLoader(shuffle=True)`` + ``torch.optim.SGD`` + ``OneCycleLR`` in fp32, NCHW, evaluated
    once at the end.

Both run on ``--threads`` threads (2 by default, as the recorded numbers). Prints training img/s of
each (images / training-loop seconds), their ratio (goal >= 2x), the wall time of each whole run, the
final test accuracy, and the recipe's time-to-93 %. Usage:

    python benchmarks/bench_train.py            # full: the recipe's epochs (several minutes)
    python benchmarks/bench_train.py --quick    # 1 epoch each (about a minute on an idle machine)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from cnnlab.train.hardware import load_average
from tutorial_pipeline import TutorialFashionMNIST  # run as a script: benchmarks/ is on sys.path


class EpochClock:
    """fit() callback: wall seconds since the run started at each epoch end, with test top-1."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.rows: list[tuple[int, float, float | None]] = []

    def on_epoch_end(self, state, row) -> None:
        self.rows.append((row["epoch"], time.perf_counter() - self.t0, row.get("test_top1")))


def run_cnnlab(epochs: int, seed: int, out_dir: str, threads: int) -> dict:
    from cnnlab.train import fit, get_recipe

    cfg = get_recipe("fashion-fast").replace(epochs=epochs, seed=seed, out_dir=out_dir, progress="line",
                                             threads=threads)
    clock = EpochClock()
    result = fit(cfg, callbacks=[clock])
    wall = time.perf_counter() - clock.t0
    train_s = sum(r["epoch_time_s"] for r in result.history)
    seen = sum(r["epoch_time_s"] * r["train_img_per_s"] for r in result.history)
    hit = next(((e, t) for e, t, acc in clock.rows if acc is not None and acc >= 0.93), None)
    return {"img_s": seen / train_s, "train_s": train_s, "wall_s": wall, "top1": result.final["top1"],
            "top1_no_tta": result.final.get("top1_no_tta"), "epochs": clock.rows, "hit93": hit, "cfg": cfg}


def run_tutorial(cfg, epochs: int, seed: int, workers: int) -> dict:
    """The PyTorch tutorial pipeline with cfg's model and optimizer settings (fp32, default layout)."""
    from torch import nn
    from torchvision import transforms

    from cnnlab.data import load_dataset
    from cnnlab.models import create_model

    t_start = time.perf_counter()
    train, test = load_dataset(cfg.data, "train"), load_dataset(cfg.data, "test")
    mean, std = train.mean, train.std
    pad = int(cfg.augment.split("crop:")[1].split(",")[0]) if "crop:" in cfg.augment else 4
    tf_train = transforms.Compose([transforms.RandomCrop(28, padding=pad), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), transforms.Normalize(mean, std)])
    tf_test = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    g = torch.Generator().manual_seed(seed)
    train_dl = torch.utils.data.DataLoader(TutorialFashionMNIST(train.images, train.labels, tf_train),
                                           batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                           generator=g)
    test_dl = torch.utils.data.DataLoader(TutorialFashionMNIST(test.images, test.labels, tf_test),
                                          batch_size=cfg.eval_batch_size, num_workers=workers)
    torch.manual_seed(seed)
    model = create_model(cfg.model, num_classes=10, in_chans=1, img_size=28)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    exempt = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": exempt, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=epochs, steps_per_epoch=len(train_dl),
                                                pct_start=cfg.onecycle_pct, div_factor=cfg.onecycle_div,
                                                final_div_factor=cfg.onecycle_final_div)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    train_s, seen = 0.0, 0
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in train_dl:
            loss = criterion(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen += y.shape[0]
        train_s += time.perf_counter() - t0
        print(f"  tutorial epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}, "
              f"{seen / train_s:,.0f} img/s so far", flush=True)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_dl:
            correct += int((model(x).argmax(1) == y).sum())
    return {"img_s": seen / train_s, "train_s": train_s, "wall_s": time.perf_counter() - t_start,
            "top1": correct / len(test)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 epoch each (no time-to-93 %%)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs for both (default: the recipe's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers of the tutorial pipeline")
    ap.add_argument("--skip-tutorial", action="store_true", help="only time the recipe")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads for both [2: the recorded numbers'; 0: torch's default, all physical cores]")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from cnnlab.train import get_recipe

    epochs = 1 if args.quick else (args.epochs or get_recipe("fashion-fast").epochs)
    print(f"bench_train: fastnet on Fashion-MNIST, {epochs} epoch(s) per pipeline, {torch.get_num_threads()} "
          f"threads; {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print("(a) cnnlab fashion-fast recipe", flush=True)
        a = run_cnnlab(epochs, args.seed, os.path.join(tmp, "run"), args.threads)
    print(f"    {load_average()}")
    b = None
    if not args.skip_tutorial:
        print(f"(b) PyTorch tutorial pipeline (Dataset + DataLoader(workers={args.workers}) + transforms, fp32)",
              flush=True)
        threads = torch.get_num_threads()
        b = run_tutorial(a["cfg"], epochs, args.seed, args.workers)
        print(f"    {load_average()}, {threads} torch threads")

    print("\n== results (training img/s = images / seconds in the training loop)")
    print(f"(a) cnnlab   : {a['img_s']:8,.0f} img/s  train {a['train_s']:6.1f} s  wall {a['wall_s']:6.1f} s  "
          f"test top-1 {100 * a['top1']:.2f}% (flip TTA; {100 * (a['top1_no_tta'] or a['top1']):.2f}% without)")
    if b is not None:
        print(f"(b) tutorial : {b['img_s']:8,.0f} img/s  train {b['train_s']:6.1f} s  wall {b['wall_s']:6.1f} s  "
              f"test top-1 {100 * b['top1']:.2f}%")
        print(f"ratio (a)/(b): {a['img_s'] / b['img_s']:.2f}x training throughput, "
              f"{b['wall_s'] / a['wall_s']:.2f}x wall (goal >= 2x)")
    for e, t, acc in a["epochs"]:
        print(f"    recipe epoch {e}: {t:6.1f} s wall, test top-1 {100 * acc:.2f}% (no TTA, logging only)")
    if a["hit93"] is not None:
        print(f"time-to-93 %: {a['hit93'][1]:.1f} s wall (epoch {a['hit93'][0]}, no TTA)")
    else:
        print(f"time-to-93 %: not reached per epoch without TTA; final {100 * a['top1']:.2f}% with TTA after "
              f"{a['wall_s']:.1f} s wall" + (" (--quick: 1 epoch only)" if args.quick else ""))
    print(f"final {load_average()}")


if __name__ == "__main__":
    main()
