"""Channel shuffles folded into the convolution in front of them, or else made 1×1 convolutions.

A channel shuffle written for NCHW (Reshape → Transpose → Reshape) quantized by ONNX Runtime's tools
becomes two full-tensor uint8 transposes around its channels-last INT8 kernels (the NHWC→NCHW layout
Transpose merged into the shuffle's own, then NCHW→NHWC): 31 % of the INT8 run of ShuffleNet V1
(g=3) and V2 (FP32: 3–7 %), and why ShuffleNet V1 ran slower in INT8 than in FP32 (AVX-512 VNNI
EPYC, 2 threads). Written channels-last it is still one uint8 Transpose, which ONNX Runtime moves at
about 0.3 GB/s (140 µs for 28×28×60 bytes), while a 1×1 ``QLinearConv`` with a permutation matrix
for weights does the same in about 10 µs.

A grouped 1×1 ``QLinearConv`` (g=3) runs no faster than the dense convolution with g times the
arithmetic (166 µs vs 157 µs for four 240↔60 layers at 28×28; FP32 grouped: 169 µs). So when a
shuffle follows such a convolution (through ReLU-like activations), the convolution is made dense
(block-diagonal weights) and the shuffle becomes a reordering of its output channels: no operator
left at all.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from edgecv.onnx_graph import OnnxGraph, attr, forget_shapes, rename_input

from .context import PassContext
from .conv_weights import dense_weights

# Per-element activations that commute with a permutation of channels.
CHANNELWISE = {"Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Identity"}


def fold_channel_shuffles(ctx: PassContext) -> None:
    """Fold each channel shuffle into the convolution in front of it, or else make it a 1×1
    permutation convolution (kept in ``ctx.permutations``)."""
    model = ctx.model
    for first in [n for n in model.graph.node if n.op_type == "Reshape"]:
        graph = OnnxGraph(model)
        found = channel_permutation(graph, first, ctx.shapes)
        if found is None:
            continue
        trans, last, order = found
        shuffle = [first, trans, last]
        if any(n.name in ctx.keep for n in shuffle):
            continue
        conv = _foldable_producer(graph, first.input[0], ctx.keep)
        if conv is not None:
            dense = attr(conv, "group", 1) > 1
            _permute_conv_outputs(graph, conv, order)
            _bypass(model, shuffle, first.input[0], last.output[0])
            ctx.records.append(
                {
                    "rule": "channel_shuffle_into_conv",
                    "nodes": [n.name for n in shuffle],
                    "into": conv.name,
                    "why": (
                        "grouped 1x1 conv made dense (ONNX Runtime's grouped QLinearConv is no faster) and "
                        if dense
                        else ""
                    )
                    + "the channel shuffle folded into its output channels: ONNX Runtime's uint8 Transpose "
                    "around its channels-last INT8 kernels cost more than the convolutions",
                }
            )
        else:
            ctx.permutations.append(_shuffle_as_conv(graph, shuffle, order))
            ctx.records.append(
                {
                    "rule": "channel_shuffle_as_1x1_conv",
                    "nodes": [n.name for n in shuffle],
                    "why": "a channel shuffle as a 1x1 convolution with a permutation matrix runs in ONNX "
                    "Runtime's INT8 kernels (exactly: same scale in and out) about 10x faster than as "
                    "Reshape/Transpose around its channels-last layout",
                }
            )


def channel_permutation(graph: OnnxGraph, first: onnx.NodeProto, shapes: dict[str, list[int]]):
    """``(transpose, last, perm)`` when ``first`` starts ``Reshape [N,d1..dk,H,W] → Transpose (of
    the d axes only) → Reshape [N,C,H,W]`` on an NCHW tensor, i.e. ``y[:, j] = x[:, perm[j]]``."""
    in_shape = shapes.get(first.input[0])
    if first.op_type != "Reshape" or in_shape is None or len(in_shape) != 4 or 0 in in_shape:
        return None
    n_, c, h, w = in_shape
    mid = _reshape_target(graph, first, in_shape)
    if mid is None or len(mid) < 5 or mid[0] != n_ or mid[-2:] != [h, w]:
        return None
    nexts = graph.readers(first.output[0])
    if len(nexts) != 1 or nexts[0].op_type != "Transpose" or first.output[0] in graph.graph_outputs:
        return None
    trans, k = nexts[0], len(mid) - 3
    perm = list(attr(trans, "perm", []))
    if len(perm) != len(mid) or perm[0] != 0 or perm[-2:] != [k + 1, k + 2] or trans.output[0] in graph.graph_outputs:
        return None
    nexts = graph.readers(trans.output[0])
    if len(nexts) != 1 or nexts[0].op_type != "Reshape":
        return None
    last = nexts[0]
    if _reshape_target(graph, last, [mid[p] for p in perm]) != [n_, c, h, w]:
        return None
    order = np.arange(c).reshape(mid[1 : k + 1]).transpose([p - 1 for p in perm[1 : k + 1]]).reshape(-1)
    return trans, last, order


def _reshape_target(graph: OnnxGraph, node: onnx.NodeProto, in_shape: list[int]) -> list[int] | None:
    shape = graph.constant(node.input[1])
    if shape is None:
        return None
    out = [int(s) for s in shape]
    if attr(node, "allowzero", 0) == 0:
        out = [in_shape[i] if s == 0 and i < len(in_shape) else s for i, s in enumerate(out)]
    if out.count(-1) == 1:
        known = int(np.prod([s for s in out if s != -1]))
        out[out.index(-1)] = int(np.prod(in_shape)) // max(known, 1)
    return out if int(np.prod(out)) == int(np.prod(in_shape)) else None


def _foldable_producer(graph: OnnxGraph, tensor: str, keep: set[str]) -> onnx.NodeProto | None:
    """The Conv computing ``tensor`` through channel-wise activations only, each step used by
    nothing else, whose output channels can be reordered freely (dense, or grouped 1×1)."""
    node = graph.producer.get(tensor)
    while node is not None and node.op_type in CHANNELWISE:
        if len(graph.readers(node.output[0])) != 1 or node.output[0] in graph.graph_outputs or node.name in keep:
            return None
        if node.op_type == "Clip" and any(graph.constant(i) is None for i in node.input[1:] if i):
            return None
        node = graph.producer.get(node.input[0])
    if node is None or node.op_type != "Conv" or node.name in keep:
        return None
    if len(graph.readers(node.output[0])) != 1 or node.output[0] in graph.graph_outputs:
        return None
    weight = graph.constant(node.input[1])
    if weight is None or (len(node.input) > 2 and node.input[2] and graph.constant(node.input[2]) is None):
        return None
    group = attr(node, "group", 1)
    if group > 1 and (any(s != 1 for s in weight.shape[2:]) or weight.shape[1] == 1):
        return None  # grouped k×k or depthwise: made dense it would cost real arithmetic
    return node


def _permute_conv_outputs(graph: OnnxGraph, conv: onnx.NodeProto, order: np.ndarray) -> None:
    weight = dense_weights(conv, graph.constant(conv.input[1]))
    base = conv.name or conv.output[0]
    conv.input[1] = graph.add_initializer(weight[order], f"{base}/weight_reordered")
    if len(conv.input) > 2 and conv.input[2]:
        conv.input[2] = graph.add_initializer(graph.constant(conv.input[2])[order], f"{base}/bias_reordered")


def _bypass(model: onnx.ModelProto, removed: list[onnx.NodeProto], source: str, target: str) -> None:
    for node in removed:
        model.graph.node.remove(node)
    rename_input(model, target, source)
    forget_shapes(model, [o for n in removed for o in n.output])


def _shuffle_as_conv(graph: OnnxGraph, shuffle: list[onnx.NodeProto], order: np.ndarray) -> onnx.NodeProto:
    model = graph.model
    first, _, last = shuffle
    c = len(order)
    weight = np.zeros((c, c, 1, 1), np.float32)
    weight[np.arange(c), order, 0, 0] = 1.0
    name = f"{first.name or last.output[0]}/as_conv"
    graph.add_initializer(weight, f"{name}/weight")
    conv = helper.make_node(
        "Conv", [first.input[0], f"{name}/weight"], [last.output[0]], name=name, kernel_shape=[1, 1]
    )
    at = list(model.graph.node).index(first)
    for node in shuffle:
        model.graph.node.remove(node)
    model.graph.node.insert(at, conv)
    forget_shapes(model, [first.output[0], shuffle[1].output[0]])
    return conv
