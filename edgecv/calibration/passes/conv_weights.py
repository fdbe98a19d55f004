"""Reading and rewriting a convolution's constant weights, for the passes that fold other operators
into convolutions or pad their channels."""

from __future__ import annotations

import numpy as np
import onnx

from edgecv.onnx_graph import OnnxGraph, attr, set_attr_int


def conv_weights(graph: OnnxGraph, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(weight, bias or None) of a convolution whose weights are constants; None otherwise."""
    weight = graph.constant(node.input[1])
    if weight is None:
        return None
    if len(node.input) > 2 and node.input[2]:
        bias = graph.constant(node.input[2])
        return None if bias is None else (weight, bias)
    return weight, None


def set_weights(graph: OnnxGraph, node: onnx.NodeProto, weight: np.ndarray, bias: np.ndarray | None, tag: str) -> None:
    """Give ``node`` new float weights (and bias), as initializers named after it and ``tag``."""
    base = node.name or node.output[0]
    node.input[1] = graph.add_initializer(weight.astype(np.float32, copy=False), f"{base}/weight_{tag}")
    if bias is not None:
        node.input[2] = graph.add_initializer(bias.astype(np.float32, copy=False), f"{base}/bias_{tag}")


def is_depthwise(node: onnx.NodeProto, weight: np.ndarray) -> bool:
    group = attr(node, "group", 1)
    return group > 1 and weight.shape[1] == 1 and weight.shape[0] == group


def densifiable(node: onnx.NodeProto, weight: np.ndarray) -> bool:
    """Dense already, or grouped 1×1: made dense it costs no more than ONNX Runtime's grouped kernel."""
    return attr(node, "group", 1) == 1 or all(s == 1 for s in weight.shape[2:])


def dense_weights(node: onnx.NodeProto, weight: np.ndarray) -> np.ndarray:
    """Block-diagonal dense weights of a grouped convolution (and group set to 1)."""
    group = attr(node, "group", 1)
    if group == 1:
        return weight
    c_out, c_in_g = weight.shape[:2]
    dense = np.zeros((c_out, c_in_g * group, *weight.shape[2:]), weight.dtype)
    per_out = c_out // group
    for g in range(group):
        dense[g * per_out : (g + 1) * per_out, g * c_in_g : (g + 1) * c_in_g] = weight[g * per_out : (g + 1) * per_out]
    set_attr_int(node, "group", 1)
    return dense
