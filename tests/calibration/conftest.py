"""Shared fixtures: a tiny MobileNetV2-like CNN exported to simplified FP32 ONNX (and OpenVINO IR),
small image folders, and calibration data from the default photographs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgecv.calibration.data import load_calibration
from edgecv.models.spec import InputSpec

RESOLUTION = 32


class TinyNet(nn.Module):
    """Stem, one inverted residual block (1×1 expand, depthwise 3×3, 1×1 project, residual Add),
    1×1 head, pooling, classifier: the patterns quantization has to get right in MobileNetV2."""

    def __init__(self, classes: int = 10):
        super().__init__()

        def cbr(cin, cout, k=1, stride=1, groups=1, act=True):
            layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
            return nn.Sequential(*layers, *([nn.ReLU6()] if act else []))

        self.stem = cbr(3, 8, 3, stride=2)
        self.block = nn.Sequential(cbr(8, 24), cbr(24, 24, 3, groups=24), cbr(24, 8, act=False))
        self.head = cbr(8, 32)
        self.classifier = nn.Linear(32, classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.block(x)
        x = self.head(x).mean((2, 3))
        return self.classifier(x)


def tiny_spec() -> InputSpec:
    return InputSpec(height=RESOLUTION, width=RESOLUTION)


def export_simplified(model: nn.Module, path: Path, resolution: int = RESOLUTION) -> Path:
    import onnx
    import onnxsim

    model.eval()
    raw = path.with_suffix(".raw.onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.randn(1, 3, resolution, resolution),),
            str(raw),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
        )
    simplified, ok = onnxsim.simplify(onnx.load(str(raw)))
    assert ok
    onnx.save(simplified, str(path))
    return path


def quiet_calibration(*args, **kwargs):
    """load_calibration without its (expected, here) small-set warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_calibration(*args, **kwargs)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = TinyNet()
    # BatchNorm statistics from real pictures, so activations have the ranges of a trained network
    # rather than of a random initialisation.
    calib = quiet_calibration(None, tiny_spec(), size=64, holdout=0, seed=7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(calib.calibration.array()))
    return export_simplified(model, tmp_path_factory.mktemp("tiny") / "model.onnx")


@pytest.fixture(scope="session")
def tiny_ir(tiny_onnx) -> Path:
    import openvino as ov

    xml = tiny_onnx.parent / "openvino" / "model.xml"
    xml.parent.mkdir(exist_ok=True)
    ov.save_model(ov.convert_model(str(tiny_onnx)), str(xml), compress_to_fp16=False)
    return xml


@pytest.fixture(scope="session")
def tiny_calib():
    return quiet_calibration(None, tiny_spec(), size=96, holdout=32)


def write_image(path: Path, seed: int, size=(40, 30)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def min_cosine_to_fp32(fp32_onnx: Path, runner, calib) -> float:
    """The lowest cosine similarity, over the held-out inputs, of ``runner``'s logits to FP32's."""
    from edgecv.calibration.fidelity import collect
    from edgecv.calibration.runners import ort_runner

    holdout = list(calib.holdout.batches(1))
    ref = collect(ort_runner(fp32_onnx), holdout)["logits"]
    out = collect(runner, holdout)["logits"]
    return float((np.sum(ref * out, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1))).min())
