"""The CPU flavour's hard-sigmoid as an integer Add: same values as the float HardSigmoid between
the Q/DQ pairs (within the uint8 rounding the graph already had), and ONNX Runtime then runs no
float HardSigmoid at all."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from edgecv.calibration.passes import hardsigmoid_as_integer_add

C, H = 16, 12


class _Reader(CalibrationDataReader):
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)


def _inputs(n: int, seed: int, spread: float = 2.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(spread * rng.standard_normal((1, C, H, H))).astype(np.float32) for _ in range(n)]


def _quantized_hardswish(tmp_path, alpha: float, beta: float, spread: float = 2.0) -> onnx.ModelProto:
    """conv → x · HardSigmoid(x) (hard-swish as ONNX Runtime's pre-processing leaves it) → conv,
    quantized as the CPU flavour is (uint8 activations, int8 symmetric weights, QDQ)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((0.5 * rng.standard_normal((C, C, 3, 3))).astype(np.float32), "w1"),
        numpy_helper.from_array((0.5 * spread * rng.standard_normal(C)).astype(np.float32), "b1"),
        numpy_helper.from_array((0.3 * rng.standard_normal((8, C, 1, 1))).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("HardSigmoid", ["a"], ["gate"], name="gate", alpha=alpha, beta=beta),
        helper.make_node("Mul", ["a", "gate"], ["act"], name="mul"),
        helper.make_node("Conv", ["act", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes,
        "hardswish",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, H, H])],
        inits,
    )
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
    out = tmp_path / "int8.onnx"
    quantize_static(
        str(fp32),
        str(out),
        _Reader([{"x": x} for x in _inputs(16, 1, spread)]),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options={"WeightSymmetric": True},
    )
    return onnx.load(str(out))


def _session(model: onnx.ModelProto, optimized: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if optimized:
        options.optimized_model_filepath = optimized
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


# spread 2: the gate's calibrated range reaches 1 (it saturates); 0.05: it ends well below 1.
@pytest.mark.parametrize(
    "alpha,beta,spread", [(1 / 6, 0.5, 2.0), (1 / 6, 0.5, 0.05), (0.2, 0.5, 2.0), (0.25, -0.25, 2.0)]
)
def test_the_integer_add_computes_the_hardsigmoid_the_graph_had(tmp_path, alpha, beta, spread):
    before = _quantized_hardswish(tmp_path, alpha, beta, spread)
    constants = {t.name: numpy_helper.to_array(t) for t in before.graph.initializer}
    gate_top = 255 * float(constants["gate_scale"])
    assert gate_top < 0.9 if spread < 1 else gate_top > 0.99
    after = onnx.ModelProto()
    after.CopyFrom(before)
    [record] = hardsigmoid_as_integer_add(after)
    assert record["rule"] == "hardsigmoid_as_integer_add" and record["nodes"] == ["gate"] and record["why"]
    onnx.checker.check_model(after, full_check=True)
    assert "HardSigmoid" not in {n.op_type for n in after.graph.node}

    old, new = _session(before), _session(after)
    # The output's own quantization step: the two graphs may differ by a rounding of the gate.
    step = float(numpy_helper.to_array({t.name: t for t in after.graph.initializer}["y_scale"]))
    for x in _inputs(8, 2, spread):
        a, b = old.run(None, {"x": x})[0], new.run(None, {"x": x})[0]
        assert np.mean(a == b) > 0.9
        assert np.max(np.abs(a - b)) <= 3 * step + 1e-6


def test_onnx_runtime_runs_it_in_integers(tmp_path):
    model = _quantized_hardswish(tmp_path, 1 / 6, 0.5)
    hardsigmoid_as_integer_add(model)
    _session(model, optimized=str(tmp_path / "optimized.onnx"))
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    assert ops["QLinearAdd"] == 1 and ops["QLinearMul"] == 1
    assert ops["HardSigmoid"] == 0 and ops["DequantizeLinear"] <= 1  # the one left is the graph output's


def test_nodes_kept_in_float_and_float_graphs_are_left_alone(tmp_path):
    model = _quantized_hardswish(tmp_path, 1 / 6, 0.5)
    before = model.SerializeToString()
    assert hardsigmoid_as_integer_add(model, keep=("gate",)) == []
    assert model.SerializeToString() == before

    float_graph = onnx.load(str(tmp_path / "fp32.onnx"))
    before = float_graph.SerializeToString()
    assert hardsigmoid_as_integer_add(float_graph) == []
    assert float_graph.SerializeToString() == before
