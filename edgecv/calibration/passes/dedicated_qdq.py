"""Give every consumer of a quantized tensor its own Q→DQ pair.

ONNX Runtime's ``DedicatedQDQPair`` does this only among the nodes it quantizes: a tensor read by
a quantized node and by one it leaves in float (hard-swish decomposed into ``x * HardSigmoid(x)``:
the Mul is quantized, the HardSigmoid is not) keeps one pair with two consumers. TensorRT wants
one consumer per pair (each fusion owns its pair), so the pair is copied per consumer; the graph
computes exactly the same values.
"""

from __future__ import annotations

import onnx

from edgecv.onnx_graph import OnnxGraph


def dedicate_qdq_pairs(model: onnx.ModelProto) -> int:
    """Copy shared Q→DQ pairs in place so each DequantizeLinear has one consumer; returns how many
    copies were added."""
    graph = model.graph
    index = OnnxGraph(model)
    added = 0
    new_nodes: list[tuple[onnx.NodeProto, list[onnx.NodeProto]]] = []
    for dq in list(graph.node):
        if dq.op_type != "DequantizeLinear":
            continue
        readers = index.readers(dq.output[0])
        q = index.producer.get(dq.input[0])
        if len(readers) < 2 or dq.output[0] in index.graph_outputs or q is None or q.op_type != "QuantizeLinear":
            continue
        if len(index.readers(q.output[0])) != 1:
            continue
        copies = []
        for k, reader in enumerate(readers[1:], start=1):
            q_copy, dq_copy = onnx.NodeProto(), onnx.NodeProto()
            q_copy.CopyFrom(q)
            dq_copy.CopyFrom(dq)
            q_copy.name, dq_copy.name = f"{q.name}_dedicated_{k}", f"{dq.name}_dedicated_{k}"
            q_copy.output[0] = f"{q.output[0]}_dedicated_{k}"
            dq_copy.input[0] = q_copy.output[0]
            dq_copy.output[0] = f"{dq.output[0]}_dedicated_{k}"
            for i, name in enumerate(reader.input):
                if name == dq.output[0]:
                    reader.input[i] = dq_copy.output[0]
            copies += [q_copy, dq_copy]
            added += 1
        new_nodes.append((dq, copies))
    # Insert each copy right after its original pair, keeping the node list topologically sorted.
    for dq, copies in new_nodes:
        at = list(graph.node).index(dq) + 1
        for offset, node in enumerate(copies):
            graph.node.insert(at + offset, node)
    return added
