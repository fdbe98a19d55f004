"""Which nodes of an exported graph stay in float: nodes named after the module scopes a model
declares (a detector's decode and prediction convolutions), the data movement between float nodes,
and how what stays float is counted for a reader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnx

from edgecv.onnx_graph import OnnxGraph

from .sensitivity import LAYER_OPS


def name_unnamed_nodes(model: onnx.ModelProto) -> int:
    """Name every nameless node after its first output (``/decode/Mul_2_output_0`` → ``/decode/Mul_2``).

    Graph optimisers leave some nodes without a name (a decomposed hard-swish, for one). ONNX
    Runtime's quantizer then treats them as one node: a shared Q→DQ pair where each consumer needs
    its own, which TensorRT's rules refuse; and excluding by scope cannot find them. Tensor names
    keep the module path, so the names given here do too. Returns how many nodes were named."""
    taken = {n.name for n in model.graph.node if n.name}
    named = 0
    for node in model.graph.node:
        if node.name:
            continue
        base = node.output[0].removesuffix("_output_0") if node.output else node.op_type
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        node.name = name
        taken.add(name)
        named += 1
    return named


def nodes_in_scopes(model: onnx.ModelProto, scopes: Sequence[str]) -> list[str]:
    """Nodes exported from the modules at ``scopes`` (dotted paths such as ``decode`` or
    ``head.cls_preds``). The TorchScript exporter names a node after its module path, one level per
    segment, either as full paths (``/head/head.cls_preds/head.cls_preds.0/Conv``) or as each
    level's own name (``/head/cls_preds.0/Conv``, torch 2.13), so a segment, or the segments joined
    by dots, equal to the scope or starting with ``scope.`` places the node (or its first output
    tensor) inside it."""
    if not scopes:
        return []
    hits = []
    for node in model.graph.node:
        # onnxsim renames some nodes (``Mul_2``) but keeps their output tensor's scoped name.
        for label in (node.name, *node.output[:1]):
            parts = label.split("/")[1:-1]
            if parts:
                parts.append(".".join(parts))
            if any(p == s or p.startswith(s + ".") for p in parts for s in scopes):
                hits.append(node.name)
                break
    return hits


# Ops that only move or regroup values: one quantized between float nodes costs a Q/DQ round trip
# and gains no INT8 arithmetic.
DATA_MOVEMENT_OPS = frozenset(
    {
        "Concat",
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Slice",
        "Split",
        "Gather",
        "Identity",
    }
)


def float_feeders(model: onnx.ModelProto, floating: Sequence[str]) -> list[str]:
    """Data-movement nodes (:data:`DATA_MOVEMENT_OPS`) whose every consumer stays in float (is in
    ``floating``, or found here) and whose inputs are not produced by a quantized node, so they are
    kept in float too.

    YOLOX concatenates its float prediction convs' outputs (box offsets, objectness and class
    logits) in its head, before ``decode``: quantized, that Concat put each prediction through
    8 bits again (box offsets in steps of 0.01–0.03 strides, logits in steps of 0.1–0.14); keeping
    it float gave the trained shapes detector (tests/evaluate/test_trained_detector.py) back 0.1–0.2
    point of mAP@[.5:.95] in both ONNX flavours."""
    graph = OnnxGraph(model)
    kept = set(floating)
    added: list[str] = []
    changed = True
    while changed:
        changed = False
        for node in reversed(model.graph.node):
            if node.name in kept or node.op_type not in DATA_MOVEMENT_OPS:
                continue
            users = [c for out in node.output for c in graph.readers(out)]
            if not users and not any(out in graph.graph_outputs for out in node.output):
                continue
            if not all(u.name in kept for u in users):
                continue
            sources = [graph.producer[i] for i in node.input if i in graph.producer]
            if not all(src.name in kept for src in sources):
                continue
            kept.add(node.name)
            added.append(node.name)
            changed = True
    return added


def float_summary(op_types: dict[str, str], excluded: Sequence[str], by_design: Sequence[str]) -> dict[str, Any]:
    """What stays in float, counted the way a reader counts it: the layers INT8 would otherwise have
    run (Conv, Gemm, MatMul) kept in float by ``--exclude``/``--keep-fp32``, apart from a detector's
    decode/NMS tail, which stays float by design and is mostly not layers at all."""
    design = set(by_design)
    chosen = [n for n in excluded if n not in design]
    return {
        "layers": [n for n in chosen if op_types.get(n) in LAYER_OPS],
        "other_nodes": sum(op_types.get(n) not in LAYER_OPS for n in chosen),
        "by_design_nodes": len(design),
        "by_design_layers": sum(op_types.get(n) in LAYER_OPS for n in design),
    }
