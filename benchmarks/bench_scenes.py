"""Dense data: Fashion-MNIST scene generation time, and DenseLoader vs torchvision's per-sample v2 transforms.

(a) ``make_scenes``'s generator: CPU seconds for ``--scenes`` 128x128 training scenes (one thread;
    the target is well under a minute for 10,000);
(b) ``cnnlab.data.DenseLoader`` with joint ``crop:16,flip`` augmentation of image, mask and boxes, against
    (c) the same augmentation as torchvision's ``transforms.v2`` does it: a Dataset whose ``__getitem__``
    wraps one sample as ``tv_tensors`` (Image, Mask, BoundingBoxes) and runs ``Compose([Pad(16, fill=
    {Image: 0, Mask: 255}), RandomCrop(128), RandomHorizontalFlip(), SanitizeBoundingBoxes()])``, batched by a
    ``DataLoader`` with a list-collate for the boxes. Both produce normalised float batches + int64 masks.

    python benchmarks/bench_scenes.py [--scenes 10000] [--batch-size 32] [--threads 1] [--slow-batches 40]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import torch


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rate(batches, limit: int) -> float:
    n, t0 = 0, time.perf_counter()
    for i, (x, _) in enumerate(batches):
        n += x.shape[0]
        if i + 1 >= limit:
            break
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--slow-batches", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from cnnlab.data import DenseLoader
    from cnnlab.data.scenes import SceneConfig, generate_scenes, load_items, make_scenes

    items = load_items("train", None, False)
    c0, t0 = _cpu(), time.perf_counter()
    generate_scenes("train", args.scenes, SceneConfig(), items)
    gen_cpu, gen_wall = _cpu() - c0, time.perf_counter() - t0
    print(f"(a) generate {args.scenes} scenes 128x128: {gen_cpu:.1f} s CPU ({gen_wall:.1f} s wall), "
          f"{args.scenes / gen_cpu:.0f} scenes/CPU-s")

    ds = make_scenes("train", 2048, data_dir=tempfile.mkdtemp())
    fast = DenseLoader(ds, batch_size=args.batch_size, augment="crop:16,flip", seed=0)
    list(fast.iter_from(len(fast) - 2))
    fast_rate = max(_rate(fast, len(fast)) for _ in range(2))

    mean, std = ds.mean[0], ds.std[0]
    tf = v2.Compose([v2.Pad(16, fill={tv_tensors.Image: 0, tv_tensors.Mask: 255}), v2.RandomCrop(128),
                     v2.RandomHorizontalFlip(), v2.SanitizeBoundingBoxes(labels_getter=lambda s: s[1]["labels"])])

    class TorchvisionScenes(torch.utils.data.Dataset):
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            img = tv_tensors.Image(ds.images[i])
            target = {"mask": tv_tensors.Mask(ds.masks[i]), "labels": ds.labels[i],
                      "boxes": tv_tensors.BoundingBoxes(ds.boxes[i], format="XYXY", canvas_size=(128, 128))}
            img, target = tf(img, target)
            return (img.float() / 255 - mean) / std, target

    def collate(batch):
        x = torch.stack([b[0] for b in batch])
        return x, {"mask": torch.stack([b[1]["mask"] for b in batch]).long(),
                   "boxes": [b[1]["boxes"] for b in batch], "labels": [b[1]["labels"] for b in batch]}

    slow = torch.utils.data.DataLoader(TorchvisionScenes(), batch_size=args.batch_size, shuffle=True,
                                       collate_fn=collate)
    slow_rate = _rate(slow, args.slow_batches)
    print(f"(b) DenseLoader crop:16,flip      : {fast_rate:9.0f} img/s")
    print(f"(c) torchvision v2 per-sample     : {slow_rate:9.0f} img/s")
    print(f"speed-up (b)/(c): {fast_rate / slow_rate:.1f}x  (batch {args.batch_size}, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
