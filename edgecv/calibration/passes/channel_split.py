"""ShuffleNet V2's shuffle + split: the permutation and each channel Slice after it become one
selection convolution, folded into the convolution that reads the half where there is one."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from edgecv.onnx_graph import OnnxGraph, attr, replace_node

from .context import PassContext
from .conv_weights import conv_weights, set_weights


def fold_split_permutations(ctx: PassContext) -> None:
    """A permutation convolution read only by channel Slices becomes one selection convolution per
    Slice, and a selection read only by a convolution is folded into that convolution's weights:
    fewer multiply-adds than the full permutation, no Slice, and the reading convolution gets the
    shuffle's channel count, which ONNX Runtime's fast INT8 kernel takes where the half did not
    (ShuffleNet V2's 116 channels against 58)."""
    model, keep = ctx.model, ctx.keep
    for perm in ctx.permutations:
        graph = OnnxGraph(model)
        weight = graph.constant(perm.input[1])[:, :, 0, 0]
        readers = graph.readers(perm.output[0])
        ranges = [_channel_slice(graph, r, weight.shape[0]) for r in readers]
        if (
            not readers
            or perm.output[0] in graph.graph_outputs
            or any(r is None for r in ranges)
            or any(r.name in keep for r in readers)
        ):
            continue
        folded = []
        for slice_node, (start, end) in zip(readers, ranges):
            selection = weight[start:end]
            nexts = graph.readers(slice_node.output[0])
            target = nexts[0] if len(nexts) == 1 and slice_node.output[0] not in graph.graph_outputs else None
            conv = conv_weights(graph, target) if target is not None and target.op_type == "Conv" else None
            if (
                conv is not None
                and target.name not in keep
                and attr(target, "group", 1) == 1
                and target.input[0] == slice_node.output[0]
            ):
                w, b = conv
                set_weights(graph, target, np.einsum("ojhw,jc->ochw", w, selection), b, "selected")
                target.input[0] = perm.input[0]
                model.graph.node.remove(slice_node)
                folded.append(target.name)
                continue
            name = slice_node.name or slice_node.output[0]
            graph.add_initializer(selection[:, :, None, None].astype(np.float32), f"{name}/selection")
            selector = helper.make_node(
                "Conv", [perm.input[0], f"{name}/selection"], list(slice_node.output), name=name, kernel_shape=[1, 1]
            )
            replace_node(model, slice_node, [selector])
        model.graph.node.remove(perm)
        ctx.records.append(
            {
                "rule": "channel_split_as_selection",
                "nodes": [perm.name, *(r.name for r in readers)],
                "into": folded,
                "why": "the permutation convolution and the Slices after it become selection convolutions, "
                "folded into the convolution that reads a slice where there is one: less arithmetic, no Slice",
            }
        )


def _channel_slice(graph: OnnxGraph, node: onnx.NodeProto, channels: int) -> tuple[int, int] | None:
    """``(start, end)`` of a Slice that takes a contiguous range of channels (axis 1) and nothing else."""
    if node.op_type != "Slice" or len(node.input) < 4:
        return None
    values = [graph.constant(i) if i else None for i in node.input[1:]]
    starts, ends, axes = values[:3]
    steps = values[3] if len(values) > 3 else None
    if starts is None or ends is None or axes is None or len(axes) != 1 or int(axes[0]) not in (1, -3):
        return None
    if steps is not None and int(steps[0]) != 1:
        return None
    start, end = (int(v) + channels if int(v) < 0 else int(v) for v in (starts[0], ends[0]))
    start, end = max(0, min(start, channels)), max(0, min(end, channels))
    return (start, end) if end > start else None
