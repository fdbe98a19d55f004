"""Channel counts padded with zero channels to what ONNX Runtime's fast x86 INT8 convolutions take.

ONNX Runtime's fast x86 INT8 convolution kernels (MLAS "ConvSym", indirect convolution) take a
depthwise convolution only with channels in sixteens and a dense one only with input channels in
fours and output channels in eights (AVX2/AVX-VNNI; AVX-512 needs fours) and at least 16 of them.
Anything else falls back to im2col + GEMM or to a plain depthwise loop: ShuffleNet's 58, 60, 116,
120 channels ran slower code (a depthwise layer at 58 channels: 2.4× the time of one at 64). Zero
channels are appended where a convolution makes them and given zero weights where one reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgecv.onnx_graph import OnnxGraph, forget_shapes, set_attr_int

from .channel_shuffle import CHANNELWISE
from .context import PassContext
from .conv_weights import conv_weights, dense_weights, densifiable, is_depthwise, set_weights

DEPTHWISE_ALIGN, INPUT_ALIGN, OUTPUT_ALIGN, MIN_OUTPUTS = 16, 4, 8, 16

# Operators whose output channel c depends on input channel c alone (a global pool included).
_PADDABLE_UNARY = CHANNELWISE | {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
# Element-wise products and sums of two tensors with the same channels (one may be broadcast over
# height and width, as a squeeze-and-excitation scale is): zero-padded channels meet each other.
_PADDABLE_PAIR = {"Mul", "Add"}


def round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def align_channels(ctx: PassContext) -> None:
    """Give the channels between the convolutions that make them and the convolutions that read
    them the counts ONNX Runtime's fast INT8 kernels need, by appending channels that are zero where
    they are made and ignored where they are read (zero weights): the function is unchanged, the
    arithmetic grows by the padding. Between the two may lie per-channel operators, depthwise
    convolutions, a squeeze-and-excitation block (its global pool, its 1×1 convolutions and the
    product with its scale) and gated activations (hard-swish as ``x · HardSigmoid(x)``, SiLU)."""
    model = ctx.model
    for producer_node in [n for n in model.graph.node if n.op_type == "Conv"]:
        graph = OnnxGraph(model)
        region = _padding_region(graph, producer_node, ctx.keep)
        if region is None:
            continue
        align = DEPTHWISE_ALIGN if region.depthwise else OUTPUT_ALIGN
        channels = region.channels
        padded = max(round_up(channels, align), MIN_OUTPUTS if not region.depthwise else align)
        if padded == channels or (not region.depthwise and channels % OUTPUT_ALIGN == 0 and channels >= MIN_OUTPUTS):
            continue
        extra = padded - channels
        for node in region.producers:
            weight, bias = conv_weights(graph, node)
            weight = dense_weights(node, weight)
            weight = np.concatenate([weight, np.zeros((extra, *weight.shape[1:]), weight.dtype)])
            bias = None if bias is None else np.concatenate([bias, np.zeros(extra, bias.dtype)])
            set_weights(graph, node, weight, bias, f"pad{padded}")
        for node in region.depthwise:
            w, b = conv_weights(graph, node)
            w = np.concatenate([w, np.zeros((extra, *w.shape[1:]), w.dtype)])
            b = None if b is None else np.concatenate([b, np.zeros(extra, b.dtype)])
            set_attr_int(node, "group", padded)
            set_weights(graph, node, w, b, f"pad{padded}")
        for node in region.readers:
            # A convolution both making and reading the channels reads its padded weights back here.
            w, b = conv_weights(graph, node)
            w = dense_weights(node, w)
            w = np.concatenate([w, np.zeros((w.shape[0], extra, *w.shape[2:]), w.dtype)], axis=1)
            set_weights(graph, node, w, b, f"in{padded}")
        forget_shapes(model, region.tensors)
        ctx.records.append(
            {
                "rule": "channels_aligned",
                "nodes": list(dict.fromkeys(n.name for n in (*region.producers, *region.depthwise, *region.readers))),
                "channels": [channels, padded],
                "why": f"{channels} channels padded with {extra} zero channels to {padded}: ONNX Runtime's fast INT8 "
                "convolution kernels need depthwise channels in sixteens and dense channels in fours/eights",
            }
        )


@dataclass
class _Region:
    channels: int
    producers: list[onnx.NodeProto]  # dense convolutions that make the channels: pad their outputs
    depthwise: list[onnx.NodeProto]  # pad their channels (weights and group)
    readers: list[onnx.NodeProto]  # dense convolutions that read the channels: pad their inputs
    tensors: list[str]


def _padding_region(graph: OnnxGraph, producer_node: onnx.NodeProto, keep: set[str]) -> _Region | None:
    """Every tensor that carries the channels ``producer_node`` makes, followed forwards to the
    convolutions that read them and backwards to every convolution that makes a tensor combined with
    them, when all of it can grow by zero channels without changing the function: nothing else reads
    or makes those tensors, none is a graph output and no node involved is kept in float."""
    if producer_node.name in keep:
        return None
    conv = conv_weights(graph, producer_node)
    if conv is None or is_depthwise(producer_node, conv[0]) or not densifiable(producer_node, conv[0]):
        return None
    region = _Region(conv[0].shape[0], [], [], [], [])
    todo = [producer_node.output[0]]

    def member(node: onnx.NodeProto, role: list[onnx.NodeProto]) -> bool:
        # Per role, not over the whole region: a dense convolution that both reads the channels and
        # makes a tensor combined with them (a residual branch's projection) must be in producers
        # and in readers, or one side of its weights keeps the old count.
        key = _key(node)
        return any(key == _key(n) for n in role)

    def is_scalar(name: str) -> bool:
        value = graph.constant(name)
        return value is not None and value.size == 1

    def add_made_by(node: onnx.NodeProto) -> bool:
        """Take in the node that makes a region tensor, and what it reads; False if it cannot grow."""
        if node.name in keep:
            return False
        if node.op_type == "Conv":
            weights = conv_weights(graph, node)
            if weights is None:
                return False
            if is_depthwise(node, weights[0]):
                if not member(node, region.depthwise):
                    region.depthwise.append(node)
                    todo.append(node.input[0])
                return True
            if not densifiable(node, weights[0]) or weights[0].shape[0] != region.channels:
                return False
            if not member(node, region.producers):
                region.producers.append(node)
            return True
        if node.op_type in _PADDABLE_UNARY:
            todo.append(node.input[0])
            return all(is_scalar(i) for i in node.input[1:] if i)
        if node.op_type in _PADDABLE_PAIR:
            for name in node.input:
                if graph.constant(name) is not None:
                    if not is_scalar(name):
                        return False
                else:
                    todo.append(name)
            return True
        return False

    def add_read_by(node: onnx.NodeProto, tensor: str) -> bool:
        """Take in a node that reads a region tensor; False if it cannot take zero channels."""
        if node.name in keep:
            return False
        if node.op_type == "Conv":
            weights = conv_weights(graph, node)
            if weights is None or node.input[0] != tensor:
                return False
            if is_depthwise(node, weights[0]):
                if not member(node, region.depthwise):
                    region.depthwise.append(node)
                todo.append(node.output[0])
            elif densifiable(node, weights[0]):
                if not member(node, region.readers):
                    region.readers.append(node)
            else:
                return False
            return True
        if node.op_type in _PADDABLE_UNARY and node.input[0] == tensor or node.op_type in _PADDABLE_PAIR:
            todo.append(node.output[0])
            return add_made_by(node)
        return False

    while todo:
        tensor = todo.pop()
        if tensor in region.tensors:
            continue
        if tensor in graph.graph_outputs or tensor in graph.initializers or tensor not in graph.producer:
            return None
        region.tensors.append(tensor)
        if not add_made_by(graph.producer[tensor]):
            return None
        for node in graph.readers(tensor):
            if not add_read_by(node, tensor):
                return None
    # A dense convolution may be both a producer and a reader (it reads the channels and makes a
    # tensor added to them): its new rows and columns are both zero.
    return region if region.readers else None


def _key(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]
