"""Small edits of Q/DQ graphs.

ONNX Runtime's quantizer leaves an excluded node reading the *dequantized* tensor whenever another
consumer of the same tensor is quantized: the node computes in float but on INT8-rounded inputs,
and in the TensorRT flavour it shares that DequantizeLinear with the other consumer (breaking the
one-consumer-per-pair rule). Keeping a layer in float means feeding it the float tensor itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx


def bypass_input_qdq(model: onnx.ModelProto, node_names: Iterable[str]) -> int:
    """Rewire, in place, every input of the named nodes that comes through a Q→DQ pair to the float
    tensor in front of the pair, then drop nodes left without consumers. Returns the inputs rewired."""
    wanted = set(node_names)
    producer = {out: n for n in model.graph.node for out in n.output}
    rewired = 0
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[k] = q.input[0]
                rewired += 1
    if rewired:
        remove_unused_nodes(model)
    return rewired


def remove_unused_nodes(model: onnx.ModelProto) -> None:
    """Drop nodes none of whose outputs is used (repeatedly, so whole orphaned Q→DQ chains go),
    then the initializers nothing reads any more."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = outputs | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = outputs | {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
