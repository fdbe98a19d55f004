"""The ONNX graph index every pass and check reads: producers, consumers, constants, inputs and
outputs of a small hand-made graph, and the edits that keep a graph valid."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecv.onnx_graph import (
    OnnxGraph,
    attr,
    default_opset,
    first_input,
    forget_shapes,
    node_label,
    remove_unused_initializers,
    remove_unused_nodes,
    rename_input,
    replace_node,
    set_attr_int,
    static_shapes,
)


def _model(with_initializer_input: bool = False) -> onnx.ModelProto:
    """x → Conv(w, b) → y → Relu → r → Add(r, k) → out, plus an optional Clip read by nothing."""
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    unused = numpy_helper.from_array(np.zeros(1, np.float32), "unused")
    nodes = [
        helper.make_node("Constant", [], ["k"], name="k", value=numpy_helper.from_array(np.array(1.5, np.float32))),
        helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", group=1, kernel_shape=[1, 1]),
        helper.make_node("Relu", ["y"], ["r"]),  # nameless, as optimisers leave some nodes
        helper.make_node("Add", ["r", "k"], ["out"], name="add"),
        helper.make_node("Clip", ["y", "", "k"], ["dead"], name="dead_clip"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])]
    if with_initializer_input:
        inputs.insert(0, helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3, 1, 1]))
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2, 4, 4])],
        initializer=[w, b, unused],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_producers_consumers_and_outputs():
    g = OnnxGraph(_model())
    assert g.producer["y"].name == "conv"
    assert g.producer_op("r") == "Relu"
    assert g.producer_op("x") is None  # a graph input has no producer
    assert [n.name for n in g.readers("y")] == ["", "dead_clip"]
    assert [n.name for n in g.consumers["k"]] == ["add", "dead_clip"]
    assert "" not in g.consumers  # an omitted optional input is nobody's tensor
    assert g.readers("nothing") == [] and "nothing" not in g.consumers
    assert g.graph_outputs == {"out"}
    assert g.graph_inputs == ["x"]
    assert g.node("add").op_type == "Add" and g.node("missing") is None


def test_constants_from_initializers_and_constant_nodes():
    g = OnnxGraph(_model())
    assert g.constant("w").shape == (2, 3, 1, 1)
    assert g.constant("k") == np.float32(1.5)
    assert g.constant("y") is None
    assert g.is_constant("b") and g.is_constant("k") and not g.is_constant("x")
    assert g.elem_type("w") == TensorProto.FLOAT and g.elem_type("y") is None
    assert g.scalar("k") == np.float32(1.5)
    assert g.scalar("b") is None  # two values
    assert g.scalar("") is None


def test_initializers_listed_as_inputs_are_not_graph_inputs():
    model = _model(with_initializer_input=True)
    assert OnnxGraph(model).graph_inputs == ["x"]
    assert first_input(model).name == "x"


def test_added_initializer_is_in_the_graph_and_the_index():
    model = _model()
    g = OnnxGraph(model)
    assert g.add_initializer(np.full(2, 3.0, np.float32), "w2") == "w2"
    assert model.graph.initializer[-1].name == "w2"
    np.testing.assert_array_equal(g.constant("w2"), [3.0, 3.0])
    g.add_tensor(numpy_helper.from_array(np.zeros(2, np.float32), "w2"))
    np.testing.assert_array_equal(g.constant("w2"), [3.0, 3.0])  # a taken name keeps its tensor


def test_attributes_labels_and_opset():
    model = _model()
    conv, relu = model.graph.node[1], model.graph.node[2]
    assert attr(conv, "kernel_shape") == [1, 1]
    assert attr(conv, "pads", [0, 0, 0, 0]) == [0, 0, 0, 0]
    set_attr_int(conv, "group", 2)
    set_attr_int(conv, "absent", 3)
    assert attr(conv, "group") == 2 and attr(conv, "absent") is None
    assert node_label(conv) == "conv" and node_label(relu) == "Relu(r)"
    assert default_opset(model) == 17


def test_static_shapes_write_dynamic_dimensions_as_zero():
    shapes = static_shapes(_model())
    assert shapes["x"] == [0, 3, 4, 4]
    assert shapes["y"] == [0, 2, 4, 4]


def test_edits_keep_the_graph_valid():
    model = _model()
    relu = model.graph.node[2]
    replace_node(model, relu, [helper.make_node("Sigmoid", ["y"], ["s"], name="sig")])
    rename_input(model, "r", "s")
    assert [n.op_type for n in model.graph.node] == ["Constant", "Conv", "Sigmoid", "Add", "Clip"]
    assert model.graph.node[3].input[0] == "s"
    remove_unused_nodes(model)  # the Clip read by nothing, then the initializer nothing reads
    assert [n.name for n in model.graph.node] == ["k", "conv", "sig", "add"]
    assert [i.name for i in model.graph.initializer] == ["w", "b"]
    onnx.checker.check_model(model)


def test_forget_shapes_and_unused_initializers():
    model = onnx.shape_inference.infer_shapes(_model())
    assert {"y", "r"} <= {v.name for v in model.graph.value_info}
    forget_shapes(model, ["y"])
    assert "y" not in {v.name for v in model.graph.value_info} and "r" in {v.name for v in model.graph.value_info}
    remove_unused_initializers(model)
    assert [i.name for i in model.graph.initializer] == ["w", "b"]


def test_the_toolkit_imports_nothing_above_it():
    """The bottom layer: importing it loads no other edgecv module (errors, and the version the
    package face reads, excepted)."""
    code = "import json, sys, edgecv.onnx_graph; print(json.dumps([m for m in sys.modules if m.startswith('edgecv.')]))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert set(json.loads(loaded)) <= {"edgecv.onnx_graph", "edgecv.errors", "edgecv.version"}
