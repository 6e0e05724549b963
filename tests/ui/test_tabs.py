"""The page's tab functions without a browser: each calls the library and returns what the page shows."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.analysis import inspect
from cnnlab.errors import ConfigError, DataError, UnknownModelError
from cnnlab.train.runlog import read_history_csv, write_history_csv
from cnnlab.train.runs import run_task
from cnnlab.ui import calculators, runs, zoo

HISTORY = [{"epoch": 1, "lr": 0.05, "train_loss": 0.9, "train_top1": 0.6, "val_loss": None, "val_top1": None,
            "val_top5": None, "test_loss": 0.7, "test_top1": 0.75, "test_top5": 0.98,
            "epoch_time_s": 3.5, "train_img_per_s": 100.0},
           {"epoch": 2, "lr": 0.05, "train_loss": 0.5, "train_top1": 0.8, "val_loss": None, "val_top1": None,
            "val_top5": None, "test_loss": 0.6, "test_top1": 0.81, "test_top5": 0.99,
            "epoch_time_s": 3.0, "train_img_per_s": 110.0}]


def make_run(path: Path, task: str = "classification", result: bool = True, **config) -> Path:
    """A run directory as fit() leaves it: config.yaml, metrics.csv and (finished) result.json."""
    import yaml

    path.mkdir(parents=True)
    cfg = {"task": task, "model": "lenet5", "data": "fashion-mnist", **config}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    write_history_csv(path / "metrics.csv", HISTORY)
    if result:
        (path / "result.json").write_text(json.dumps({"task": task, "best": {"epoch": 2, "metric": "test_top1",
                                                                               "value": 0.81},
                                                      "final": {"split": "test", "top1": 0.81, "n": 100}}))
    return path


# ------------------------------------------------------------------------------------------ zoo
def test_layer_table_is_cnnlab_inspect_row_for_row():
    rows, totals, s = zoo.layer_table("resnet18", 224, 3)
    ref = inspect("resnet18", (3, 224, 224), depth=3)
    assert len(rows) == len(ref.visible_rows(3)) == 69
    assert rows[0] == ["conv1", "Conv2d", "64x112x112", "9,408", "118,013,952", "7", "2", "3,136.0"]
    assert [r[3] for r in rows] == [f"{r.params:,}" for r in ref.visible_rows(3)]
    assert rows[5][0] == "\u00a0\u00a0layer1.0"  # depth 2, indented with spaces HTML keeps
    assert "11,689,512 parameters" in totals and "1.81 GMACs" in totals and "receptive field 435 px" in totals
    assert len(zoo.layer_table("resnet18", 0, -1)[0]) == len(ref.rows)  # size 0: the model's own; depth -1: all


def test_zoo_search_family_and_one_line_errors():
    assert zoo.find_models("resnet1*", "ResNet") == ["resnet101", "resnet152", "resnet18"]
    assert "resnet110" in zoo.find_models("resnet1*")  # the CIFAR ResNet, another family
    assert "resnet18" in zoo.find_models("NET18") and zoo.find_models("zzz") == []
    assert set(zoo.find_models("", "VGG")) >= {"vgg11", "vgg16_bn"}
    assert zoo.families()[0] == zoo.ALL_FAMILIES
    with pytest.raises(UnknownModelError, match="unknown model 'resnet999'"):
        zoo.layer_table("resnet999")
    with pytest.raises(UnknownModelError, match="no model chosen"):
        zoo.layer_table("  ")
    with pytest.raises(ConfigError, match="at least"):
        zoo.layer_table("resnet18", 8)


def test_compare_side_by_side_states_the_ratios():
    md = zoo.compare_markdown("resnet18", "resnet50", 224)
    assert "| resnet18 | 3x224x224 | 11,689,512 |" in md and "| resnet50 | 3x224x224 | 25,557,032 |" in md
    assert "**2.19x** the parameters" in md  # 25,557,032 / 11,689,512
    assert "published top-1 +6.4 points" in md  # 76.13 - 69.76 (torchvision's figures)


def test_ball_chart_highlights_the_chosen_model(tmp_path):
    from cnnlab.analysis import ball_chart, compare

    rows = compare(["resnet50", "mobilenet_v2"])
    plain = ball_chart(rows, tmp_path / "plain.png")
    lit = ball_chart(rows, tmp_path / "lit.png", highlight="mobilenet_v2")
    with Image.open(plain) as a, Image.open(lit) as b:
        reds = [sum(1 for r, g, bl, *_ in im.convert("RGB").getdata() if r > 180 and g < 120 and bl < 120)
                for im in (a, b)]
    assert reds[0] == 0 and reds[1] > 200  # only the highlighted ball (and its label box) is red
    path = zoo.ball_chart_for("lenet5", None, tmp_path)  # not among the landmarks: added, then named in the note
    assert path.is_file() and path.stat().st_size > 10_000


# ----------------------------------------------------------------------------------- calculators
def test_calculators_show_formula_and_cnnlab_calc_result():
    conv = calculators.conv_form(227.0, 227.0, 3.0, 11.0, 4.0, 0.0, 96.0)  # AlexNet conv1 (CS231n)
    assert "W2 = (W1 - F + 2P)/S + 1" in conv and "55x55x96" in conv and "34,944" in conv
    with pytest.raises(ConfigError, match="not an integer"):
        calculators.conv_form(224, 224, 3, 11, 4, 0, 96)  # (224 - 11)/4 + 1 = 54.25
    with pytest.raises(ConfigError, match="positive integer"):
        calculators.stack_form(3.5, 3, 64)
    assert "27*C^2" not in calculators.stack_form(3, 3, 64) and "3*9*C^2" in calculators.stack_form(3, 3, 64)
    assert "ratio       1/N + 1/D_K^2 = 1/512 + 1/9 = 0.1131" in calculators.depthwise_form(3, 512, 512, 14)
    ex = calculators.calc.BOTTLENECK_EXAMPLES["resnet"]
    md = calculators.bottleneck_form("resnet", *ex.values())
    assert "1x1 256->64, 3x3 64->64, 1x1 64->256" in md


# ------------------------------------------------------------------------------------------ runs
def test_history_csv_round_trip(tmp_path):
    write_history_csv(tmp_path / "m.csv", HISTORY)
    back = read_history_csv(tmp_path / "m.csv")
    assert back == HISTORY and isinstance(back[0]["epoch"], int)


def test_runs_table_reads_what_fit_leaves(tmp_path):
    from cnnlab.train.recipes import RECIPES

    make_run(tmp_path / "a", **RECIPES["lenet5-fashion"])
    make_run(tmp_path / "group" / "b", result=False, lr=0.123)
    make_run(tmp_path / "seg", task="segmentation")
    (tmp_path / "a" / "tb").mkdir()
    (tmp_path / "a" / "tb" / "metrics.csv").write_text("epoch\n")  # TensorBoard's folder is no run
    (tmp_path / "empty").mkdir()
    table = {r[0]: r for r in runs.runs_table(tmp_path)}
    assert set(table) == {"a", "group/b", "seg"}
    assert table["a"][1:7] == ["classification", "lenet5", "fashion-mnist", "lenet5-fashion",
                               "test_top1 0.8100 (epoch 2)", 2]
    assert table["a"][7] == 6.5  # wall: the epochs' times added
    assert table["group/b"][4] == "-"  # lr 0.123 is no recipe's
    assert table["group/b"][5] == "test_top1 0.8100 (epoch 2)"  # in progress: best so far from metrics.csv
    assert run_task(tmp_path / "seg") == "segmentation" and run_task(tmp_path / "empty") is None
    assert runs.runs_table(tmp_path / "missing") == []


def test_open_run_and_overlay(tmp_path):
    run = make_run(tmp_path / "a")
    r = runs.read_run(run)
    md = runs.run_summary_markdown(r)
    assert "lenet5 on fashion-mnist, 2 epochs, 6.5 s" in md and "top1 0.8100" in md
    curves = runs.run_curves(r, tmp_path)  # no curves.png: drawn from metrics.csv
    assert curves.parent == tmp_path and curves.stat().st_size > 10_000
    img = runs.overlay_curves([run, make_run(tmp_path / "b")])
    assert img.width > 500
    with pytest.raises(ConfigError, match="is not a run directory"):
        runs.read_run(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        runs.read_run(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no runs ticked"):
        runs.overlay_curves([])


# ------------------------------------------------------------------------------ inside, segment
def test_see_inside_inputs_fail_in_one_line(tmp_path):
    from cnnlab.ui import inside, segment

    assert Path(inside.sample_images()["coffee (scikit-image)"]).name == "coffee.png"
    assert "efficientnet_lite0" in inside.weighted_models()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        inside.open_image(str(bad))
    with pytest.raises(DataError, match="no image"):
        inside.open_image(None)
    seg = make_run(tmp_path / "seg", task="segmentation")
    with pytest.raises(ConfigError, match="is a segmentation run"):
        inside.load_source(str(seg))
    with pytest.raises(ConfigError, match="no model chosen"):
        inside.load_source("")
    cls = make_run(tmp_path / "cls")
    with pytest.raises(ConfigError, match="is a classification run"):
        segment.segment_scene(str(cls), inside.sample_images()["coffee (scikit-image)"])
    with pytest.raises(ConfigError, match="no segmentation run chosen"):
        segment.segment_scene("", "x.png")
    assert segment.segmentation_runs(tmp_path) == [str(seg)]


@pytest.mark.slow
def test_top_classes_and_cam_on_coffee_with_efficientnet_lite0():
    from cnnlab.ui import inside

    coffee = inside.sample_images()["coffee (scikit-image)"]
    top = inside.top_classes("efficientnet_lite0", coffee, 3)
    assert list(top)[0] == "espresso" and top["espresso"] > 0.8
    img, caption = inside.cam_figure("efficientnet_lite0", coffee, "gradcam")
    assert img.width > 400 and "gradcam for **espresso**" in caption


# ------------------------------------------------------------------------------ app and command
def test_errors_reach_the_page_as_one_line():
    gr = pytest.importorskip("gradio")
    from cnnlab.ui.app import readable

    with pytest.raises(gr.Error) as e:
        readable(zoo.layer_table)("resnet999")
    assert e.value.message.startswith("unknown model 'resnet999'") and "\n" not in e.value.message
    with pytest.raises(gr.Error, match=r"internal error \(ZeroDivisionError\)"):
        readable(lambda: 1 / 0)()


def test_long_work_runs_in_the_queue_without_blocking_other_tabs(tmp_path):
    pytest.importorskip("gradio")
    from cnnlab.ui import build_app

    app = build_app(str(tmp_path))
    ids = {b.elem_id: i for i, b in app.blocks.items() if getattr(b, "elem_id", None)}
    clicks = {name: next(f for f in app.fns.values() if (ids[name], "click") in f.targets)
              for name in ("zoo-inspect", "inside-look", "runs-refresh")}
    assert all(f.queue for f in clicks.values())  # queued: progress shown, the HTTP worker never blocked
    assert len({f.concurrency_id for f in clicks.values()}) == 3  # one slot per tab: a CAM never holds up inspect
    assert clicks["zoo-inspect"].tracks_progress and clicks["zoo-inspect"].show_progress == "full"


def test_theme_uses_system_fonts_only():
    pytest.importorskip("gradio")
    from cnnlab.ui.app import theme

    t = theme()
    css = t._get_theme_css()
    assert "system-ui" in css and "@import" not in css and "@font-face" not in css
    assert not re.search(r"url\(['\"]?(https?:)?//", css)  # only data: URIs (the checkbox/radio SVGs)
    assert t._stylesheets == []  # a GoogleFont would add its fonts.googleapis.com sheet here


@pytest.mark.slow  # a fresh interpreter imports every command module (~20 s on a loaded 2-core box)
def test_cnnlab_help_does_not_import_gradio_and_ui_without_it_is_one_line(monkeypatch, capsys):
    code = "import sys; from cnnlab.cli import build_parser; build_parser(); print('gradio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    import importlib.util

    from cnnlab.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["ui", "--port", "7999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "cnnlab ui: error: the page needs Gradio: pip install 'cnnlab[ui]'"


# ------------------------------------------------------------------------------------------ detect
def test_detect_scene_is_detect_predict_and_bad_inputs_are_one_line(ui_runs, tmp_path):
    from cnnlab.detection.predict import detect_images
    from cnnlab.ui import detect

    det, scene = ui_runs / "det-tiny", ui_runs.parent / "scene.png"
    assert detect.detection_runs(ui_runs) == [str(det)]
    picture, rows, note = detect.detect_scene(str(det), str(scene), 0.0, show_proposals=True)
    (want,) = detect_images(det, [scene], show="proposals", score_thresh=0.0, device="cpu")
    assert rows == [[d["class"], d["score"], *d["box"]] for d in want["detections"]] and len(rows) > 0
    assert picture.size == (256, 256) and f"{len(rows)} detections with score > 0.00 on a 64x64 image" in note
    assert f"{want['proposals']} proposals drawn" in note
    seg = make_run(tmp_path / "seg", task="segmentation")
    with pytest.raises(ConfigError, match="is a segmentation run; the Detect tab needs a detection run"):
        detect.detect_scene(str(seg), str(scene))
    with pytest.raises(ConfigError, match="no detection run chosen"):
        detect.detect_scene("", str(scene))
    with pytest.raises(DataError, match="no image"):
        detect.detect_scene(str(det), None)
    with pytest.raises(ConfigError, match=r"score threshold must be in \[0, 1\), got 1.5"):
        detect.detect_scene(str(det), str(scene), 1.5)
