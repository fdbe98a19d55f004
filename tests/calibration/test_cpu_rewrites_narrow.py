"""Channel alignment on narrow networks, where an inverted residual block without expansion (depthwise
→ 1×1 projection, added to its own input, as MobileNetV3's first block and SSDlite's backbone have at
small widths) puts one dense convolution on both sides of a padded region: it reads the padded
channels and makes a tensor added to them."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgecv.calibration.passes import rewrite_for_cpu_int8
from tests.conftest import run_graph_as_written

C_IN, NARROW, WIDE, H = 4, 8, 24, 8


def _conv(name, x, cin, cout, k=1, group=1, seed=0):
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.standard_normal((cout, cin // group, k, k)).astype(np.float32), f"{name}.w"),
        numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), f"{name}.b"),
    ]
    node = helper.make_node(
        "Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name, group=group, kernel_shape=[k, k], pads=[k // 2] * 4
    )
    return node, inits


def _residual_without_expansion() -> onnx.ModelProto:
    """stem 1×1 (8 channels) → hard-swish → [depthwise 3×3 → ReLU → project 1×1 (8 → 8)] + stem →
    1×1 (8 → 24) to the output."""
    parts = [
        _conv("stem", "x", C_IN, NARROW, seed=1),
        (helper.make_node("HardSwish", ["stem"], ["stem_act"], name="stem_act"), []),
        _conv("depthwise", "stem_act", NARROW, NARROW, k=3, group=NARROW, seed=2),
        (helper.make_node("Relu", ["depthwise"], ["depthwise_act"], name="depthwise_act"), []),
        _conv("project", "depthwise_act", NARROW, NARROW, seed=3),
        (helper.make_node("Add", ["stem_act", "project"], ["residual"], name="residual"), []),
        _conv("widen", "residual", NARROW, WIDE, seed=4),
    ]
    graph = helper.make_graph(
        [p[0] for p in parts],
        "narrow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, H, H])],
        [helper.make_tensor_value_info("widen", TensorProto.FLOAT, [1, WIDE, H, H])],
        [i for p in parts for i in p[1]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_a_convolution_that_reads_and_makes_the_padded_channels_grows_on_both_sides():
    original = _residual_without_expansion()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(original)
    [record] = [r for r in rewrite_for_cpu_int8(rewritten) if r["rule"] == "channels_aligned"]
    onnx.checker.check_model(rewritten, full_check=True)
    assert record["channels"] == [NARROW, 16]
    assert sorted(record["nodes"]) == ["depthwise", "project", "stem", "widen"]

    weights = {i.name: numpy_helper.to_array(i) for i in rewritten.graph.initializer}
    nodes = {n.name: n for n in rewritten.graph.node}
    project = weights[nodes["project"].input[1]]
    assert project.shape[:2] == (16, 16)
    assert not project[NARROW:].any() and not project[:, NARROW:].any()
    assert not weights[nodes["project"].input[2]][NARROW:].any()
    assert weights[nodes["widen"].input[1]].shape[1] == 16

    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((1, C_IN, H, H)).astype(np.float32)
        np.testing.assert_allclose(
            run_graph_as_written(rewritten, x), run_graph_as_written(original, x), rtol=1e-4, atol=1e-4
        )


def test_the_quantized_cpu_flavour_of_a_residual_without_expansion_runs(tmp_path):
    import torch
    from torch import nn

    from edgecv.calibration import quantize_run

    from .conftest import RESOLUTION, export_simplified, quiet_calibration, tiny_spec

    class Narrow(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, NARROW, 3, 2, 1), nn.Hardswish())
            self.block = nn.Sequential(
                nn.Conv2d(NARROW, NARROW, 3, 1, 1, groups=NARROW), nn.ReLU(), nn.Conv2d(NARROW, NARROW, 1)
            )
            self.head = nn.Conv2d(NARROW, WIDE, 1)
            self.classifier = nn.Linear(WIDE, 10)

        def forward(self, x):
            x = self.stem(x)
            x = x + self.block(x)
            return self.classifier(self.head(x).mean((2, 3)))

    torch.manual_seed(0)
    with torch.no_grad():
        export_simplified(Narrow().eval(), tmp_path / "model.onnx", resolution=RESOLUTION)
    calib = quiet_calibration(None, tiny_spec(), size=8, holdout=4, seed=3)
    # quantize_run itself runs the artifact on the holdout images, which is where a projection
    # padded on one side only failed ("Input channels C is not equal to kernel channels * group").
    result = quantize_run(tmp_path / "model.onnx", tmp_path, calib, flavours=("cpu",))
    aligned = [r for r in result.flavours["cpu"]["rewrites"] if r["rule"] == "channels_aligned"]
    assert [r["channels"] for r in aligned] == [[NARROW, 16]]

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(result.artifacts["onnx-int8-cpu"]), options, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: calib.holdout.array()[:1]})
    assert logits.shape == (1, 10) and np.isfinite(logits).all()
