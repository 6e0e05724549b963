"""R-CNN vs SPPNet test-time speed on the same proposals (He et al. 2014, Table 3/4: SPPNet's conv layers run once
per image, R-CNN's once per warped proposal; the papers report 24-102x at ~2,000 proposals per image).

Both methods read the *same* weights (a :func:`~cnnlab.detection.rcnn.fit_rcnn` run; ``load_rcnn(run, method)``)
and the same cached selective-search proposals of the same test scenes; the timed part is a forward pass from
the normalised image batch to the per-class NMS output (features + SVMs + box regression + NMS), proposals
excluded. Without ``--run`` a small R-CNN is fitted first (``--train`` scenes, 2 epochs). The conv work R-CNN
repeats is ``proposals x 28^2`` pixels against SPPNet's ``128^2``: ~1.8x at the ~37 proposals of a 128-px scene,
so the speed-up here is bounded far below the papers' (2,000 proposals x 227^2 against ~5 scales of ~688^2). Usage:

    python benchmarks/bench_rcnn_sppnet.py [--run RUN_DIR] [--scenes 100] [--batch 1] [--threads 1] [--repeats 3]
        [--mode quality]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cnnlab.data import load_dataset
from cnnlab.detection.proposals import ProposalSettings, proposals_for
from cnnlab.detection.rcnn import fit_rcnn, load_rcnn
from cnnlab.train.config import TrainConfig
from cnnlab.train.hardware import cpu_info, load_average


def _time(model, x, props, batch: int, repeats: int) -> float:
    """Median over ``repeats`` passes of the seconds per image."""
    model(x[:batch], proposals=props[:batch])  # warm-up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            model(x[i:i + batch], proposals=props[i:i + batch])
        runs.append((time.perf_counter() - t0) / len(x))
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", help="a fit_rcnn run directory (default: fit a small R-CNN first)")
    ap.add_argument("--data", default="fashion-scenes")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--scenes", type=int, default=100, help="test scenes timed")
    ap.add_argument("--train", type=int, default=48, help="training scenes when fitting first")
    ap.add_argument("--batch", type=int, default=1, help="images per forward pass")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", choices=("fast", "quality", "single"), help="selective search mode (default: the run's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run
    if run is None:
        cfg = TrainConfig(task="detection", model="rcnn", data=f"{args.data}:n_train={args.train}",
                          data_dir=args.data_dir, epochs=2, batch_size=64, lr=0.002, optimizer="adamw",
                          threads=args.threads, out_dir="runs/bench-rcnn-sppnet")
        run = fit_rcnn(cfg, "rcnn").run_dir
    rcnn, spp = load_rcnn(run, "rcnn"), load_rcnn(run, "sppnet")
    test = load_dataset(args.data, "test", data_dir=args.data_dir)
    test = test.subset(torch.arange(min(args.scenes, len(test))))
    settings = rcnn.proposal_settings if args.mode is None else ProposalSettings(mode=args.mode)
    props, info = proposals_for(test.images, settings)
    mean, std = torch.tensor(test.mean).view(1, -1, 1, 1), torch.tensor(test.std).view(1, -1, 1, 1)
    x = (test.images.float() / 255 - mean) / std
    n_props = sum(map(len, props)) / len(props)
    print(f"CPU: {cpu_info()}; threads {args.threads}; load average before: {load_average()}")
    print(f"{len(test)} test scenes {tuple(test.images.shape[-2:])}, {n_props:.1f} proposals/image "
          f"(selective search {info['settings']['mode']}, cached: {info['cached']}), batch {args.batch}")
    with torch.no_grad():
        t_rcnn = _time(rcnn, x, props, args.batch, args.repeats)
        t_spp = _time(spp, x, props, args.batch, args.repeats)
    print(f"{'method':8s} {'ms/image':>9s} {'images/s':>9s}")
    for name, t in (("R-CNN", t_rcnn), ("SPPNet", t_spp)):
        print(f"{name:8s} {1e3 * t:9.2f} {1 / t:9.1f}")
    print(f"SPPNet speed-up over R-CNN: {t_rcnn / t_spp:.1f}x (papers: 24-102x at ~2,000 proposals of 227-px warps)")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
