"""One index of an ONNX graph that every graph pass and check reads: which node makes each tensor,
which nodes read it, the constants (initializers and ``Constant`` nodes), the graph's inputs and
outputs, and the few edits that keep a graph valid after nodes are rewired.

The index is a snapshot: a pass that rewires nodes builds a new one before it looks again; constants
added through :meth:`OnnxGraph.add_initializer` are visible at once, because a pass often rewrites
a weight and reads it back (a convolution padded on both sides of its weights).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

STANDARD_DOMAINS = ("", "ai.onnx")


class OnnxGraph:
    """Producers, consumers and constants of ``model``'s main graph, by tensor name."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        g = model.graph
        self.nodes = list(g.node)
        self.initializers = {t.name: t for t in g.initializer}
        self.constants = {
            n.output[0]: next((a.t for a in n.attribute if a.name == "value"), None)
            for n in self.nodes
            if n.op_type == "Constant" and n.output
        }
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.consumers: defaultdict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                if name:  # an omitted optional input
                    self.consumers[name].append(node)
        self.graph_outputs = {o.name for o in g.output}
        # Initializers may be listed among the inputs (IR < 4): those are not fed at run time.
        self.graph_inputs = [i.name for i in g.input if i.name not in self.initializers]

    def readers(self, tensor: str) -> list[onnx.NodeProto]:
        """The nodes reading ``tensor`` (without adding an empty entry to :attr:`consumers`)."""
        return self.consumers.get(tensor, [])

    def producer_op(self, tensor: str) -> str | None:
        node = self.producer.get(tensor)
        return None if node is None else node.op_type

    def node(self, name: str) -> onnx.NodeProto | None:
        """The first node called ``name``."""
        return next((n for n in self.nodes if n.name == name), None)

    def constant(self, name: str) -> np.ndarray | None:
        tensor = self.initializers.get(name)
        if tensor is None:
            tensor = self.constants.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def scalar(self, name: str) -> np.generic | None:
        """The single value of the constant ``name``; None if it is not a one-element constant."""
        value = self.constant(name) if name else None
        return None if value is None or value.size != 1 else value.reshape(-1)[0]

    def elem_type(self, name: str) -> int | None:
        tensor = self.initializers.get(name)
        if tensor is None:
            tensor = self.constants.get(name)
        return tensor.data_type if tensor is not None else None

    def is_constant(self, name: str) -> bool:
        return name in self.initializers or name in self.constants

    def add_initializer(self, array: np.ndarray, name: str) -> str:
        """Append ``array`` to the graph as initializer ``name`` and index it; returns the name."""
        self.add_tensor(numpy_helper.from_array(array, name))
        return name

    def add_tensor(self, tensor: onnx.TensorProto) -> None:
        """Append a copy of ``tensor`` to the graph's initializers and index it."""
        self.model.graph.initializer.append(tensor)
        # Initializer names are unique in a valid graph; a name added twice keeps its first tensor.
        self.initializers.setdefault(tensor.name, self.model.graph.initializer[-1])


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """Attribute ``name`` of ``node`` as a Python value, ``default`` when it is not set."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def set_attr_int(node: onnx.NodeProto, name: str, value: int) -> None:
    """Change an integer attribute the node already has (an absent one stays absent)."""
    for a in node.attribute:
        if a.name == name:
            a.i = value


def node_label(node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}({node.output[0] if node.output else '?'})"


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), 0)


def first_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The graph's first input that is fed at run time (not an initializer)."""
    initializers = {i.name for i in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in initializers)


def static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Tensor shapes by ONNX shape inference, a dimension that is not a fixed number (a dynamic
    batch) written as 0."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    shapes: dict[str, list[int]] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
    return shapes


def replace_node(model: onnx.ModelProto, old: onnx.NodeProto, new: Iterable[onnx.NodeProto]) -> None:
    """Put ``new`` where ``old`` was, keeping the node list topologically sorted."""
    graph = model.graph
    at = list(graph.node).index(old)
    graph.node.remove(old)
    for node in reversed(list(new)):
        graph.node.insert(at, node)


def rename_input(model: onnx.ModelProto, old: str, new: str) -> None:
    """Make every node that reads ``old`` read ``new``."""
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new


def forget_shapes(model: onnx.ModelProto, names: Iterable[str]) -> None:
    """Drop the value_info of tensors that are gone or changed shape: a stale one misleads shape
    inference and the quantizer."""
    gone = set(names)
    for vi in [v for v in model.graph.value_info if v.name in gone]:
        model.graph.value_info.remove(vi)


def remove_unused_initializers(model: onnx.ModelProto) -> None:
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def remove_unused_nodes(model: onnx.ModelProto) -> None:
    """Drop nodes none of whose outputs is used (repeatedly, so whole orphaned chains go), then the
    initializers nothing reads any more."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = outputs | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    remove_unused_initializers(model)
