"""``cnnlab ui``: the page, a Gradio Blocks app over the zoo, the inspector, predictions, CAMs,
segmentation, runs and the calculators.

Each tab's work is a plain function in :mod:`cnnlab.ui.zoo`, :mod:`~cnnlab.ui.inside`,
:mod:`~cnnlab.ui.segment`, :mod:`~cnnlab.ui.runs` and :mod:`~cnnlab.ui.calculators` that calls the
library and returns data; this module only lays out the components and wires them. The page works
offline: analytics off, system fonts (no web fonts), served on 127.0.0.1 unless told otherwise.
Every event runs in Gradio's queue with its own concurrency slot, so a slow CAM never blocks the
inspector; a :class:`cnnlab.errors.CnnlabError` becomes one line on the page (``gr.Error``).
"""

from __future__ import annotations

import functools
import os
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no usage pings

import gradio as gr

from cnnlab.analysis import calc
from cnnlab.errors import CnnlabError
from cnnlab.ui import calculators, detect, inside, runs, segment, zoo
from cnnlab.viz import METHODS as CAM_METHODS

TITLE = "cnnlab: the laboratory for classic CNNs"


def theme() -> gr.themes.Base:
    """Gradio's default look with the system's fonts: nothing fetched from a font CDN."""
    return gr.themes.Default(font=[gr.themes.Font("system-ui"), "sans-serif"],
                             font_mono=[gr.themes.Font("ui-monospace"), "monospace"])


def readable(fn: Callable) -> Callable:
    """Wrap a tab function so any failure reaches the page as one line, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except CnnlabError as e:
            raise gr.Error(str(e), duration=None, print_exception=False) from None
        except Exception as e:  # a bug, not bad input: the line says so, the log keeps the traceback
            traceback.print_exc()
            raise gr.Error(f"internal error ({type(e).__name__}): {e}", duration=None, print_exception=False) from None
    return wrapper


# ------------------------------------------------------------------------------------------ Zoo
def _zoo_tab(work: Path) -> tuple[Callable, list, list]:
    """The Zoo tab; returns (inspect_model, its inputs, its outputs) for the page's load event."""
    with gr.Row():
        query = gr.Textbox(label="search", placeholder="resnet, mobile*, efficientnet_b?", scale=2)
        family = gr.Dropdown(zoo.families(), value=zoo.ALL_FAMILIES, label="family", scale=1)
    with gr.Row():
        model = gr.Dropdown(zoo.find_models(), value="resnet18", label="model", allow_custom_value=True,
                            elem_id="zoo-model", scale=2)
        size = gr.Number(224, label="input size (px; 0 = the model's own)", precision=0, minimum=0, scale=1)
        depth = gr.Slider(-1, 8, value=3, step=1, label="depth (-1 = every module)", scale=1)
        go = gr.Button("Inspect", variant="primary", elem_id="zoo-inspect", scale=0)
    totals = gr.Markdown(elem_id="zoo-totals")
    table = gr.Dataframe(headers=zoo.LAYER_HEADERS, interactive=False, wrap=False, max_height=520,
                         elem_id="zoo-layers", label="layers (cnnlab inspect)", show_search="search")
    chart = gr.Image(label="ball chart: this model among the landmark nets", type="filepath", elem_id="zoo-chart",
                     height=480)
    with gr.Accordion("Side by side (cnnlab compare)", open=False):
        with gr.Row():
            second = gr.Dropdown(zoo.find_models(), value="resnet50", label="second model", allow_custom_value=True)
            compare_btn = gr.Button("Compare", elem_id="zoo-compare", scale=0)
        compared = gr.Markdown(elem_id="zoo-compared")

    @readable
    def inspect_model(name, side, deep, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        progress(0.1, desc=f"inspecting {name}")
        rows, md, _ = zoo.layer_table(name, side or None, int(deep))
        progress(0.6, desc="ball chart")
        path = zoo.ball_chart_for(name, side or None, work)
        return md, gr.Dataframe(value=rows, headers=zoo.LAYER_HEADERS), str(path)

    @readable
    def refilter(text, fam):
        names = zoo.find_models(text, fam)
        return gr.Dropdown(choices=names, value=names[0] if names else None)

    query.change(refilter, [query, family], model, queue=False)
    family.change(refilter, [query, family], model, queue=False)
    go.click(inspect_model, [model, size, depth], [totals, table, chart], concurrency_id="zoo")
    model.select(inspect_model, [model, size, depth], [totals, table, chart], concurrency_id="zoo")
    compare_btn.click(readable(lambda a, b, s: zoo.compare_markdown(a, b, s or None)), [model, second, size],
                      compared, concurrency_id="compare")
    return inspect_model, [model, size, depth], [totals, table, chart]


# ----------------------------------------------------------------------------------- See inside
def _inside_tab(app: gr.Blocks, runs_dir: Path) -> None:
    samples = inside.sample_images()
    sources = inside.sources(runs_dir)
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(type="filepath", label="image", sources=["upload", "clipboard"], height=300,
                             elem_id="inside-image")
            sample = gr.Dropdown(list(samples), value=None, label="or a sample photo (scikit-image, matplotlib)")
        with gr.Column(scale=1):
            source = gr.Dropdown(sources, value=sources[0] if sources else None, allow_custom_value=True,
                                 label="model with ImageNet weights, or a run directory", elem_id="inside-source")
            topk = gr.Slider(1, 10, value=5, step=1, label="top-k")
            method = gr.Dropdown(list(CAM_METHODS), value="gradcam", label="CAM method")
            target = gr.Textbox(label="CAM class (name or index; empty = top-1)", elem_id="inside-target")
            look = gr.Button("Classify + CAM", variant="primary", elem_id="inside-look")
    with gr.Row():
        top = gr.Label(label="top-k (cnnlab predict)", elem_id="inside-top")
        with gr.Column():
            cam_img = gr.Image(label="class activation map (cnnlab viz cam)", type="pil", elem_id="inside-cam",
                               interactive=False)
            cam_note = gr.Markdown(elem_id="inside-cam-note")
    with gr.Accordion("First-layer filters and feature maps (cnnlab viz filters|features)", open=False):
        with gr.Row():
            layer = gr.Dropdown([], value=None, allow_custom_value=True, elem_id="inside-layer",
                                label="conv layer (empty: the first for filters; first/middle/last for features)")
            filt_btn = gr.Button("Filters", elem_id="inside-filters")
            feat_btn = gr.Button("Feature maps", elem_id="inside-features")
        viz_img = gr.Image(label="filters / feature maps", type="pil", interactive=False, elem_id="inside-viz")
        viz_note = gr.Markdown(elem_id="inside-viz-note")

    sample.change(lambda k: samples.get(k), sample, image, queue=False)
    app.load(lambda v: gr.Dropdown(choices=inside.sources(runs_dir), value=v), source, source)

    def layer_choices(src):  # quiet: a bad source is reported once, when a button asks for it
        try:
            return gr.Dropdown(choices=inside.conv_layer_names(src), value=None)
        except CnnlabError:
            return gr.Dropdown(choices=[], value=None)

    source.change(layer_choices, source, layer, concurrency_id="inside")

    @readable
    def classify(src, img, k, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        progress(0.2, desc=f"loading {src}")
        inside.load_source(src)
        progress(0.6, desc="forward pass")
        return inside.top_classes(src, img, int(k))

    @readable
    def heat(src, img, how, cls, k, progress=gr.Progress()):  # noqa: B008 - Gradio's idiom
        progress(0.3, desc=f"{how} (forward + backward)")
        return inside.cam_figure(src, img, how, cls, int(k))

    look.click(classify, [source, image, topk], top, concurrency_id="inside").success(
        heat, [source, image, method, target, topk], [cam_img, cam_note], concurrency_id="inside")
    filt_btn.click(readable(lambda src, lay: inside.filters_figure(src, lay)), [source, layer], [viz_img, viz_note],
                   concurrency_id="inside")
    feat_btn.click(readable(lambda src, img, lay: inside.features_figure(src, img, lay)), [source, image, layer],
                   [viz_img, viz_note], concurrency_id="inside")


# -------------------------------------------------------------------------------- Segment, Detect
def _run_and_image(app: gr.Blocks, runs_dir: Path, list_runs: Callable[[Path], list[str]], task: str,
                   prefix: str, image_label: str, train_hint: str) -> tuple[gr.Dropdown, gr.Image]:
    """A run dropdown (refreshed on page load), an image upload and a sample-photo picker, in the current column;
    below the row, a hint when ``runs_dir`` holds no ``task`` run yet."""
    samples = inside.sample_images()
    found = list_runs(runs_dir)
    run = gr.Dropdown(found, value=found[0] if found else None, allow_custom_value=True,
                      label=f"{task} run (under {runs_dir})", elem_id=f"{prefix}-run")
    image = gr.Image(type="filepath", label=image_label, sources=["upload", "clipboard"], height=260,
                     elem_id=f"{prefix}-image")
    sample = gr.Dropdown(list(samples), value=None, label="or a sample photo")
    if not found:
        gr.Markdown(f"No {task} run under `{runs_dir}` yet: train one with `{train_hint}`, or type a run "
                    "directory above.")
    sample.change(lambda k: samples.get(k), sample, image, queue=False)
    app.load(lambda v: gr.Dropdown(choices=list_runs(runs_dir), value=v), run, run)
    return run, image


def _segment_tab(app: gr.Blocks, runs_dir: Path) -> None:
    gr.Markdown("A scene through a segmentation run's FCN (`cnnlab segment predict`): the image beside "
                "its predicted classes, and the share of pixels per class.")
    with gr.Row():
        with gr.Column():
            run, image = _run_and_image(app, runs_dir, segment.segmentation_runs, "segmentation", "segment", "scene",
                                        "cnnlab segment train --recipe scenes-fcn8s")
            go = gr.Button("Segment", variant="primary", elem_id="segment-go")
        with gr.Column():
            out = gr.Image(label="image | predicted classes", type="pil", interactive=False, height=340,
                           elem_id="segment-overlay")
            fractions = gr.Label(label="pixels per class", num_top_classes=8, elem_id="segment-fractions")
    go.click(readable(segment.segment_scene), [run, image], [out, fractions], concurrency_id="segment")


def _detect_tab(app: gr.Blocks, runs_dir: Path) -> None:
    gr.Markdown("An image through a detection run (`cnnlab detect predict`; R-CNN, SPPNet, Fast/Faster R-CNN or "
                "YOLO v1): the boxes with class and score, in the image's own pixels.")
    with gr.Row():
        with gr.Column():
            run, image = _run_and_image(app, runs_dir, detect.detection_runs, "detection", "detect", "image",
                                        "cnnlab detect train --recipe scenes-yolo")
            thresh = gr.Slider(0.0, 0.95, value=0.3, step=0.05, label="score threshold", elem_id="detect-thresh")
            proposals = gr.Checkbox(False, label="draw the proposals too (two-stage detectors)")
            go = gr.Button("Detect", variant="primary", elem_id="detect-go")
        with gr.Column():
            out = gr.Image(label="detections", type="pil", interactive=False, height=340, elem_id="detect-out")
            note = gr.Markdown(elem_id="detect-note")
            table = gr.Dataframe(headers=detect.DETECTION_HEADERS, interactive=False, elem_id="detect-table",
                                 label="detections (pixels of the image)")
    go.click(readable(detect.detect_scene), [run, image, thresh, proposals], [out, table, note],
             concurrency_id="detect")


# ----------------------------------------------------------------------------------------- Runs
def _runs_tab(runs_dir: Path, work: Path) -> tuple[Callable, gr.Textbox, list]:
    """The Runs tab; returns (list_runs, folder, its outputs) for the page's load event."""
    with gr.Row():
        folder = gr.Textbox(str(runs_dir), label="runs folder", elem_id="runs-folder", scale=3)
        refresh = gr.Button("Refresh", elem_id="runs-refresh", scale=0)
    table = gr.Dataframe(headers=runs.RUN_HEADERS, interactive=False, elem_id="runs-table", label="runs",
                         max_height=360)
    with gr.Row():
        chosen = gr.Dropdown([], label="open a run", elem_id="runs-open", scale=2)
        ticked = gr.CheckboxGroup([], label="tick runs to overlay their curves", elem_id="runs-ticked", scale=3)
        overlay_btn = gr.Button("Overlay", elem_id="runs-overlay", scale=0)
    summary = gr.Markdown(elem_id="runs-summary")
    curves = gr.Image(label="curves", type="filepath", interactive=False, elem_id="runs-curves")
    picture = gr.Image(label="confusion matrix / test predictions",
                       type="filepath", interactive=False, height=560, elem_id="runs-picture")
    with gr.Accordion("config.yaml", open=False):
        config = gr.Code(language="yaml", elem_id="runs-config")
    overlaid = gr.Image(label="curves overlaid", type="pil", interactive=False, elem_id="runs-overlaid")

    @readable
    def list_runs(path):
        rows = runs.runs_table(path)
        names = [r[0] for r in rows]
        return (gr.Dataframe(value=rows, headers=runs.RUN_HEADERS), gr.Dropdown(choices=names, value=None),
                gr.CheckboxGroup(choices=names, value=[]))

    @readable
    def open_run(path, name):
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        r = runs.read_run(Path(path) / name if name != Path(path).name else path)
        curve = runs.run_curves(r, work)
        text = (r.path / "config.yaml").read_text() if (r.path / "config.yaml").is_file() else ""
        pictures = runs.run_pictures(r)
        return runs.run_summary_markdown(r), str(curve) if curve else None, pictures[0][0] if pictures else None, text

    @readable
    def overlay(path, names):
        return runs.overlay_curves([Path(path) / n for n in names])

    refresh.click(list_runs, folder, [table, chosen, ticked], concurrency_id="runs")
    folder.submit(list_runs, folder, [table, chosen, ticked], concurrency_id="runs")
    chosen.change(open_run, [folder, chosen], [summary, curves, picture, config], concurrency_id="runs")
    overlay_btn.click(overlay, [folder, ticked], overlaid, concurrency_id="runs")
    return list_runs, folder, [table, chosen, ticked]


# ---------------------------------------------------------------------------------- Calculators
def _numbers(*fields: tuple[str, int], per_row: int = 3) -> list[gr.Number]:
    """Whole-number inputs, ``per_row`` to a row, so a form stays short."""
    out = []
    for i in range(0, len(fields), per_row):
        with gr.Row():
            out += [gr.Number(v, label=lab, precision=0, minimum=0, min_width=80) for lab, v in fields[i:i + per_row]]
    return out


def _form(fn: Callable, ins: list, elem: str, loads: list) -> None:
    """A form's Compute button and the result under it, and its (function, inputs, output) for the page's load."""
    button = gr.Button("Compute", elem_id=f"calc-{elem}-go")
    out = gr.Markdown(elem_id=f"calc-{elem}")
    button.click(readable(fn), ins, out)
    loads.append((fn, ins, out))


def _calculators_tab() -> list[tuple[Callable, list, gr.Markdown]]:
    """The four calculator forms; returns (function, inputs, output) of each for the page's load event."""
    loads: list = []
    with gr.Row():
        with gr.Column():
            gr.Markdown("#### One conv layer")
            ins = _numbers(("H", 227), ("W", 227), ("D (channels in)", 3), ("kernel F", 11), ("stride S", 4),
                           ("pad P", 0), ("filters K", 96), ("dilation", 1), ("groups", 1))
            _form(calculators.conv_form, ins, "conv", loads)
        with gr.Column():
            gr.Markdown("#### Stacked small convs")
            ins = _numbers(("kernel", 3), ("layers", 3), ("channels C", 64))
            _form(calculators.stack_form, ins, "stack", loads)
    with gr.Row():
        with gr.Column():
            gr.Markdown("#### Depthwise-separable conv")
            ins = _numbers(("kernel D_K", 3), ("channels in M", 512), ("channels out N", 512), ("map size D_F", 14),
                           per_row=4)
            _form(calculators.depthwise_form, ins, "depthwise", loads)
        with gr.Column():
            gr.Markdown("#### 1x1 bottleneck")
            ex = calc.BOTTLENECK_EXAMPLES["googlenet"]
            style = gr.Radio(list(calc.BOTTLENECK_EXAMPLES), value="googlenet", label="style")
            ins = [style, *_numbers(("channels in", ex["in_channels"]), ("reduced (mid)", ex["mid_channels"]),
                                    ("channels out", ex["out_channels"]), ("kernel", ex["kernel"]),
                                    ("map size", ex["size"]), per_row=5)]
            _form(calculators.bottleneck_form, ins, "bottleneck", loads)
            style.change(lambda s: [*calc.BOTTLENECK_EXAMPLES[s].values()], style, ins[1:], queue=False)
    return loads


# ------------------------------------------------------------------------------------------ app
def build_app(runs_dir: str | os.PathLike = "runs") -> gr.Blocks:
    """The page's Blocks: Zoo, See inside, Segment, Detect, Runs, Calculators."""
    runs_dir = Path(runs_dir)
    work = Path(tempfile.mkdtemp(prefix="cnnlab-ui-"))  # charts drawn for the page (served from here)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"## {TITLE}\nInspect the zoo, look inside a trained net, read your runs. "
                    "Everything runs on this machine; nothing is fetched from the network.")
        with gr.Tab("Zoo", id="zoo"):
            zoo_load = _zoo_tab(work)
        with gr.Tab("See inside", id="inside"):
            _inside_tab(app, runs_dir)
        with gr.Tab("Segment", id="segment"):
            _segment_tab(app, runs_dir)
        with gr.Tab("Detect", id="detect"):
            _detect_tab(app, runs_dir)
        with gr.Tab("Runs", id="runs"):
            list_runs, folder, run_outputs = _runs_tab(runs_dir, work)
        with gr.Tab("Calculators", id="calculators"):
            loads = _calculators_tab()
        app.load(*zoo_load, concurrency_id="zoo")  # the page opens on resnet18's table, not an empty tab
        app.load(list_runs, folder, run_outputs)
        for fn, ins, out in loads:
            app.load(readable(fn), ins, out, queue=False)
    app.cnnlab_work_dir = work
    return app


def launch(host: str = "127.0.0.1", port: int = 7860, runs_dir: str | os.PathLike = "runs", *,
           block: bool = True, quiet: bool = False) -> gr.Blocks:
    """Serve the page on ``host:port`` (localhost by default, no share link); ``block=False`` returns
    at once with the server running in a thread (tests)."""
    app = build_app(runs_dir)
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=quiet,
               theme=theme(), allowed_paths=[str(Path(runs_dir).resolve()), str(app.cnnlab_work_dir),
                                             *{str(Path(p).parent) for p in inside.sample_images().values()}],
               footer_links=[], show_error=True, ssr_mode=False, pwa=False, mcp_server=False,
               enable_monitoring=False)
    return app
