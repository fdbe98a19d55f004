"""The input image padded to four channels.

A convolution reading a 3-channel image misses ONNX Runtime's fast x86 INT8 kernel, which wants input
channels in fours: the image gets a zero channel from a Pad kept in float (before the image is
quantized) and the convolution a zero weight for it. The padded image is the one new activation
tensor of the CPU rewrites; its record's ``range_of`` names the tensor whose range it shares.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from edgecv.onnx_graph import OnnxGraph, attr

from .channel_alignment import INPUT_ALIGN, round_up
from .context import PassContext
from .conv_weights import conv_weights, set_weights


def pad_image_channels(ctx: PassContext) -> None:
    model = ctx.model
    graph = OnnxGraph(model)
    for name in graph.graph_inputs:
        shape = ctx.shapes.get(name)
        readers = graph.readers(name)
        if shape is None or len(shape) != 4 or not shape[1] or shape[1] % INPUT_ALIGN == 0 or not readers:
            continue
        if any(r.op_type != "Conv" or r.name in ctx.keep or r.input[0] != name for r in readers):
            continue
        weights = [conv_weights(graph, r) for r in readers]
        if any(w is None or attr(r, "group", 1) != 1 for r, w in zip(readers, weights)):
            continue
        extra = round_up(shape[1], INPUT_ALIGN) - shape[1]
        padded, pad_name = f"{name}/channels_padded", f"{name}/pad_channels"
        graph.add_initializer(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64), f"{pad_name}/pads")
        model.graph.node.insert(
            0, helper.make_node("Pad", [name, f"{pad_name}/pads"], [padded], name=pad_name, mode="constant")
        )
        for reader, (w, b) in zip(readers, weights):
            w = np.concatenate([w, np.zeros((w.shape[0], extra, *w.shape[2:]), w.dtype)], axis=1)
            set_weights(graph, reader, w, b, f"in{shape[1] + extra}")
            reader.input[0] = padded
        ctx.records.append(
            {
                "rule": "image_channels_padded",
                "nodes": [pad_name, *(r.name for r in readers)],
                "channels": [shape[1], shape[1] + extra],
                "kept_float": [pad_name],
                "range_of": {padded: name},
                "why": f"the {shape[1]}-channel image padded to {shape[1] + extra} channels (the Pad runs in float, "
                "before the image is quantized) so the first convolution runs in ONNX Runtime's fast INT8 kernel",
            }
        )
