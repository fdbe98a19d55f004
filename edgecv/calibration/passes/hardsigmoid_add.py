"""Hard-sigmoid as an integer Add in a quantized graph, for ONNX Runtime's CPU kernels.

ONNX Runtime has no integer HardSigmoid. A hard-swish (``x · HardSigmoid(x)``; ONNX Runtime's
pre-processing decomposes ``HardSwish`` into exactly that) therefore runs as DequantizeLinear →
float HardSigmoid → QuantizeLinear → QLinearMul, and on MobileNetV3 those three float-boundary
operators cost as much as a third of all its integer convolutions (profiled on an AVX-512 VNNI
EPYC: 0.60 ms of a 2.3 ms INT8 run, whose convolutions took 1.0 ms).

``HardSigmoid(x) = clip(α·x + β, 0, 1)``, and the graph quantizes it at once, to uint8 with zero
point 0 and a scale ``s`` whose 255 steps end at or below 1 (the calibrated range of a value in
[0, 1]). That quantization saturates at 0 and at ``255·s``, which is the clip, so
``Q_s(HardSigmoid(x)) = Q_{s/α}(x + β/α)``: an ``Add`` of the constant ``β/α`` (exact in uint8)
quantized at scale ``s/α`` and read back, as before, at ``s``. ONNX Runtime runs that as one
vectorised QLinearAdd, and the values are those of the graph it replaces (up to the rounding of the
integer requantization).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import onnx
from onnx import helper

from edgecv.onnx_graph import OnnxGraph, attr, remove_unused_nodes, replace_node

UINT8_LEVELS = 255


def hardsigmoid_as_integer_add(model: onnx.ModelProto, keep: Collection[str] = ()) -> list[dict[str, Any]]:
    """Rewrite every ``DequantizeLinear → HardSigmoid → QuantizeLinear`` (uint8, zero point 0, range
    within [0, 1]) in place; returns one record (rule, nodes, why) or nothing. Nodes in ``keep`` stay
    as they are."""
    graph = OnnxGraph(model)
    rewritten: list[str] = []
    for hs in [n for n in model.graph.node if n.op_type == "HardSigmoid" and n.name not in keep]:
        alpha, beta = float(attr(hs, "alpha", 0.2)), float(attr(hs, "beta", 0.5))
        source = graph.producer.get(hs.input[0])
        readers = graph.readers(hs.output[0])
        if alpha <= 0 or source is None or source.op_type != "DequantizeLinear":
            continue
        if _scalar(graph, source.input[1]) is None:
            continue  # a per-channel input scale
        if len(readers) != 1 or readers[0].op_type != "QuantizeLinear" or hs.output[0] in graph.graph_outputs:
            continue
        quantize = readers[0]
        scale = _scalar(graph, quantize.input[1])
        zero_point = _scalar(graph, quantize.input[2] if len(quantize.input) > 2 else "")
        if scale is None or zero_point is None or zero_point.dtype != np.uint8 or zero_point != 0:
            continue
        if not 0 < float(scale) * UINT8_LEVELS <= 1 + 1e-6:
            continue  # this quantization does not do the clip at 1
        base = hs.name or hs.output[0]
        offset = beta / alpha
        graph.add_initializer(np.array(UINT8_LEVELS if offset >= 0 else 0, np.uint8), f"{base}/offset_q")
        graph.add_initializer(np.array(abs(offset) / UINT8_LEVELS, np.float32), f"{base}/offset_scale")
        graph.add_initializer(np.array(0 if offset >= 0 else UINT8_LEVELS, np.uint8), f"{base}/offset_zp")
        graph.add_initializer(np.array(float(scale) / alpha, np.float32), f"{base}/sum_scale")
        constant = helper.make_node(
            "DequantizeLinear",
            [f"{base}/offset_q", f"{base}/offset_scale", f"{base}/offset_zp"],
            [f"{base}/offset"],
            name=f"{base}/offset_DequantizeLinear",
        )
        add = helper.make_node("Add", [hs.input[0], f"{base}/offset"], list(hs.output), name=base)
        quantize.input[1] = f"{base}/sum_scale"
        replace_node(model, hs, [constant, add])
        rewritten.append(base)
    if not rewritten:
        return []
    remove_unused_nodes(model)
    return [
        {
            "rule": "hardsigmoid_as_integer_add",
            "nodes": rewritten,
            "why": "ONNX Runtime has no integer HardSigmoid: clip(αx+β, 0, 1), quantized where its uint8 range "
            "saturates at 0 and at most 1, is the integer Add x + β/α quantized at the scale divided by α, one "
            "QLinearAdd instead of a float HardSigmoid between DequantizeLinear and QuantizeLinear",
        }
    ]


def _scalar(graph: OnnxGraph, name: str) -> np.generic | None:
    """The single value of initializer ``name``; None if it is not one (the quantizer writes its
    scales and zero points as initializers; anything else is a graph this rewrite does not know)."""
    return graph.scalar(name) if name in graph.initializers else None
