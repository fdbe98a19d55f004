"""A tiny classifier as ONNX (dynamic batch, a residual Add), its Q/DQ graphs in the TensorRT flavour
(signed, symmetric) and in ONNX Runtime's default (asymmetric UINT8), and a run folder holding them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPE = (1, 3, 16, 16)
CLASSES = 5


def tiny_model(dynamic_batch: bool = True, opset: int = 17) -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def init(name, shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a"], name="residual_add"),
        helper.make_node("GlobalAveragePool", ["a"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
    ]
    inits = [
        init("w1", (8, 3, 3, 3)),
        init("b1", (8,), 0.1),
        init("w2", (8, 8, 3, 3)),
        init("b2", (8,), 0.1),
        init("wf", (CLASSES, 8)),
        init("bf", (CLASSES,), 0.1),
    ]
    batch = "batch" if dynamic_batch else 1
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, *SHAPE[1:]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def random_input(n: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE[1:])).astype(np.float32)


def quantize(src: Path, dst: Path, *, tensorrt_flavour: bool, uint8: bool = False) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": random_input(1, seed=10 + i)} for i in range(8)])

        def get_next(self):
            return next(self.batches, None)

    if tensorrt_flavour:
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "AddQDQPairToWeight": True,
                "DedicatedQDQPair": True,
            },
        )
    elif uint8:  # ONNX Runtime's long-standing CPU choice: asymmetric UINT8 activations
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8)
    else:  # ONNX Runtime's defaults: asymmetric activations, INT32 biases, INT8 weight initializers
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ)
    return dst


@pytest.fixture(scope="session")
def onnx_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tiny-onnx")
    fp32 = d / "model.onnx"
    onnx.save(tiny_model(), fp32)
    return {
        "fp32": fp32,
        "int8": quantize(fp32, d / "model.int8.onnx", tensorrt_flavour=True),
        "ort_default": quantize(fp32, d / "model.ort-default.onnx", tensorrt_flavour=False),
        "ort_uint8": quantize(fp32, d / "model.ort-uint8.onnx", tensorrt_flavour=False, uint8=True),
    }


def write_run_folder(root: Path, onnx_files: dict[str, Path], *, dynamic_batch: bool = True) -> Path:
    import shutil

    root.mkdir(parents=True, exist_ok=True)
    if dynamic_batch:
        shutil.copy2(onnx_files["fp32"], root / "model.onnx")
    else:
        onnx.save(tiny_model(dynamic_batch=False), root / "model.onnx")
    shutil.copy2(onnx_files["int8"], root / "model.int8.onnx")
    manifest = {
        "schema": "edgecv.manifest/1",
        "model": {"name": "tiny", "num_classes": CLASSES},
        "options": {"batch": 1, "dynamic_batch": dynamic_batch, "int8": True},
        "input_spec": {"input_name": "input", "shape": list(SHAPE), "mean": [0.5] * 3, "std": [0.5] * 3},
        "stages": {"int8": {"info": {"excluded": []}}},
        "artifacts": [
            {
                "name": "onnx-fp32",
                "path": "model.onnx",
                "format": "onnx",
                "backend": "onnxruntime",
                "precision": "fp32",
            },
            {
                "name": "onnx-int8",
                "path": "model.int8.onnx",
                "format": "onnx",
                "backend": "onnxruntime",
                "precision": "int8",
                "intended_for": "tensorrt",
            },
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root


@pytest.fixture
def run_folder(tmp_path, onnx_files) -> Path:
    return write_run_folder(tmp_path / "run", onnx_files)
