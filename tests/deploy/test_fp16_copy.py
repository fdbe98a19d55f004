"""The FP16 copy strongly typed TensorRT builds from: what TensorRT needs as FP32 build-time constants
(NMS thresholds) stays so, whether the export wrote them as Constant nodes or as initializers shared
with FP16 layers, and the copy says in its metadata that it is made for TensorRT."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgecv.artifact_metadata import read_metadata, stamp_onnx
from edgecv.tensorrt.fp16 import write_fp16_copy
from edgecv.tensorrt.preflight import check_tensorrt

BOXES = 8
IOU, SCORE = 0.45, 0.3  # neither is exact in FP16


def nms_model() -> onnx.ModelProto:
    """A detector's tail as torch.onnx.export writes it: the IoU threshold a Constant node, the score
    threshold an initializer that a float layer (the score offset) reads too."""
    iou = helper.make_tensor("iou_value", TensorProto.FLOAT, [1], [IOU])
    nodes = [
        helper.make_node("Constant", [], ["iou"], name="iou_constant", value=iou),
        helper.make_node("Constant", [], ["max_boxes"], name="max_constant", value_ints=[5]),
        helper.make_node("Relu", ["boxes"], ["boxes_r"], name="relu"),
        helper.make_node("Sub", ["scores", "score_thr"], ["margin"], name="score_margin"),
        helper.make_node(
            "NonMaxSuppression", ["boxes_r", "scores", "max_boxes", "iou", "score_thr"], ["selected"], name="nms"
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "tail",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, BOXES, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, BOXES]),
        ],
        [
            helper.make_tensor_value_info("selected", TensorProto.INT64, ["n", 3]),
            helper.make_tensor_value_info("margin", TensorProto.FLOAT, [1, 1, BOXES]),
        ],
        [numpy_helper.from_array(np.array([SCORE], np.float32), "score_thr")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 50, (1, BOXES, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 20, (1, BOXES, 2)).astype(np.float32)], axis=2)
    return {"boxes": boxes, "scores": rng.uniform(0, 1, (1, 1, BOXES)).astype(np.float32)}


def _run(path) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, _inputs())


def test_nms_thresholds_stay_float32_constants(tmp_path):
    src, dst = tmp_path / "model.onnx", tmp_path / "model.fp16.onnx"
    onnx.save(nms_model(), src)
    write_fp16_copy(src, dst)
    report = check_tensorrt(dst, "10.3")
    assert report.errors == [], report.findings
    copy = onnx.load(str(dst))
    nms = next(n for n in copy.graph.node if n.op_type == "NonMaxSuppression")
    inits = {t.name: t for t in copy.graph.initializer}
    for index, value in ((3, IOU), (4, SCORE)):
        tensor = inits[nms.input[index]]  # an initializer: a build-time constant, not a Cast
        assert tensor.data_type == TensorProto.FLOAT
        assert numpy_helper.to_array(tensor).item() == np.float32(value)  # not rounded through FP16
    margin = next(n for n in copy.graph.node if n.name == "score_margin")
    assert inits[margin.input[1]].data_type == TensorProto.FLOAT16  # the rest of the graph is FP16
    expected, got = _run(src), _run(dst)
    np.testing.assert_array_equal(expected[0], got[0])


def test_the_copy_is_stamped_as_made_for_tensorrt(tmp_path, onnx_files):
    src = tmp_path / "model.onnx"
    onnx.save(onnx.load(str(onnx_files["fp32"])), src)
    stamp_onnx(src, {"edgecv.precision": "fp32", "edgecv.intended_for": "onnxruntime", "edgecv.task": "x"})
    write_fp16_copy(src, tmp_path / "model.fp16.onnx")
    meta = read_metadata(tmp_path / "model.fp16.onnx")
    assert meta["edgecv.precision"] == "fp16" and meta["edgecv.intended_for"] == "tensorrt"
    assert meta["edgecv.task"] == "x"
