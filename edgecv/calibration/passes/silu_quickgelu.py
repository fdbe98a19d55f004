"""SiLU as ONNX Runtime's QuickGelu, left in float.

SiLU (``x · Sigmoid(x)``, YOLOX's activation) quantized by ONNX Runtime's tools becomes a
QLinearSigmoid lookup and a QLinearMul, together slower than the float QuickGelu ONNX Runtime fuses
it into in FP32 (YOLOX-nano 416: 3.6 ms of a 6.4 ms INT8 run, against 1.1 ms). Written as that
QuickGelu (an ONNX Runtime operator: this flavour is for ONNX Runtime only), it stays in float
between a DequantizeLinear and a QuantizeLinear: the run took 0.86× FP32's time instead of 0.71× —
still slower than FP32, because ONNX Runtime's integer depthwise convolutions are 2–3× slower than
its float ones, and YOLOX-nano is mostly depthwise; OpenVINO's INT8 is the fast one there.
"""

from __future__ import annotations

from onnx import helper

from edgecv.onnx_graph import OnnxGraph

from .context import PassContext

MS_DOMAIN = "com.microsoft"  # ONNX Runtime's own operators


def silu_as_quickgelu(ctx: PassContext) -> None:
    """``Mul(x, Sigmoid(x))`` → ONNX Runtime's ``QuickGelu(x, alpha=1)`` (the same function), left in
    float by the quantizer: faster than its integer Sigmoid lookup and integer Mul."""
    model = ctx.model
    graph = OnnxGraph(model)
    fused: list[str] = []
    dropped: set[str] = set()
    for mul in [n for n in model.graph.node if n.op_type == "Mul" and n.name not in ctx.keep]:
        for x, gate in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            sigmoid = graph.producer.get(gate)
            if sigmoid is None or sigmoid.op_type != "Sigmoid" or sigmoid.input[0] != x or sigmoid.name in ctx.keep:
                continue
            if len(graph.readers(gate)) != 1 or gate in graph.graph_outputs:
                continue
            name = mul.name or mul.output[0]
            mul.CopyFrom(helper.make_node("QuickGelu", [x], list(mul.output), name=name, domain=MS_DOMAIN, alpha=1.0))
            dropped.add(sigmoid.name or sigmoid.output[0])
            fused.append(name)
            break
    if not fused:
        return
    for node in [n for n in model.graph.node if (n.name or n.output[0]) in dropped]:
        model.graph.node.remove(node)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    ctx.records.append(
        {
            "rule": "silu_as_quickgelu",
            "nodes": fused,
            "kept_float": fused,
            "why": "SiLU x·sigmoid(x) runs as ONNX Runtime's float QuickGelu between DequantizeLinear and "
            "QuantizeLinear: its integer Sigmoid lookup plus integer Mul were slower",
        }
    )
