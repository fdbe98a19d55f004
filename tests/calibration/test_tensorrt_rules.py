"""The TensorRT Q/DQ rule checker: a hand-made graph that follows every rule passes, each fault
injected into it is reported under its rule, and ONNX Runtime's quantizer output is judged right."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.calibration.quantize_onnx import CPU, TENSORRT, prepare_for_quantization, quantize_flavour
from edgecv.calibration.ranges import cached_ranges
from edgecv.tensorrt.rules import check_tensorrt_qdq

C = 4  # channels


def _init(name, array, dtype=None):
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def qdq_model(**fault) -> onnx.ModelProto:
    """x → Q→DQ → Conv(weight: float → Q→DQ per channel, float bias) → Q→DQ → Add ← DQ←Q ← x.

    Each keyword injects one fault; no keyword gives a graph TensorRT accepts."""
    zp_type = np.uint8 if fault.get("uint8") else np.int8
    inits = [
        _init("s_x", 0.05, np.float32),
        _init("zp", fault.get("zero_point", 0), zp_type),
        _init("zp8", 0, np.int8),
        _init("s_y", 0.1, np.float32),
        _init("s_w", fault.get("weight_scale", [0.01] * C), np.float32),
        _init("zp_w", [0] * C, np.int8),
        _init("B", np.zeros(C), np.float32),
    ]
    nodes = []
    x_scale = "s_x"
    if fault.get("activation_per_channel"):
        inits.append(_init("s_x_pc", [0.05] * C, np.float32))
        x_scale = "s_x_pc"
    if fault.get("runtime_scale"):
        nodes.append(helper.make_node("Abs", ["scale_in"], ["s_x_rt"], name="scale_abs"))
        x_scale = "s_x_rt"
    q_inputs = ["x", x_scale] if fault.get("no_zero_point") else ["x", x_scale, "zp"]
    q_x = helper.make_node("QuantizeLinear", q_inputs, ["x_q"], name="q_x", axis=1)
    if fault.get("contrib_domain"):
        q_x.domain = "com.microsoft"
    nodes += [q_x, helper.make_node("DequantizeLinear", ["x_q", x_scale, "zp"], ["x_dq"], name="dq_x", axis=1)]

    weight_axis = fault.get("weight_axis", 0)
    if fault.get("int8_weight_initializer"):
        inits.append(_init("W_q", np.ones((C, C, 1, 1)), np.int8))
        nodes.append(
            helper.make_node("DequantizeLinear", ["W_q", "s_w", "zp_w"], ["W_dq"], name="dq_w", axis=weight_axis)
        )
    else:
        inits.append(_init("W", np.full((C, C, 1, 1), 0.5), np.float32))
        nodes += [
            helper.make_node("QuantizeLinear", ["W", "s_w", "zp_w"], ["W_q"], name="q_w", axis=weight_axis),
            helper.make_node("DequantizeLinear", ["W_q", "s_w", "zp_w"], ["W_dq"], name="dq_w", axis=weight_axis),
        ]
    bias = "B"
    if fault.get("int32_bias"):
        inits += [
            _init("B_q", np.zeros(C), np.int32),
            _init("s_b", [0.0005] * C, np.float32),
            _init("zp_b", [0] * C, np.int32),
        ]
        nodes.append(helper.make_node("DequantizeLinear", ["B_q", "s_b", "zp_b"], ["B_dq"], name="dq_b", axis=0))
        bias = "B_dq"
    nodes.append(helper.make_node("Conv", ["x_dq", "W_dq", bias], ["y"], name="conv"))
    nodes += [
        helper.make_node("QuantizeLinear", ["y", "s_y", "zp8"], ["y_q"], name="q_y"),
        helper.make_node("DequantizeLinear", ["y_q", "s_y", "zp8"], ["y_dq"], name="dq_y"),
    ]
    if fault.get("shared_dq"):
        skip = "x_dq"
    elif fault.get("add_without_dq"):
        skip = "x"
    elif fault.get("q_feeds_two_dqs"):
        nodes.append(helper.make_node("DequantizeLinear", ["x_q", "s_x", "zp"], ["x_dq2"], name="dq_x2"))
        skip = "x_dq2"
    else:
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "s_x", "zp8"], ["x_q2"], name="q_x2"),
            helper.make_node("DequantizeLinear", ["x_q2", "s_x", "zp8"], ["x_dq2"], name="dq_x2"),
        ]
        skip = "x_dq2"
    nodes.append(helper.make_node("Add", ["y_dq", skip], ["out"], name="residual_add"))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 8, 8])]
    if fault.get("runtime_scale"):
        inputs.append(helper.make_tensor_value_info("scale_in", TensorProto.FLOAT, []))
    graph = helper.make_graph(
        nodes, "qdq", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, C, 8, 8])], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", fault.get("opset", 17))])


def rules(model) -> set[str]:
    return {v.rule for v in check_tensorrt_qdq(model)}


def test_a_graph_that_follows_every_rule_passes_and_runs():
    model = qdq_model()
    onnx.checker.check_model(model, full_check=True)
    assert check_tensorrt_qdq(model) == []
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.ones((1, C, 8, 8), np.float32)})
    assert out.shape == (1, C, 8, 8)


@pytest.mark.parametrize(
    ("fault", "rule"),
    [
        ({"uint8": True}, "int8"),
        ({"no_zero_point": True}, "int8"),
        ({"zero_point": 3}, "zero-point"),
        ({"activation_per_channel": True}, "per-channel-weights-only"),
        ({"weight_axis": 1}, "per-channel-weights-only"),
        ({"weight_scale": [0.01, -0.01, 0.01, 0.01]}, "scale-positive"),
        ({"weight_scale": [0.01, 0.0, 0.01, 0.01]}, "scale-positive"),
        ({"runtime_scale": True}, "scale-constant"),
        ({"int32_bias": True}, "bias-float"),
        ({"int8_weight_initializer": True}, "weight-qdq-pair"),
        ({"shared_dq": True}, "dedicated-pair"),
        ({"q_feeds_two_dqs": True}, "dedicated-pair"),
        ({"add_without_dq": True}, "residual-add"),
        ({"opset": 12}, "opset"),
        ({"contrib_domain": True}, "domain"),
    ],
)
def test_each_fault_is_reported_under_its_rule(fault, rule):
    violations = check_tensorrt_qdq(qdq_model(**fault))
    assert rule in {v.rule for v in violations}, violations
    assert all(str(v).startswith(f"[{v.rule}] ") for v in violations)


def test_an_unquantized_graph_is_not_an_int8_graph(tiny_onnx):
    assert rules(onnx.load(str(tiny_onnx))) == {"int8"}


def test_exempt_nodes_skip_the_residual_rule():
    model = qdq_model(add_without_dq=True)
    assert [v.rule for v in check_tensorrt_qdq(model, exempt=("residual_add",))] == []


@pytest.fixture(scope="module")
def quantized_flavours(tiny_onnx, tiny_calib, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rules")
    prepared = tmp / "prepared.onnx"
    prepare_for_quantization(tiny_onnx, prepared)
    cached_ranges(
        prepared,
        tiny_calib.calibration,
        "input",
        "minmax",
        data_fingerprint=tiny_calib.fingerprint,
        cache_path=tmp / "ranges.json",
    )
    out = {}
    for flavour in (TENSORRT, CPU):
        out[flavour.name] = tmp / flavour.filename
        quantize_flavour(prepared, out[flavour.name], flavour, ranges_path=tmp / "ranges.json", method="minmax")
    return out


def test_onnx_runtime_tensorrt_flavour_passes(quantized_flavours):
    model = onnx.load(str(quantized_flavours["tensorrt"]))
    assert check_tensorrt_qdq(model) == []
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    assert adds, "the tiny model's residual Add is gone"


def test_onnx_runtime_cpu_flavour_is_not_for_tensorrt(quantized_flavours):
    found = rules(quantized_flavours["cpu"])
    assert {"int8", "zero-point"} <= found  # UINT8 activations with zero points
    assert {"bias-float", "weight-qdq-pair"} <= found  # INT32 biases, INT8 weight initializers
