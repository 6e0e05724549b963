import pytest
from PIL import Image


@pytest.fixture(scope="session")
def fashion_run(tmp_path_factory):
    """A run directory as `cnnlab train` writes it (fastnet_s, 1x28x28, Fashion-MNIST classes and
    statistics; untrained weights) and a real Fashion-MNIST test image (index 1: a pullover)."""
    from cnnlab.data import load_dataset
    from cnnlab.models import create_model
    from cnnlab.train.checkpoint import save_checkpoint

    test = load_dataset("fashion-mnist", split="test")
    model = create_model("fastnet_s")
    meta = {"model": "fastnet_s", "num_classes": 10, "in_chans": 1, "img_size": 28, "classes": list(test.classes),
            "mean": list(test.mean), "std": list(test.std), "model_kwargs": {}}
    run = tmp_path_factory.mktemp("fashion-run")
    save_checkpoint(run / "best.safetensors", meta, model.state_dict())
    image = run / "pullover.png"
    Image.fromarray(test.images[1, 0].numpy(), mode="L").save(image)
    return run, image, list(test.classes)


@pytest.fixture(scope="session")
def coffee():
    data = pytest.importorskip("skimage.data")
    from pathlib import Path

    return Path(data.__file__).parent / "coffee.png"
