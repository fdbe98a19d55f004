"""Check a Q/DQ ONNX graph against what TensorRT's ONNX parser needs for an INT8 engine, without
TensorRT: the TensorRT-flavour ``model.int8.onnx`` is written only when this finds nothing.

The rules (onnx-tensorrt's operator notes, TensorRT's ``NvInfer.h``, and public issue threads):

* ``opset``: QuantizeLinear/DequantizeLinear with per-channel ``axis`` need opset ≥ 13.
* ``domain``: Q/DQ from the standard domain (contrib-op ``com.microsoft`` Q/DQ do not parse).
* ``int8``: signed INT8 quantized values (UINT8 and INT16 are for other engines, DLA at most).
* ``zero-point``: zero points present and all 0 (TensorRT is symmetric only).
* ``scale-constant`` / ``scale-positive``: scales are build-time constants, finite and > 0.
* ``per-channel-weights-only``: per-channel scales only on weights, along their output-channel
  axis (0 for Conv and for Gemm with transB=1); activations take one scalar scale.
* ``bias-float``: no INT32 DequantizeLinear (a quantized Conv bias fails to parse).
* ``weight-qdq-pair``: no DequantizeLinear fed directly by a quantized initializer (TensorRT 8:
  "only activation types allowed as input"); weights are float initializers behind Q→DQ.
* ``dedicated-pair``: every Q feeds one DQ and every DQ one consumer, so each fusion owns its pair.
* ``residual-add``: an Add of two activations has a DQ on both inputs, so TensorRT can fuse it into
  the INT8 convolution before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgecv.onnx_graph import OnnxGraph, default_opset, node_label

MIN_OPSET = 13
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# Output-channel axis of a weight per consumer; Gemm's depends on transB.
WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


@dataclass(frozen=True)
class Violation:
    rule: str
    node: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.node}: {self.message}"


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _weight_axis(consumer: onnx.NodeProto) -> int:
    if consumer.op_type == "Gemm":
        trans_b = next((a.i for a in consumer.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if consumer.op_type in ("ConvTranspose", "MatMul"):
        return 1
    return 0


def _weight_consumers(graph: OnnxGraph, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """Nodes that take this Q's (or DQ's) result as their weight input."""
    dq_outputs = [node.output[0]]
    if node.op_type == "QuantizeLinear":
        dq_outputs = [dq.output[0] for dq in graph.consumers[node.output[0]] if dq.op_type == "DequantizeLinear"]
    return [
        c
        for out in dq_outputs
        for c in graph.consumers[out]
        if c.op_type in WEIGHT_INPUT
        and len(c.input) > WEIGHT_INPUT[c.op_type]
        and c.input[WEIGHT_INPUT[c.op_type]] == out
    ]


def _is_weight_path(graph: OnnxGraph, node: onnx.NodeProto) -> bool:
    if node.op_type == "QuantizeLinear":
        return graph.is_constant(node.input[0])
    producer = graph.producer.get(node.input[0])
    return graph.is_constant(node.input[0]) or (
        producer is not None and producer.op_type == "QuantizeLinear" and graph.is_constant(producer.input[0])
    )


def _check_qdq(graph: OnnxGraph, node: onnx.NodeProto) -> list[Violation]:
    out: list[Violation] = []
    name = node_label(node)
    if node.domain not in ("", "ai.onnx"):
        out.append(
            Violation(
                "domain", name, f"{node.op_type} from domain '{node.domain}'; TensorRT parses the standard one only"
            )
        )
    scale_name = node.input[1] if len(node.input) > 1 else ""
    scale = graph.constant(scale_name)
    if scale is None:
        out.append(
            Violation(
                "scale-constant", name, f"scale '{scale_name}' is computed at run time; TensorRT needs a constant"
            )
        )
    elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        out.append(
            Violation("scale-positive", name, f"scale '{scale_name}' has values ≤ 0 or not finite (min {scale.min()})")
        )
    zp_name = node.input[2] if len(node.input) > 2 else ""
    if not zp_name:
        output_dtype = next((a.i for a in node.attribute if a.name == "output_dtype"), 0)
        if node.op_type == "QuantizeLinear" and output_dtype != onnx.TensorProto.INT8:
            out.append(
                Violation("int8", name, "no zero point: the quantized type defaults to UINT8; TensorRT needs INT8")
            )
        # A DequantizeLinear without one takes its type from the QuantizeLinear checked above it.
    else:
        zp = graph.constant(zp_name)
        zp_type = graph.elem_type(zp_name)
        if zp_type is not None and zp_type != onnx.TensorProto.INT8:
            type_name = onnx.TensorProto.DataType.Name(zp_type)
            if zp_type == onnx.TensorProto.INT32 and node.op_type == "DequantizeLinear":
                out.append(
                    Violation("bias-float", name, "INT32 DequantizeLinear (a quantized bias); keep biases in float")
                )
            else:
                out.append(Violation("int8", name, f"quantized type {type_name}; TensorRT needs signed INT8"))
        if zp is None:
            out.append(Violation("zero-point", name, f"zero point '{zp_name}' is not a constant"))
        elif np.any(zp != 0):
            out.append(Violation("zero-point", name, f"zero point '{zp_name}' is not 0 (asymmetric quantization)"))
    if scale is not None and scale.size > 1:
        out += _check_per_channel(graph, node, name)
    if node.op_type == "DequantizeLinear" and graph.is_constant(node.input[0]):
        out.append(
            Violation(
                "weight-qdq-pair",
                name,
                f"fed directly by the quantized initializer '{node.input[0]}'; store the weight in float behind Q→DQ",
            )
        )
    out += _check_dedicated(graph, node, name)
    return out


def _check_per_channel(graph: OnnxGraph, node: onnx.NodeProto, name: str) -> list[Violation]:
    if not _is_weight_path(graph, node):
        return [
            Violation(
                "per-channel-weights-only", name, "per-channel scale on an activation; activations take one scale"
            )
        ]
    consumers = _weight_consumers(graph, node)
    axis = _axis(node)
    wrong = [c for c in consumers if axis != _weight_axis(c)]
    if wrong:
        expected = _weight_axis(wrong[0])
        return [
            Violation(
                "per-channel-weights-only",
                name,
                f"per-channel axis {axis} but {node_label(wrong[0])} ({wrong[0].op_type}) has its output channels on axis {expected}",
            )
        ]
    return []


def _check_dedicated(graph: OnnxGraph, node: onnx.NodeProto, name: str) -> list[Violation]:
    consumers = graph.consumers[node.output[0]]
    uses = len(consumers) + (node.output[0] in graph.graph_outputs)
    if node.op_type == "QuantizeLinear":
        if uses != 1 or any(c.op_type != "DequantizeLinear" for c in consumers):
            return [
                Violation(
                    "dedicated-pair",
                    name,
                    f"QuantizeLinear feeds {uses} nodes; it must feed exactly one DequantizeLinear",
                )
            ]
    elif uses > 1:
        return [
            Violation(
                "dedicated-pair", name, f"DequantizeLinear shared by {uses} consumers; give each its own Q→DQ pair"
            )
        ]
    return []


def _check_add(graph: OnnxGraph, node: onnx.NodeProto) -> list[Violation]:
    activations = [i for i in node.input[:2] if i and not graph.is_constant(i)]
    if len(activations) < 2:
        return []
    undq = [i for i in activations if getattr(graph.producer.get(i), "op_type", None) != "DequantizeLinear"]
    if not undq:
        return []
    return [
        Violation(
            "residual-add",
            node_label(node),
            f"input(s) {', '.join(undq)} not dequantized; a residual Add needs Q/DQ on both inputs to run in INT8",
        )
    ]


def check_tensorrt_qdq(model: onnx.ModelProto | str | Path, *, exempt: tuple[str, ...] = ()) -> list[Violation]:
    """Every way ``model`` breaks TensorRT's Q/DQ rules (empty: TensorRT can build an INT8 engine).

    ``exempt``: node names deliberately left in float (``--exclude``/``--keep-fp32``), not checked by
    the residual-Add rule."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    graph = OnnxGraph(model)
    found: list[Violation] = []
    opset = default_opset(model)
    if opset < MIN_OPSET:
        found.append(Violation("opset", "graph", f"opset {opset}; per-channel Q/DQ needs opset ≥ {MIN_OPSET}"))
    qdq = [n for n in graph.nodes if n.op_type in QDQ_OPS]
    if not qdq:
        return [
            *found,
            Violation("int8", "graph", "no QuantizeLinear/DequantizeLinear nodes: the graph is not quantized"),
        ]
    for node in qdq:
        found += _check_qdq(graph, node)
    exempt_set = set(exempt)
    for node in graph.nodes:
        if node.op_type == "Add" and node.name not in exempt_set:
            found += _check_add(graph, node)
    return found
