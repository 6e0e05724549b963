"""The page under test: a tiny classification run and a tiny segmentation run in a temporary runs
folder, the page served from this process on a free port, and a folder the screenshots are kept in."""

import os
import socket
from pathlib import Path

import pytest

SCENES = "fashion-scenes:size=64,max_items=2,n_train=32,n_test=16"


@pytest.fixture(scope="session")
def ui_runs(tmp_path_factory):
    """``runs/`` with ``lenet5-tiny`` (2 epochs on 256 Fashion-MNIST images), ``fcn-tiny`` and ``det-tiny``
    (a small Faster R-CNN; 1 epoch on 32 scenes each), and ``scene.png``, a test scene to upload."""
    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("ui-runs")
    runs = root / "runs"
    common = dict(batch_size=32, optimizer="adam", lr=3e-3, progress="none", tensorboard=False, threads=1)
    train = load_dataset("fashion-mnist", "train").subset(range(256))
    test = load_dataset("fashion-mnist", "test").subset(range(256))
    fit(TrainConfig(model="lenet5", data="fashion-mnist", epochs=2, out_dir=str(runs / "lenet5-tiny"), **common),
        train_data=train, test_data=test)
    scenes = root / "scenes"
    fit(TrainConfig(task="segmentation", model="fcn8s_fastnet", data=SCENES, data_dir=str(scenes), epochs=1,
                    eval_batch_size=16, out_dir=str(runs / "fcn-tiny"), **{**common, "batch_size": 16}),
        train_data=load_dataset(SCENES, "train", data_dir=scenes),
        test_data=load_dataset(SCENES, "test", data_dir=scenes))
    fit(TrainConfig(task="detection", model="faster_rcnn_fastnet", model_kwargs={"widths": [16, 16, 32, 32]},
                    data=SCENES, data_dir=str(scenes), epochs=1, eval_batch_size=16, out_dir=str(runs / "det-tiny"),
                    **{**common, "batch_size": 16}))
    from PIL import Image

    test = load_dataset(SCENES, "test", data_dir=scenes)
    Image.fromarray(test.images[0].permute(1, 2, 0).squeeze(-1).numpy()).save(root / "scene.png")
    return runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ui_url(request):
    """The page served in a thread of this process (``cnnlab ui --runs RUNS --port P``'s launch)."""
    pytest.importorskip("gradio")  # before the runs are trained: no page, nothing to train for
    from cnnlab.ui import launch

    ui_runs = request.getfixturevalue("ui_runs")
    port = free_port()
    app = launch("127.0.0.1", port, str(ui_runs), block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the tests keep their screenshots: $CNNLAB_SCREENSHOTS, default runs/ui-screenshots (git-ignored)."""
    folder = Path(os.environ.get("CNNLAB_SCREENSHOTS", "runs/ui-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
