"""The page's response time, as a person sees it: click -> result on the page, in headless Chromium.

(a) Zoo: inspect resnet50 at 224 px (layer table + totals; the ball chart follows in the same event);
(b) See inside: Grad-CAM on scikit-image's coffee.png with EfficientNet-Lite0 (top-k, then the CAM image).
Each is timed cold (first call: model build / weights load) and warm (repeat), beside the library call
itself (``inspect``, ``cam``) measured in the same process as the baseline. Usage:

    python benchmarks/bench_ui.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _click_until(page, button: str, ready: str) -> float:
    t0 = time.perf_counter()
    page.click(button)
    page.wait_for_function(ready, timeout=180_000)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import os
    import tempfile

    import skimage.data
    from playwright.sync_api import sync_playwright

    from cnnlab.analysis import inspect
    from cnnlab.train.hardware import cpu_info, load_average
    from cnnlab.ui import launch
    from cnnlab.viz import cam

    coffee = str(Path(skimage.data.__file__).parent / "coffee.png")
    port = _port()
    app = launch("127.0.0.1", port, tempfile.mkdtemp(), block=False, quiet=True)
    def shown(sel: str, text: str) -> str:
        return f"(document.querySelector('{sel}')?.innerText || '').includes({text!r})"

    times: dict[str, list[float]] = {"inspect": [], "cam": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"] if os.geteuid() == 0 else [])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        box = page.locator("#zoo-model input")
        for _ in range(args.repeats):  # a page shows a change: alternate with an untimed resnet18
            for name in ("resnet18", "resnet50"):
                box.click()
                box.fill(name)
                t = _click_until(page, "#zoo-inspect", shown("#zoo-totals", f"{name} at 3x224x224"))
                if name == "resnet50":
                    times["inspect"].append(t)
        page.get_by_role("tab", name="See inside").click()
        page.locator("#inside-image input[type=file]").set_input_files(coffee)
        page.wait_for_function("(() => { const i = document.querySelector('#inside-image img'); "
                               "return i && i.naturalWidth > 0; })()")
        target = page.locator("#inside-target textarea, #inside-target input").first
        for _ in range(args.repeats):  # the timed top-1 CAM first (cold: weights load), then an untimed "cup" one
            for cls in ("", "cup"):
                target.fill(cls)
                t = _click_until(page, "#inside-look", shown("#inside-cam-note", cls or "espresso"))
                if not cls:
                    times["cam"].append(t)
        browser.close()
    app.close()
    t0 = time.perf_counter()
    inspect("resnet50", (3, 224, 224))
    lib_inspect = time.perf_counter() - t0
    t0 = time.perf_counter()
    cam("efficientnet_lite0", coffee, "gradcam")
    lib_cam = time.perf_counter() - t0  # includes loading the weights (the page keeps them cached)
    print(f"CPU: {cpu_info()}; {load_average()}")
    for name, lib in (("inspect resnet50 @224", lib_inspect), ("top-k + Grad-CAM coffee.png", lib_cam)):
        ts = times["inspect" if name.startswith("inspect") else "cam"]
        warm = statistics.median(ts[1:]) if len(ts) > 1 else ts[0]
        print(f"{name:30s} page cold {ts[0]:6.2f} s, warm {warm:6.2f} s (median of {len(ts) - 1}); "
              f"library call {lib:6.2f} s; page/library (warm) {warm / lib:5.1f}x")


if __name__ == "__main__":
    main()
