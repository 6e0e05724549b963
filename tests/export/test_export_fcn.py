"""Exporting FCNs: the sidecar records the real output map [1, K, H, W]; verification uses outputs that depend on
the input (an FCN's zero-initialised score layers make every output 0, which any export reproduces), so an export
that differs from PyTorch fails -- for a zoo name and for a segmentation run directory."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.errors import ExportError
from cnnlab.export import export_model
from cnnlab.models import create_model

ort = pytest.importorskip("onnxruntime")


def test_fcn_by_name_records_its_output_map_and_verifies_input_dependent_outputs(tmp_path):
    r = export_model("fcn8s_fastnet", tmp_path / "fcn.onnx", weights="none", opset=17, latency_runs=0)
    side = json.loads(r.sidecar.read_text())
    assert side["input"]["shape"] == [1, 1, 128, 128] and side["output"]["shape"] == [1, 11, 128, 128]
    assert "per pixel" in side["output"]["meaning"]
    v = side["verification"]
    assert "randomised" in v["weights"] and v["output_std"] > 1e-3  # the check compared outputs that vary
    # the written file holds the model's own (zero) score layers: its output is the untrained FCN's, all 0
    x = torch.rand(1, 1, 128, 128)
    out = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert out.shape == (1, 11, 128, 128) and np.abs(out).max() == 0


class DriftingFCN(nn.Module):
    """An FCN whose eager forward scales its output by the call count: a trace bakes one count in, so the export
    differs from PyTorch -- but only where the output is not 0."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fcn = create_model("fcn8s_fastnet", num_classes=11, img_size=64)
        self.pretrained_cfg = self.fcn.pretrained_cfg
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fcn(x) * self.calls


def test_an_fcn_export_that_differs_from_pytorch_fails(tmp_path):
    with pytest.raises(ExportError, match="differs from PyTorch by up to"):
        export_model(DriftingFCN(), tmp_path / "d.pt", "torchscript", latency_runs=0)
    assert not (tmp_path / "d.pt").exists()


def test_segmentation_run_exports_its_trained_weights(tmp_path):
    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, fit

    scenes = "fashion-scenes:size=64,max_items=2,n_train=32,n_test=8"
    test = load_dataset(scenes, "test", data_dir=tmp_path)
    run = fit(TrainConfig(task="segmentation", model="fcn8s_fastnet", data=scenes, data_dir=str(tmp_path), epochs=1,
                          batch_size=16, optimizer="adam", lr=3e-3, progress="none", plots=False, tensorboard=False,
                          threads=1, out_dir=str(tmp_path / "run")))
    r = export_model(run.run_dir, tmp_path / "seg.onnx", opset=17, latency_runs=0)
    side = json.loads(r.sidecar.read_text())
    assert side["output"]["shape"] == [1, 11, 64, 64] and side["class_names"] == list(test.classes)
    assert side["verification"]["weights"] == "the model's own" and side["verification"]["output_std"] > 1e-3
    x = (test.images[:1].float() / 255 - test.mean[0]) / test.std[0]  # a real test scene, independently
    with torch.no_grad():
        ref = run.model.eval()(x).numpy()
    got = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert ref.std() > 1e-3
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
