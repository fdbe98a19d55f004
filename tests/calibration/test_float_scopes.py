"""Which nodes a detector's float scopes keep out of INT8: both ways the TorchScript exporter names
nested modules, and the Concat that only regroups float prediction convs for ``decode``."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from edgecv.calibration.float_scopes import float_feeders, nodes_in_scopes


def _graph(conv_names: list[str]) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["feat"], name="/backbone/stem/Relu")]
    for i, name in enumerate(conv_names):
        nodes.append(helper.make_node("Relu", ["feat"], [f"p{i}"], name=name))
    nodes += [
        helper.make_node("Concat", [f"p{i}" for i in range(len(conv_names))], ["cat"], name="/head/Concat", axis=1),
        helper.make_node("Reshape", ["cat", "shape"], ["flat"], name="/decode/Reshape"),
        helper.make_node("Sigmoid", ["flat"], ["y"], name="/decode/Sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [1, -1])],
    )
    return helper.make_model(graph)


def test_scopes_match_short_and_full_module_path_names():
    scopes = ("decode", "head.cls_preds", "head.reg_preds")
    short = _graph(["/head/cls_preds.0/Conv", "/head/reg_preds.0/Conv", "/head/stems.0/Conv"])
    assert nodes_in_scopes(short, scopes) == [
        "/head/cls_preds.0/Conv",
        "/head/reg_preds.0/Conv",
        "/decode/Reshape",
        "/decode/Sigmoid",
    ]
    full = _graph(["/head/head.cls_preds/head.cls_preds.0/Conv", "/head/head.reg_preds/head.reg_preds.0/Conv"])
    assert nodes_in_scopes(full, scopes)[:2] == [
        "/head/head.cls_preds/head.cls_preds.0/Conv",
        "/head/head.reg_preds/head.reg_preds.0/Conv",
    ]
    # A sibling whose name only starts like a scope is not inside it.
    assert nodes_in_scopes(_graph(["/head/cls_preds_extra/Conv"]), scopes) == ["/decode/Reshape", "/decode/Sigmoid"]


def test_concat_of_float_predictions_into_decode_stays_float():
    model = _graph(["/head/cls_preds.0/Conv", "/head/reg_preds.0/Conv"])
    floating = nodes_in_scopes(model, ("decode", "head.cls_preds", "head.reg_preds"))
    assert float_feeders(model, floating) == ["/head/Concat"]
    # One quantized input (a layer outside the scopes) leaves the Concat to the quantizer.
    mixed = _graph(["/head/cls_preds.0/Conv", "/head/stems.0/Conv"])
    assert float_feeders(mixed, nodes_in_scopes(mixed, ("decode", "head.cls_preds"))) == []
