"""``make demo``: the zoo, a real photo classified with real ImageNet weights, then a training run.

Run as ``python -m cnnlab.demo [--no-train]``.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from cnnlab._console import make_console
from cnnlab.errors import CnnlabError


def demo_photo() -> str:
    """A real photograph that ships offline with matplotlib (Grace Hopper, 1984 portrait)."""
    from matplotlib import cbook

    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def classify_photo(console: Console, model_name: str = "efficientnet_lite0") -> None:
    from cnnlab.models import create_model
    from cnnlab.predict import classify

    photo = demo_photo()
    model = create_model(model_name, weights="imagenet").eval()
    origin = model.pretrained_cfg["weights"]["origin"]
    console.print(f"\n[bold]{model_name}[/] with real ImageNet weights ({origin}) on {photo}:")
    for rank, (label, prob) in enumerate(classify(model, [photo], topk=5)[0], 1):
        console.print(f"  {rank}. {label:<28} {prob:6.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlab.demo")
    parser.add_argument("--no-train", action="store_true", help="skip the training run")
    args = parser.parse_args(argv)
    console = make_console()  # off a terminal: no mid-word wrapping of the photo path, no cut tables
    try:
        from cnnlab.zoo import print_zoo

        print_zoo()
        classify_photo(console)
        if not args.no_train:
            from cnnlab.train.demo import train_demo  # the headline Fashion-MNIST recipe

            train_demo(console)
    except CnnlabError as e:
        console.print(f"[red]demo: error:[/] {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
