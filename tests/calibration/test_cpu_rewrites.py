"""The CPU-flavour graph rewrites keep the function (checked in ONNX Runtime on a synthetic graph with
grouped convolutions, channel shuffles and a padded average pool), respect layers kept in float, and
leave the quantized ShuffleNet V1 without the pattern that made it slower than FP32."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.calibration.passes import rewrite_for_cpu_int8
from edgecv.calibration.passes.channel_alignment import DEPTHWISE_ALIGN
from tests.conftest import run_graph_as_written

C_IN, H = 12, 8
rng = np.random.default_rng(0)


def _conv(name, x, cin, cout, k=1, group=1, stride=1, bias=True):
    inits = [numpy_helper.from_array(rng.standard_normal((cout, cin // group, k, k)).astype(np.float32), f"{name}.w")]
    inputs = [x, f"{name}.w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), f"{name}.b"))
        inputs.append(f"{name}.b")
    node = helper.make_node(
        "Conv", inputs, [name], name=name, group=group, kernel_shape=[k, k], pads=[k // 2] * 4, strides=[stride, stride]
    )
    return [node], inits


def _shuffle(name, x, c, groups):
    inits = [
        numpy_helper.from_array(np.array([1, groups, c // groups, H, H], np.int64), f"{name}.s1"),
        numpy_helper.from_array(np.array([1, -1, H, H], np.int64), f"{name}.s2"),
    ]
    nodes = [
        helper.make_node("Reshape", [x, f"{name}.s1"], [f"{name}.r"], name=f"{name}/Reshape"),
        helper.make_node("Transpose", [f"{name}.r"], [f"{name}.t"], name=f"{name}/Transpose", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Reshape", [f"{name}.t", f"{name}.s2"], [name], name=f"{name}/Reshape_1"),
    ]
    return nodes, inits


def synthetic_model() -> onnx.ModelProto:
    """A ShuffleNet V1 unit (grouped 1×1 → ReLU → shuffle → depthwise → grouped 1×1 → residual Add),
    a ShuffleNet V2 style shuffle after a Concat, a stride-2 AveragePool shortcut that counts padding,
    and one that does not."""
    nodes, inits = [], []

    def add(part):
        nodes.extend(part[0])
        inits.extend(part[1])

    add(_conv("compress", "x", C_IN, 18, group=3))
    nodes.append(helper.make_node("Relu", ["compress"], ["compress_relu"], name="compress_relu"))
    add(_shuffle("shuffle1", "compress_relu", 18, 3))
    add(_conv("depthwise", "shuffle1", 18, 18, k=3, group=18))
    add(_conv("expand", "depthwise", 18, C_IN, group=3, bias=False))
    nodes.append(helper.make_node("Add", ["x", "expand"], ["unit"], name="add"))
    nodes.append(helper.make_node("Relu", ["unit"], ["unit_relu"], name="unit_relu"))
    add(_conv("branch", "unit_relu", C_IN, C_IN))
    nodes.append(helper.make_node("Concat", ["unit_relu", "branch"], ["cat"], name="concat", axis=1))
    add(_shuffle("shuffle2", "cat", 2 * C_IN, 2))
    add(_conv("after", "shuffle2", 2 * C_IN, 20))
    nodes.append(
        helper.make_node(
            "AveragePool",
            ["after"],
            ["pool"],
            name="pool",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        )
    )
    nodes.append(
        helper.make_node(
            "AveragePool",
            ["after"],
            ["pool_excl"],
            name="pool_excl",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        )
    )
    nodes.append(helper.make_node("Add", ["pool", "pool_excl"], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "synthetic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, H, H])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20, H // 2, H // 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _ops(model: onnx.ModelProto) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node)


def test_the_rewritten_graph_computes_the_same_function():
    original = synthetic_model()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    records = rewrite_for_cpu_int8(rewritten)
    onnx.checker.check_model(rewritten, full_check=True)

    rules = collections.Counter(r["rule"] for r in records)
    assert rules == {
        "channel_shuffle_into_conv": 1,
        "channel_shuffle_as_1x1_conv": 1,
        "average_pool_as_depthwise_conv": 1,
        "channels_aligned": 1,
    }
    assert all(r["why"] for r in records)
    ops = _ops(rewritten)
    assert ops["Transpose"] == 0 and ops["Reshape"] == 0
    assert ops["AveragePool"] == 1  # the one that excludes padding is not a convolution
    # The shuffle went into the grouped 1×1 convolution in front of it, now dense; the depthwise
    # convolution behind it has a channel count ONNX Runtime's fast INT8 kernel takes.
    nodes = {n.name: n for n in rewritten.graph.node}
    attrs = {n: {a.name: helper.get_attribute_value(a) for a in nodes[n].attribute} for n in ("compress", "depthwise")}
    assert attrs["compress"]["group"] == 1
    assert attrs["depthwise"]["group"] % DEPTHWISE_ALIGN == 0

    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, C_IN, H, H)).astype(np.float32)
        np.testing.assert_allclose(
            run_graph_as_written(rewritten, x), run_graph_as_written(original, x), rtol=1e-4, atol=1e-4
        )


def test_every_tensor_that_stays_keeps_its_name():
    # Activation ranges computed on the original graph are looked up by tensor name.
    original = synthetic_model()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    rewrite_for_cpu_int8(rewritten)
    before = {o for n in original.graph.node for o in n.output}
    after = {o for n in rewritten.graph.node for o in n.output}
    assert after <= before


def test_nodes_kept_in_float_are_not_rewritten():
    original = synthetic_model()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    records = rewrite_for_cpu_int8(rewritten, keep=("compress", "pool"))
    rules = collections.Counter(r["rule"] for r in records)
    # The shuffle cannot go into the kept convolution: it becomes a permutation convolution instead.
    assert rules["channel_shuffle_into_conv"] == 0 and rules["channel_shuffle_as_1x1_conv"] == 2
    assert rules["average_pool_as_depthwise_conv"] == 0
    kept = {n.name: n for n in rewritten.graph.node}["compress"]
    assert {a.name: helper.get_attribute_value(a) for a in kept.attribute}["group"] == 3
    assert kept.input[1] == "compress.w"
    x = np.random.default_rng(5).standard_normal((1, C_IN, H, H)).astype(np.float32)
    np.testing.assert_allclose(
        run_graph_as_written(rewritten, x), run_graph_as_written(original, x), rtol=1e-4, atol=1e-4
    )


def test_a_graph_without_these_patterns_is_left_alone():
    nodes, inits = _conv("conv", "x", C_IN, 32)
    graph = helper.make_graph(
        nodes,
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, H, H])],
        [helper.make_tensor_value_info("conv", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = model.SerializeToString()
    assert rewrite_for_cpu_int8(model) == []
    assert model.SerializeToString() == before


@pytest.fixture(scope="module")
def shufflenetv1_cpu_int8(tmp_path_factory):
    import torch

    from edgecv.calibration import quantize_run
    from edgecv.models import create_model

    from .conftest import export_simplified, quiet_calibration

    resolution = 64
    run = tmp_path_factory.mktemp("shufflenetv1")
    model = create_model("shufflenetv1", num_classes=10, width_mult=0.5, resolution=resolution)
    with torch.no_grad():
        export_simplified(model, run / "model.onnx", resolution=resolution)
    calib = quiet_calibration(None, model.input_spec, size=16, holdout=8, seed=3)
    result = quantize_run(run / "model.onnx", run, calib, flavours=("cpu",))
    return run, result


def test_quantized_shufflenetv1_has_no_channel_shuffle_or_quantized_average_pool(shufflenetv1_cpu_int8):
    run, result = shufflenetv1_cpu_int8
    fp32 = onnx.load(str(run / "model.onnx"))
    assert _ops(fp32)["Transpose"] > 0 and _ops(fp32)["AveragePool"] > 0  # the pattern is there to begin with

    quantized = onnx.load(str(result.artifacts["onnx-int8-cpu"]))
    ops = _ops(quantized)
    assert ops["Transpose"] == 0 and ops["Reshape"] == 0 and ops["AveragePool"] == 0
    # What ONNX Runtime runs: no Transpose between its channels-last integer convolutions (the only
    # ones left bring the NCHW input in and the pooled features out), no QLinearAveragePool.
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(run / "optimized.onnx")
    ort.InferenceSession(str(result.artifacts["onnx-int8-cpu"]), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(run / "optimized.onnx"))
    assert _ops(optimized)["QLinearConv"] > 0 and _ops(optimized)["QLinearAveragePool"] == 0
    producer = {o: n.op_type for n in optimized.graph.node for o in n.output}
    readers = collections.defaultdict(set)
    for node in optimized.graph.node:
        for name in node.input:
            readers[name].add(node.op_type)
    for node in optimized.graph.node:
        if node.op_type == "Transpose":
            assert not (
                producer.get(node.input[0]) == "QLinearConv"
                or "QLinearConv" in readers[node.output[0]]
                and producer.get(node.input[0]) != "QuantizeLinear"
            ), node.name

    info = result.flavours["cpu"]
    rules = collections.Counter(r["rule"] for r in info["rewrites"])
    assert rules["channel_shuffle_into_conv"] > 0 and rules["average_pool_as_depthwise_conv"] > 0
    # The only node left in float is the one padding the image, and the report says why.
    assert [k["node"] for k in info["kept_float"]] == ["input/pad_channels"]
    assert "image" in info["kept_float"][0]["reason"]
    assert result.fidelity["onnx-int8-cpu"].headline.cosine_mean > 0.98


def test_a_three_channel_image_is_padded_for_the_first_convolution():
    nodes, inits = _conv("stem", "x", 3, 16, k=3, stride=2)
    graph = helper.make_graph(
        nodes,
        "stem",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, H, H])],
        [helper.make_tensor_value_info("stem", TensorProto.FLOAT, None)],
        inits,
    )
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    [record] = rewrite_for_cpu_int8(rewritten)
    assert record["rule"] == "image_channels_padded" and record["channels"] == [3, 4]
    # The Pad stays in float (it runs before the image is quantized); its output shares the image's range.
    assert record["kept_float"] == ["x/pad_channels"] and record["range_of"] == {"x/channels_padded": "x"}
    x = np.random.default_rng(1).standard_normal((1, 3, H, H)).astype(np.float32)
    np.testing.assert_allclose(
        run_graph_as_written(rewritten, x), run_graph_as_written(original, x), rtol=1e-5, atol=1e-5
    )


def test_a_shufflenetv2_split_after_the_shuffle_becomes_selections():
    # Concat → shuffle → two channel Slices: one passes through to a Concat, one feeds a convolution.
    c = C_IN
    nodes, inits = [], []
    for part in (_conv("left", "x", C_IN, c), _conv("right", "x", C_IN, c)):
        nodes.extend(part[0])
        inits.extend(part[1])
    nodes.append(helper.make_node("Concat", ["left", "right"], ["cat"], name="concat", axis=1))
    part = _shuffle("shuffle", "cat", 2 * c, 2)
    nodes.extend(part[0])
    inits.extend(part[1])
    for name, start, end in (("keep_half", 0, c), ("conv_half", c, 2 * c)):
        for suffix, value in (("starts", start), ("ends", end), ("axes", 1)):
            inits.append(numpy_helper.from_array(np.array([value], np.int64), f"{name}.{suffix}"))
        nodes.append(
            helper.make_node("Slice", ["shuffle", f"{name}.starts", f"{name}.ends", f"{name}.axes"], [name], name=name)
        )
    part = _conv("branch", "conv_half", c, c)
    nodes.extend(part[0])
    inits.extend(part[1])
    nodes.append(helper.make_node("Concat", ["keep_half", "branch"], ["y"], name="out", axis=1))
    graph = helper.make_graph(
        nodes,
        "v2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, H, H])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2 * c, H, H])],
        inits,
    )
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    records = rewrite_for_cpu_int8(rewritten)
    rules = collections.Counter(r["rule"] for r in records)
    assert rules["channel_shuffle_as_1x1_conv"] == 1 and rules["channel_split_as_selection"] == 1
    ops = _ops(rewritten)
    assert ops["Slice"] == 0 and ops["Transpose"] == 0
    # The half read by a convolution went into its weights: that convolution reads the shuffle's input.
    assert {n.name: n for n in rewritten.graph.node}["branch"].input[0] == "cat"
    x = np.random.default_rng(2).standard_normal((1, C_IN, H, H)).astype(np.float32)
    np.testing.assert_allclose(
        run_graph_as_written(rewritten, x), run_graph_as_written(original, x), rtol=1e-4, atol=1e-4
    )


def _mobilenetv3_block() -> onnx.ModelProto:
    """A MobileNetV3 block with channels ONNX Runtime's fast depthwise kernel refuses (72): expand
    1×1 → hard-swish (x · HardSigmoid(x), as ONNX Runtime's pre-processing leaves it) → depthwise
    5×5 → squeeze-and-excitation (global pool, 1×1 → ReLU → 1×1 → HardSigmoid, product with the
    scale) → project 1×1."""
    mid, squeeze = 72, 24
    nodes, inits = [], []

    def add(part):
        nodes.extend(part[0])
        inits.extend(part[1])

    add(_conv("expand", "x", C_IN, mid))
    nodes.append(helper.make_node("HardSigmoid", ["expand"], ["gate"], name="gate", alpha=1 / 6, beta=0.5))
    nodes.append(helper.make_node("Mul", ["expand", "gate"], ["hswish"], name="hswish"))
    add(_conv("depthwise", "hswish", mid, mid, k=5, group=mid))
    nodes.append(helper.make_node("GlobalAveragePool", ["depthwise"], ["pooled"], name="pool"))
    add(_conv("fc1", "pooled", mid, squeeze))
    nodes.append(helper.make_node("Relu", ["fc1"], ["fc1_relu"], name="fc1_relu"))
    add(_conv("fc2", "fc1_relu", squeeze, mid))
    nodes.append(helper.make_node("HardSigmoid", ["fc2"], ["scale"], name="se_gate", alpha=1 / 6, beta=0.5))
    nodes.append(helper.make_node("Mul", ["depthwise", "scale"], ["excited"], name="excite"))
    add(_conv("project", "excited", mid, 16))
    return _model(nodes, inits, "project", 16)


def _model(nodes, inits, output: str, channels: int) -> onnx.ModelProto:
    """A graph from the image ``x`` (C_IN channels) to ``output`` (``channels`` channels, same size)."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, H, H])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, channels, H, H])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_channels_are_aligned_through_squeeze_excitation_and_hardswish():
    original = _mobilenetv3_block()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    [record] = [r for r in rewrite_for_cpu_int8(rewritten) if r["rule"] == "channels_aligned"]
    onnx.checker.check_model(rewritten, full_check=True)
    assert record["channels"] == [72, 80]
    # Both convolutions that make the 72 channels grow, the depthwise one with them; the two that read them
    # (the squeeze and the projection) get zero input weights.
    assert set(record["nodes"]) == {"expand", "fc2", "depthwise", "fc1", "project"}
    weights = {i.name: numpy_helper.to_array(i) for i in rewritten.graph.initializer}
    nodes = {n.name: n for n in rewritten.graph.node}
    assert weights[nodes["expand"].input[1]].shape[0] == weights[nodes["fc2"].input[1]].shape[0] == 80
    assert weights[nodes["project"].input[1]].shape[1] == 80
    assert not weights[nodes["project"].input[1]][:, 72:].any()
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, C_IN, H, H)).astype(np.float32)
        np.testing.assert_allclose(
            run_graph_as_written(rewritten, x), run_graph_as_written(original, x), rtol=1e-4, atol=1e-4
        )


def test_a_region_another_operator_reads_is_not_padded():
    # The hard-swish output is also a graph output: its channel count is part of the interface.
    model = _mobilenetv3_block()
    model.graph.output.append(helper.make_tensor_value_info("hswish", TensorProto.FLOAT, None))
    records = rewrite_for_cpu_int8(model)
    assert not [r for r in records if r["rule"] == "channels_aligned" and 72 in r["channels"]]


def test_silu_becomes_onnx_runtimes_quickgelu_kept_in_float():
    nodes, inits = _conv("conv", "x", C_IN, 16)
    nodes += [
        helper.make_node("Sigmoid", ["conv"], ["sig"], name="sig"),
        helper.make_node("Mul", ["sig", "conv"], ["silu"], name="silu"),  # either operand order
        helper.make_node("Sigmoid", ["silu"], ["y"], name="plain_sigmoid"),  # not a SiLU: stays
    ]
    original = _model(nodes, inits, "y", 16)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    [record] = rewrite_for_cpu_int8(rewritten)
    assert record["rule"] == "silu_as_quickgelu" and record["nodes"] == record["kept_float"] == ["silu"]
    assert _ops(rewritten) == {"Conv": 1, "QuickGelu": 1, "Sigmoid": 1}
    assert any(o.domain == "com.microsoft" for o in rewritten.opset_import)
    x = np.random.default_rng(2).standard_normal((1, C_IN, H, H)).astype(np.float32)
    np.testing.assert_allclose(
        run_graph_as_written(rewritten, x), run_graph_as_written(original, x), rtol=1e-5, atol=1e-5
    )

    kept = onnx.ModelProto()
    kept.CopyFrom(original)
    assert rewrite_for_cpu_int8(kept, keep=("silu",)) == []


def test_quantized_mobilenetv3_runs_its_hardswish_and_depthwise_layers_in_integers(tmp_path):
    import torch

    from edgecv.calibration import quantize_run
    from edgecv.models import create_model

    from .conftest import export_simplified, quiet_calibration

    resolution = 64
    model = create_model("mobilenetv3", variant="small", num_classes=10, resolution=resolution)
    with torch.no_grad():
        export_simplified(model, tmp_path / "model.onnx", resolution=resolution)
    calib = quiet_calibration(None, model.input_spec, size=8, holdout=4, seed=3)
    result = quantize_run(tmp_path / "model.onnx", tmp_path, calib, flavours=("cpu",))
    rewrites = result.flavours["cpu"]["rewrites"]
    rules = collections.Counter(r["rule"] for r in rewrites)
    assert rules["channels_aligned"] > 0 and rules["hardsigmoid_as_integer_add"] == 1
    # Block 7's expansion: hard-swish, a 5×5 depthwise layer, squeeze-and-excitation; the region holds the
    # expansion, the excitation's second 1×1, the depthwise layer, the squeeze and the projection.
    [block7] = [r for r in rewrites if r["rule"] == "channels_aligned" and r["channels"] == [120, 128]]
    assert len(block7["nodes"]) == 5

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(result.artifacts["onnx-int8-cpu"]), options, providers=["CPUExecutionProvider"])
    ops = _ops(onnx.load(str(tmp_path / "optimized.onnx")))
    # Every hard-sigmoid (in each hard-swish and each squeeze-and-excitation) is an integer Add;
    # nothing runs in float between the integer convolutions.
    assert ops["HardSigmoid"] == 0 and ops["Conv"] == 0 and ops["Mul"] == 0
    assert ops["QLinearConv"] > 0 and ops["QLinearAdd"] > 0
    assert ops["DequantizeLinear"] <= 1 and ops["QuantizeLinear"] <= 1  # the image in, the logits out
