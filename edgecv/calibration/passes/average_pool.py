"""Average pools as depthwise convolutions.

``QLinearAveragePool`` (ShuffleNet V1's stride-2 shortcut) took 10 % of the INT8 run, about nine
times the FP32 pool. An AveragePool that counts padding is a depthwise convolution with weights
1/(kh·kw), which runs as a depthwise ``QLinearConv`` (the weights quantize exactly).
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from edgecv.onnx_graph import attr, replace_node

from .context import PassContext


def average_pools_as_depthwise(ctx: PassContext) -> None:
    graph = ctx.model.graph
    for node in [n for n in graph.node if n.op_type == "AveragePool"]:
        in_shape = ctx.shapes.get(node.input[0])
        kernel = list(attr(node, "kernel_shape", []))
        pads = list(attr(node, "pads", [0] * 2 * len(kernel)))
        if node.name in ctx.keep or in_shape is None or len(in_shape) != 4 or not in_shape[1] or len(kernel) != 2:
            continue
        if attr(node, "ceil_mode", 0) or attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        if any(d != 1 for d in attr(node, "dilations", [1, 1])):
            continue
        # Without count_include_pad a border cell divides by fewer values: not a convolution.
        if any(pads) and not attr(node, "count_include_pad", 0):
            continue
        c = in_shape[1]
        weight = f"{node.name or node.output[0]}/mean_weight"
        graph.initializer.append(
            numpy_helper.from_array(np.full((c, 1, *kernel), 1.0 / (kernel[0] * kernel[1]), np.float32), weight)
        )
        conv = helper.make_node(
            "Conv",
            [node.input[0], weight],
            list(node.output),
            name=node.name,
            group=c,
            kernel_shape=kernel,
            pads=pads,
            strides=list(attr(node, "strides", [1, 1])),
        )
        replace_node(ctx.model, node, [conv])
        ctx.records.append(
            {
                "rule": "average_pool_as_depthwise_conv",
                "nodes": [node.name],
                "why": "ONNX Runtime's QLinearAveragePool is several times slower than the FP32 pool; the same "
                "mean as a depthwise convolution runs in its integer kernels",
            }
        )
