"""Layers kept in float read the float tensor, not its INT8-rounded copy.

ONNX Runtime's quantizer leaves an excluded node reading the *dequantized* tensor whenever another
consumer of the same tensor is quantized: the node computes in float but on INT8-rounded inputs,
and in the TensorRT flavour it shares that DequantizeLinear with the other consumer (breaking the
one-consumer-per-pair rule). Keeping a layer in float means feeding it the float tensor itself.

With unsigned activations the quantizer also *removes* a ReLU/ReLU6 in front of a Q→DQ pair whose
range starts at 0 (the pair clips as the activation did) and names the convolution's output after
the activation's. Bypassing that pair would feed the unclipped tensor (measured: 13.6 dB → 7.2 dB
output SQNR on MobileNetV2 with one projection layer kept in float), so the activation is put back
from the FP32 graph for the float consumer.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from edgecv.onnx_graph import OnnxGraph, remove_unused_nodes

ACTIVATIONS = ("Relu", "Clip")


def bypass_input_qdq(
    model: onnx.ModelProto, node_names: Iterable[str], reference: onnx.ModelProto | None = None
) -> int:
    """Rewire, in place, every input of the named nodes that comes through a Q→DQ pair to the float
    tensor in front of the pair, then drop nodes left without consumers. ``reference`` is the FP32
    graph that was quantized: an activation the quantizer folded into the pair is restored from it.
    Returns the inputs rewired."""
    wanted = set(node_names)
    graph = OnnxGraph(model)
    producer = graph.producer  # the restorer adds the activations it puts back
    restore = _ActivationRestorer(graph, reference) if reference is not None else None
    rewired = 0
    for node in list(model.graph.node):
        if node.name not in wanted:
            continue
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[k] = restore(q.input[0]) if restore else q.input[0]
                rewired += 1
    if rewired:
        remove_unused_nodes(model)
    return rewired


class _ActivationRestorer:
    """Puts back, for float consumers, the ReLU/Clip the quantizer folded into a Q→DQ pair."""

    def __init__(self, graph: OnnxGraph, reference: onnx.ModelProto):
        self.graph = graph
        self.reference = OnnxGraph(reference)
        self.done: dict[str, str] = {}

    def __call__(self, tensor: str) -> str:
        if tensor in self.done:
            return self.done[tensor]
        ref = self.reference.producer.get(tensor)
        ours = self.graph.producer.get(tensor)
        if ref is None or ref.op_type not in ACTIVATIONS or (ours is not None and ours.op_type == ref.op_type):
            return tensor
        # The FP32 graph computed ``tensor`` with an activation that is gone here: recompute it.
        restored = f"{tensor}_float"
        graph = self.graph.model.graph
        for extra in ref.input[1:]:
            if extra and extra not in self.graph.initializers and extra in self.reference.initializers:
                self.graph.add_tensor(self.reference.initializers[extra])
        act = onnx.NodeProto()
        act.CopyFrom(ref)
        act.name = f"{ref.name or ref.op_type}_restored"
        act.input[0] = tensor
        act.output[0] = restored
        nodes = list(graph.node)
        at = nodes.index(ours) + 1 if ours is not None else 0  # keep the node list topologically sorted
        graph.node.insert(at, act)
        self.graph.producer[restored] = act
        self.done[tensor] = restored
        return restored
