"""The page in a real browser (Debian Chromium driven by playwright): what a person would check.

Each test looks at one tab, keeps a screenshot (``screenshots`` fixture) and asserts that no request
left 127.0.0.1 (no CDN font or script, no analytics).
"""

import re

import pytest

from cnnlab.analysis import inspect

pytestmark = pytest.mark.usefixtures("ui_url")

TIMEOUT = 90_000  # ms; a loaded 2-core machine runs a 224 px CAM in seconds, never this long


def open_tab(page, url: str, tab: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name=tab).click()


def pick(page, elem_id: str, value: str) -> None:
    """Type ``value`` into a Gradio dropdown and take it (as a person picks from the list)."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")


LOADED_IMAGE = ("sel => { const i = document.querySelector(sel + ' img');"
                " return i && i.complete && i.naturalWidth > 0; }")


def natural_width(page, selector: str) -> int:
    """The natural width of the image in ``selector`` once it has loaded (0 would be a broken image)."""
    page.wait_for_function(LOADED_IMAGE, arg=selector, timeout=TIMEOUT)
    return page.evaluate("sel => document.querySelector(sel + ' img').naturalWidth", selector)


def wait_text(page, selector: str, text: str) -> str:
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text], timeout=TIMEOUT)
    return page.inner_text(selector)


def test_zoo_layer_table_and_totals_match_cnnlab_inspect(page, ui_url, screenshots):
    open_tab(page, ui_url, "Zoo")
    pick(page, "zoo-model", "resnet18")
    page.click("#zoo-inspect")
    totals = wait_text(page, "#zoo-totals", "resnet18 at 3x224x224")
    s = inspect("resnet18", (3, 224, 224), depth=3)
    assert s.total_params == 11_689_512
    assert f"{s.total_params:,} parameters" in totals
    rows = s.visible_rows()
    grid = page.locator("#zoo-layers [role=grid]")
    page.wait_for_function("document.querySelector('#zoo-layers [role=grid]')"
                           f".getAttribute('aria-rowcount') == '{len(rows) + 1}'", timeout=TIMEOUT)
    assert int(grid.get_attribute("aria-rowcount")) == len(rows) + 1  # the header row + one per module call
    first = page.locator("#zoo-layers [role=row][aria-rowindex=\"2\"] [role=gridcell]")
    cells = [c.strip() for c in first.all_inner_texts()]
    assert cells[:5] == ["conv1", "Conv2d", "64x112x112", f"{rows[0].params:,}", f"{rows[0].macs:,}"]
    assert natural_width(page, "#zoo-chart") > 400
    page.screenshot(path=screenshots / "zoo.png", full_page=True)
    assert page.external_requests == []


def test_a_bad_model_name_is_one_line_on_the_page(page, ui_url, screenshots):
    open_tab(page, ui_url, "Zoo")
    pick(page, "zoo-model", "resnet999")
    page.click("#zoo-inspect")
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=TIMEOUT)
    text = toast.inner_text()
    message = page.locator("[data-testid=toast-text]").first.inner_text().strip()
    assert message.startswith("unknown model 'resnet999'; did you mean resnet")
    assert "\n" not in message and "Traceback" not in text
    page.screenshot(path=screenshots / "error.png")
    assert page.external_requests == []


@pytest.mark.slow
def test_see_inside_finds_espresso_in_coffee_with_efficientnet_lite0(page, ui_url, screenshots):
    from pathlib import Path

    import skimage.data

    coffee = Path(skimage.data.__file__).parent / "coffee.png"
    open_tab(page, ui_url, "See inside")
    pick(page, "inside-source", "efficientnet_lite0")
    page.locator("#inside-image input[type=file]").set_input_files(str(coffee))
    natural_width(page, "#inside-image")  # the upload is shown before we ask
    page.click("#inside-look")
    wait_text(page, "#inside-top", "espresso")
    assert page.inner_text("#inside-top [data-testid=label-output-value]").strip() == "espresso"  # the top-1
    assert re.search(r"espresso\s+9\d%", page.inner_text("#inside-top"))  # 95 % at the time of writing
    assert natural_width(page, "#inside-cam") > 200
    wait_text(page, "#inside-cam-note", "espresso")
    page.screenshot(path=screenshots / "see-inside.png", full_page=True)
    page.get_by_text("First-layer filters and feature maps").click()
    pick(page, "inside-layer", "features.0.0")  # the stem conv (TF "same" padding for the TF weights)
    page.click("#inside-features")
    note = wait_text(page, "#inside-viz-note", "receptive field")
    assert "features.0.0 (Conv2dSame): output 32x112x112, receptive field 3 px, jump 2 px" in note
    assert natural_width(page, "#inside-viz") > 400
    page.screenshot(path=screenshots / "see-inside-features.png", full_page=True)
    assert page.external_requests == []


def test_runs_lists_the_tiny_runs_and_shows_curves(page, ui_url, ui_runs, screenshots):
    open_tab(page, ui_url, "Runs")
    table = wait_text(page, "#runs-table", "lenet5-tiny")
    assert "fcn-tiny" in table and "segmentation" in table
    pick(page, "runs-open", "lenet5-tiny")
    summary = wait_text(page, "#runs-summary", "lenet5-tiny")
    assert "lenet5 on fashion-mnist, 2 epochs" in summary
    assert natural_width(page, "#runs-curves") > 400
    assert natural_width(page, "#runs-picture") > 400  # the confusion matrix
    page.locator("#runs-ticked label", has_text="lenet5-tiny").click()
    page.locator("#runs-ticked label", has_text="fcn-tiny").click()
    page.click("#runs-overlay")
    assert natural_width(page, "#runs-overlaid") > 400
    page.screenshot(path=screenshots / "runs.png", full_page=True)
    assert page.external_requests == []


def test_calculators_show_the_textbook_results(page, ui_url, screenshots):
    open_tab(page, ui_url, "Calculators")
    conv = wait_text(page, "#calc-conv", "output")
    assert "55x55x96" in conv and "34,944" in conv  # AlexNet conv1 on 227x227x3 (CS231n)
    stack = page.inner_text("#calc-stack")
    assert "110,592 = 3*9*C^2" in stack and "200,704 = 49*C^2" in stack  # VGG §2.3: 27C² vs 49C² (C = 64)
    page.screenshot(path=screenshots / "calculators.png", full_page=True)
    assert page.external_requests == []


def test_segment_overlays_a_scene_with_the_tiny_fcn(page, ui_url, ui_runs, screenshots):
    from cnnlab.ui.inside import sample_images

    open_tab(page, ui_url, "Segment")
    pick(page, "segment-run", str(ui_runs / "fcn-tiny"))
    page.locator("#segment-image input[type=file]").set_input_files(sample_images()["chelsea the cat (scikit-image)"])
    natural_width(page, "#segment-image")
    page.click("#segment-go")
    assert natural_width(page, "#segment-overlay") == 2 * 64 + 2  # image | prediction at the run's 64 px
    assert "background" in page.inner_text("#segment-fractions")
    page.screenshot(path=screenshots / "segment.png", full_page=True)
    assert page.external_requests == []


def test_detect_draws_the_tiny_detectors_boxes_on_a_scene(page, ui_url, ui_runs, screenshots):
    from cnnlab.detection.predict import detect_images

    open_tab(page, ui_url, "Detect")
    pick(page, "detect-run", str(ui_runs / "det-tiny"))
    scene = ui_runs.parent / "scene.png"
    page.locator("#detect-image input[type=file]").set_input_files(str(scene))
    natural_width(page, "#detect-image")
    thresh = page.locator("#detect-thresh input[type=number]")
    thresh.fill("0")
    thresh.press("Enter")
    page.click("#detect-go")
    assert natural_width(page, "#detect-out") == 4 * 64  # the 64-px scene, upscaled x4 (min side 256) for labels
    (want,) = detect_images(ui_runs / "det-tiny", [scene], score_thresh=0.0, device="cpu")
    assert want["detections"]  # the tiny detector's boxes at threshold 0 (none pass 0.3 after one epoch)
    wait_text(page, "#detect-note", f"{len(want['detections'])} detections with score > 0.00 on a 64x64 image")
    page.screenshot(path=screenshots / "detect.png", full_page=True)
    assert page.external_requests == []
