"""The units a precision plan keeps in float or quantizes, and what each one costs in a profile.

A *block* is a layer with the element-wise activation it feeds (a convolution and its ReLU, Clip,
hard-swish or SiLU), or a node on its own (a residual Add, a Concat, a pool). Keeping only a
convolution in float and not its SiLU would add a Q/DQ round trip between the two, so a block is
the smallest unit whose precision is worth deciding.

ONNX Runtime's profiler names the kernels it ran after its own fusions and rewrites:
``<node>_token_61`` (a QLinearConv fused from a Q/DQ convolution), ``<output>_nchwc`` (a float
convolution in blocked layout), ``<node>/QuickGeluFusion/``, ``<tensor>_QuantizeLinear``. Each such
name starts with the name of a node of the graph that was quantized, or of the tensor it makes, so
the longest node or tensor name a kernel's name starts with says which node it ran for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import onnx

from edgecv.onnx_graph import OnnxGraph

from ..sensitivity import LAYER_OPS

# Ops that follow a layer and compute element by element on what it made (its activation).
ACTIVATION_OPS = frozenset(
    {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Mul", "Tanh", "Elu", "QuickGelu"}
)
# Ops a plan never decides on: they carry no arithmetic worth the Q/DQ pair around them.
SHAPE_OPS = frozenset({"Shape", "Constant", "Cast", "ConstantOfShape", "Range"})


@dataclass(eq=False)  # one block is one set of nodes: identity is equality
class Block:
    name: str  # the block's first node
    op_type: str  # its first node's op, "DepthwiseConv" for a grouped convolution with one channel per group
    nodes: list[str] = field(default_factory=list)
    fp32_ms: float = 0.0
    int8_ms: float = 0.0

    @property
    def loss_ms(self) -> float:
        """What running this block in INT8 costs over float (negative: INT8 is faster)."""
        return self.int8_ms - self.fp32_ms

    def to_dict(self) -> dict:
        return {
            "block": self.name,
            "op": self.op_type,
            "nodes": list(self.nodes),
            "fp32_ms": round(self.fp32_ms, 4),
            "int8_ms": round(self.int8_ms, 4),
        }


def _kind(node: onnx.NodeProto, graph: OnnxGraph) -> str:
    if node.op_type != "Conv":
        return node.op_type
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    weight = graph.constant(node.input[1]) if len(node.input) > 1 else None
    return "DepthwiseConv" if group > 1 and weight is not None and weight.shape[1] == 1 else "Conv"


def group_blocks(model: onnx.ModelProto, fixed: Collection[str] = ()) -> list[Block]:
    """The blocks of ``model`` (in graph order), leaving out the nodes in ``fixed`` (kept in float
    whatever the plan says: a detector's decode and NMS, ``--exclude``) and shape arithmetic.

    A layer's block takes in each following activation node whose every non-constant input is made
    inside the block (``Sigmoid(x)`` and ``Mul(x, Sigmoid(x))`` after the layer that made ``x``)."""
    graph = OnnxGraph(model)
    fixed = set(fixed)
    blocks: list[Block] = []
    owner: dict[str, Block] = {}
    for node in model.graph.node:
        if node.name in fixed or node.op_type in SHAPE_OPS or node.name in owner:
            continue
        if node.op_type in ACTIVATION_OPS:
            # Constant nodes (a Clip's bounds before ONNX Runtime's pre-processing folds them) are no source.
            made = [i for i in node.input if i in graph.producer and not graph.is_constant(i)]
            sources = {owner.get(graph.producer[i].name) for i in made}
            if len(sources) == 1 and None not in sources and not all(graph.is_constant(i) for i in node.input):
                block = sources.pop()
                if block.op_type in LAYER_OPS or block.op_type == "DepthwiseConv":
                    block.nodes.append(node.name)
                    owner[node.name] = block
                    continue
        block = Block(node.name, _kind(node, graph), [node.name])
        blocks.append(block)
        owner[node.name] = block
    return blocks


def attribute(kernel_ms: Mapping[str, float], model: onnx.ModelProto) -> tuple[dict[str, float], float]:
    """Kernel times from a profile (kernel name → ms) summed per node of ``model``, by the longest
    node or tensor name each kernel's name starts with; and the time no node could be named for
    (layout reorders and the like)."""
    keys: dict[str, str] = {}
    for node in model.graph.node:
        for out in node.output:
            keys.setdefault(out, node.name)
        keys[node.name] = node.name
    # Longest first, so ``…/Conv_output_0`` wins over ``…/Conv``.
    ordered = sorted((k for k in keys if k), key=len, reverse=True)
    per_node: dict[str, float] = {}
    unnamed = 0.0
    for kernel, ms in kernel_ms.items():
        key = next((k for k in ordered if kernel.startswith(k)), None)
        if key is None:
            unnamed += ms
        else:
            per_node[keys[key]] = per_node.get(keys[key], 0.0) + ms
    return per_node, unnamed


def cost_blocks(blocks: list[Block], fp32: Mapping[str, float], int8: Mapping[str, float]) -> None:
    """Fill each block's FP32 and INT8 time from per-node times (:func:`attribute`)."""
    for block in blocks:
        block.fp32_ms = sum(fp32.get(n, 0.0) for n in block.nodes)
        block.int8_ms = sum(int8.get(n, 0.0) for n in block.nodes)
