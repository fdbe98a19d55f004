"""Function-preserving rewrites of the FP32 graph before it is quantized for ONNX Runtime's CPU kernels.

ONNX Runtime runs a quantized graph's convolutions channels-last (NHWC) in integers and is slow at
everything around them. Measured on ShuffleNet V1 (g=3) and V2 on an AVX-512 VNNI EPYC, 2 threads,
per-node profiling of the ``cpu`` flavour as ONNX Runtime's quantizer wrote it:

* A channel shuffle written for NCHW (Reshape → Transpose → Reshape) became two full-tensor uint8
  transposes (the NHWC→NCHW layout Transpose merged into the shuffle's own, then NCHW→NHWC): 31 % of
  the INT8 run of both models (FP32: 3–7 %), and why ShuffleNet V1 ran slower in INT8 than in FP32.
  Written channels-last it is still one uint8 Transpose, which ONNX Runtime moves at about 0.3 GB/s
  (140 µs for 28×28×60 bytes), while a 1×1 ``QLinearConv`` with a permutation matrix for weights
  does the same in about 10 µs.
* A grouped 1×1 ``QLinearConv`` (g=3) runs no faster than the dense convolution with g times the
  arithmetic (166 µs vs 157 µs for four 240↔60 layers at 28×28; FP32 grouped: 169 µs). So when a
  shuffle follows such a convolution (through ReLU-like activations), the convolution is made dense
  (block-diagonal weights) and the shuffle becomes a reordering of its output channels: no operator
  left at all.
* ``QLinearAveragePool`` (ShuffleNet V1's stride-2 shortcut) took 10 % of the run, about nine times
  the FP32 pool. An AveragePool that counts padding is a depthwise convolution with weights
  1/(kh·kw), which runs as a depthwise ``QLinearConv`` (the weights quantize exactly).
* ONNX Runtime's fast x86 INT8 convolution kernels (MLAS "ConvSym") take a depthwise convolution only
  with channels in sixteens and a dense one only with input channels in fours: ShuffleNet's 58, 60,
  116, 120 channels and every 3-channel image stem fell back to slower code (a depthwise layer at 58
  channels: 2.4× the time of one at 64). Zero channels are appended where a convolution makes them
  and given zero weights where one reads them; the image gets a zero channel from a Pad kept in float.
* SiLU (``x · Sigmoid(x)``, YOLOX's activation) quantized by ONNX Runtime's tools becomes a
  QLinearSigmoid lookup and a QLinearMul, together slower than the float QuickGelu ONNX Runtime
  fuses it into in FP32 (YOLOX-nano 416: 3.6 ms of a 6.4 ms INT8 run, against 1.1 ms). Written as
  that QuickGelu (an ONNX Runtime operator: this flavour is for ONNX Runtime only), it stays in
  float between a DequantizeLinear and a QuantizeLinear: the run took 0.86× FP32's time instead of
  0.71× — still slower than FP32, because ONNX Runtime's integer depthwise convolutions are 2–3×
  slower than its float ones, and YOLOX-nano is mostly depthwise; OpenVINO's INT8 is the fast one
  there.
* ShuffleNet V2 splits the shuffled tensor in halves: the permutation and each Slice become one
  selection convolution, folded into the convolution that reads the half where there is one.

Every tensor that is still computed keeps its name and its range (a permutation or appended zero
channels read by nothing change neither the range that matters nor its use), so activation ranges
computed on the original graph apply to the rewritten one; the one new activation tensor, the padded
image, is named in its record's ``range_of`` with the tensor whose range it shares.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .qdq_graph import graph_index

# Per-element activations that commute with a permutation of channels.
_CHANNELWISE = {"Relu", "Clip", "LeakyRelu", "HardSigmoid", "HardSwish", "Sigmoid", "Identity"}
# Operators that compute each channel from that channel alone (extra channels just pass through).
_PER_CHANNEL = _CHANNELWISE | {"MaxPool", "AveragePool"}
# ONNX Runtime's fast x86 INT8 convolutions (MLAS "ConvSym", indirect convolution): a depthwise one
# needs a multiple of 16 channels, a dense one input channels in fours and output channels in eights
# (AVX2/AVX-VNNI; AVX-512 needs fours) and at least 16 of them. Anything else falls back to
# im2col + GEMM or to a plain depthwise loop (measured: 2.4x slower at 58 channels than at 64).
DEPTHWISE_ALIGN, INPUT_ALIGN, OUTPUT_ALIGN, MIN_OUTPUTS = 16, 4, 8, 16
MS_DOMAIN = "com.microsoft"  # ONNX Runtime's own operators


def rewrite_for_cpu_int8(model: onnx.ModelProto, keep: Collection[str] = ()) -> list[dict[str, Any]]:
    """Apply every rewrite to ``model`` in place and return one record per rewrite (rule, nodes,
    why). Nodes named in ``keep`` (kept in float by the user) are left as they are."""
    keep = set(keep)
    records: list[dict[str, Any]] = []
    shapes = _static_shapes(model)
    permutations = _channel_shuffles(model, shapes, keep, records)
    _slices_of_permutations(model, permutations, keep, records)
    _average_pools_as_depthwise(model, shapes, keep, records)
    _align_channels(model, keep, records)
    _pad_image_channels(model, shapes, keep, records)
    _silu_as_quickgelu(model, keep, records)
    if records:
        _drop_unused_initializers(model)
    return records


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Tensor shapes, a dimension that is not a fixed number (a dynamic batch) written as 0."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    shapes: dict[str, list[int]] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in t.shape.dim]
    return shapes


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _reshape_target(model: onnx.ModelProto, node: onnx.NodeProto, in_shape: list[int]) -> list[int] | None:
    shape = _constant(model, node.input[1])
    if shape is None:
        return None
    out = [int(s) for s in shape]
    if _attr(node, "allowzero", 0) == 0:
        out = [in_shape[i] if s == 0 and i < len(in_shape) else s for i, s in enumerate(out)]
    if out.count(-1) == 1:
        known = int(np.prod([s for s in out if s != -1]))
        out[out.index(-1)] = int(np.prod(in_shape)) // max(known, 1)
    return out if int(np.prod(out)) == int(np.prod(in_shape)) else None


def channel_permutation(
    model: onnx.ModelProto,
    first: onnx.NodeProto,
    shapes: dict[str, list[int]],
    users: dict[str, list[onnx.NodeProto]],
    outputs: set[str],
):
    """``(transpose, last, perm)`` when ``first`` starts ``Reshape [N,d1..dk,H,W] → Transpose (of
    the d axes only) → Reshape [N,C,H,W]`` on an NCHW tensor, i.e. ``y[:, j] = x[:, perm[j]]``."""
    in_shape = shapes.get(first.input[0])
    if first.op_type != "Reshape" or in_shape is None or len(in_shape) != 4 or 0 in in_shape:
        return None
    n_, c, h, w = in_shape
    mid = _reshape_target(model, first, in_shape)
    if mid is None or len(mid) < 5 or mid[0] != n_ or mid[-2:] != [h, w]:
        return None
    nexts = users.get(first.output[0], [])
    if len(nexts) != 1 or nexts[0].op_type != "Transpose" or first.output[0] in outputs:
        return None
    trans, k = nexts[0], len(mid) - 3
    perm = list(_attr(trans, "perm", []))
    if len(perm) != len(mid) or perm[0] != 0 or perm[-2:] != [k + 1, k + 2] or trans.output[0] in outputs:
        return None
    nexts = users.get(trans.output[0], [])
    if len(nexts) != 1 or nexts[0].op_type != "Reshape":
        return None
    last = nexts[0]
    if _reshape_target(model, last, [mid[p] for p in perm]) != [n_, c, h, w]:
        return None
    order = np.arange(c).reshape(mid[1 : k + 1]).transpose([p - 1 for p in perm[1 : k + 1]]).reshape(-1)
    return trans, last, order


def _channel_shuffles(
    model: onnx.ModelProto, shapes, keep: set[str], records: list[dict[str, Any]]
) -> list[onnx.NodeProto]:
    """Fold each channel shuffle into the convolution in front of it, or else make it a 1×1
    permutation convolution; returns those convolutions."""
    permutations = []
    for first in [n for n in model.graph.node if n.op_type == "Reshape"]:
        producer, users, outputs = graph_index(model)
        found = channel_permutation(model, first, shapes, users, outputs)
        if found is None:
            continue
        trans, last, order = found
        shuffle = [first, trans, last]
        if any(n.name in keep for n in shuffle):
            continue
        conv = _foldable_producer(model, first.input[0], producer, users, outputs, keep)
        if conv is not None:
            dense = _attr(conv, "group", 1) > 1
            _permute_conv_outputs(model, conv, order)
            _bypass(model, shuffle, first.input[0], last.output[0])
            records.append(
                {
                    "rule": "channel_shuffle_into_conv",
                    "nodes": [n.name for n in shuffle],
                    "into": conv.name,
                    "why": (
                        "grouped 1x1 conv made dense (ONNX Runtime's grouped QLinearConv is no faster) and "
                        if dense
                        else ""
                    )
                    + "the channel shuffle folded into its output channels: ONNX Runtime's uint8 Transpose "
                    "around its channels-last INT8 kernels cost more than the convolutions",
                }
            )
        else:
            permutations.append(_shuffle_as_conv(model, shuffle, order))
            records.append(
                {
                    "rule": "channel_shuffle_as_1x1_conv",
                    "nodes": [n.name for n in shuffle],
                    "why": "a channel shuffle as a 1x1 convolution with a permutation matrix runs in ONNX "
                    "Runtime's INT8 kernels (exactly: same scale in and out) about 10x faster than as "
                    "Reshape/Transpose around its channels-last layout",
                }
            )
    return permutations


def _foldable_producer(model, tensor: str, producer, users, outputs, keep: set[str]) -> onnx.NodeProto | None:
    """The Conv computing ``tensor`` through channel-wise activations only, each step used by
    nothing else, whose output channels can be reordered freely (dense, or grouped 1×1)."""
    node = producer.get(tensor)
    while node is not None and node.op_type in _CHANNELWISE:
        if len(users.get(node.output[0], [])) != 1 or node.output[0] in outputs or node.name in keep:
            return None
        if node.op_type == "Clip" and any(_constant(model, i) is None for i in node.input[1:] if i):
            return None
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Conv" or node.name in keep:
        return None
    if len(users.get(node.output[0], [])) != 1 or node.output[0] in outputs:
        return None
    weight = _constant(model, node.input[1])
    if weight is None or (len(node.input) > 2 and node.input[2] and _constant(model, node.input[2]) is None):
        return None
    group = _attr(node, "group", 1)
    if group > 1 and (any(s != 1 for s in weight.shape[2:]) or weight.shape[1] == 1):
        return None  # grouped k×k or depthwise: made dense it would cost real arithmetic
    return node


def _permute_conv_outputs(model, conv: onnx.NodeProto, order: np.ndarray) -> None:
    weight = _constant(model, conv.input[1])
    group = _attr(conv, "group", 1)
    if group > 1:
        c_out, c_in_g = weight.shape[:2]
        dense = np.zeros((c_out, c_in_g * group, *weight.shape[2:]), weight.dtype)
        per_out = c_out // group
        for g in range(group):
            dense[g * per_out : (g + 1) * per_out, g * c_in_g : (g + 1) * c_in_g] = weight[
                g * per_out : (g + 1) * per_out
            ]
        weight = dense
        for a in conv.attribute:
            if a.name == "group":
                a.i = 1
    base = conv.name or conv.output[0]
    model.graph.initializer.append(numpy_helper.from_array(weight[order], f"{base}/weight_reordered"))
    conv.input[1] = f"{base}/weight_reordered"
    if len(conv.input) > 2 and conv.input[2]:
        model.graph.initializer.append(
            numpy_helper.from_array(_constant(model, conv.input[2])[order], f"{base}/bias_reordered")
        )
        conv.input[2] = f"{base}/bias_reordered"


def _bypass(model, removed: list[onnx.NodeProto], source: str, target: str) -> None:
    for node in removed:
        model.graph.node.remove(node)
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if name == target:
                node.input[k] = source
    _forget_shapes(model, [o for n in removed for o in n.output])


def _shuffle_as_conv(model, shuffle: list[onnx.NodeProto], order: np.ndarray) -> None:
    first, _, last = shuffle
    c = len(order)
    weight = np.zeros((c, c, 1, 1), np.float32)
    weight[np.arange(c), order, 0, 0] = 1.0
    name = f"{first.name or last.output[0]}/as_conv"
    model.graph.initializer.append(numpy_helper.from_array(weight, f"{name}/weight"))
    conv = helper.make_node(
        "Conv", [first.input[0], f"{name}/weight"], [last.output[0]], name=name, kernel_shape=[1, 1]
    )
    at = list(model.graph.node).index(first)
    for node in shuffle:
        model.graph.node.remove(node)
    model.graph.node.insert(at, conv)
    _forget_shapes(model, [first.output[0], shuffle[1].output[0]])
    return conv


def _channel_slice(model, node: onnx.NodeProto, channels: int) -> tuple[int, int] | None:
    """``(start, end)`` of a Slice that takes a contiguous range of channels (axis 1) and nothing else."""
    if node.op_type != "Slice" or len(node.input) < 4:
        return None
    values = [_constant(model, i) if i else None for i in node.input[1:]]
    starts, ends, axes = values[:3]
    steps = values[3] if len(values) > 3 else None
    if starts is None or ends is None or axes is None or len(axes) != 1 or int(axes[0]) not in (1, -3):
        return None
    if steps is not None and int(steps[0]) != 1:
        return None
    start, end = (int(v) + channels if int(v) < 0 else int(v) for v in (starts[0], ends[0]))
    start, end = max(0, min(start, channels)), max(0, min(end, channels))
    return (start, end) if end > start else None


def _slices_of_permutations(model, permutations: list[onnx.NodeProto], keep: set[str], records) -> None:
    """A permutation convolution read only by channel Slices (ShuffleNet V2's shuffle + split)
    becomes one selection convolution per Slice, and a selection read only by a convolution is
    folded into that convolution's weights: fewer multiply-adds than the full permutation, no Slice,
    and the reading convolution gets the shuffle's channel count, which ONNX Runtime's fast INT8
    kernel takes where the half did not (ShuffleNet V2's 116 channels against 58)."""
    for perm in permutations:
        _, users, outputs = graph_index(model)
        weight = _constant(model, perm.input[1])[:, :, 0, 0]
        readers = users.get(perm.output[0], [])
        ranges = [_channel_slice(model, r, weight.shape[0]) for r in readers]
        if (
            not readers
            or perm.output[0] in outputs
            or any(r is None for r in ranges)
            or any(r.name in keep for r in readers)
        ):
            continue
        folded = []
        for slice_node, (start, end) in zip(readers, ranges):
            selection = weight[start:end]
            nexts = users.get(slice_node.output[0], [])
            target = nexts[0] if len(nexts) == 1 and slice_node.output[0] not in outputs else None
            conv = _conv_weights(model, target) if target is not None and target.op_type == "Conv" else None
            if (
                conv is not None
                and target.name not in keep
                and _attr(target, "group", 1) == 1
                and target.input[0] == slice_node.output[0]
            ):
                w, b = conv
                _set_weights(model, target, np.einsum("ojhw,jc->ochw", w, selection), b, "selected")
                target.input[0] = perm.input[0]
                model.graph.node.remove(slice_node)
                folded.append(target.name)
                continue
            name = slice_node.name or slice_node.output[0]
            model.graph.initializer.append(
                numpy_helper.from_array(selection[:, :, None, None].astype(np.float32), f"{name}/selection")
            )
            at = list(model.graph.node).index(slice_node)
            model.graph.node.remove(slice_node)
            model.graph.node.insert(
                at,
                helper.make_node(
                    "Conv",
                    [perm.input[0], f"{name}/selection"],
                    list(slice_node.output),
                    name=name,
                    kernel_shape=[1, 1],
                ),
            )
        model.graph.node.remove(perm)
        records.append(
            {
                "rule": "channel_split_as_selection",
                "nodes": [perm.name, *(r.name for r in readers)],
                "into": folded,
                "why": "the permutation convolution and the Slices after it become selection convolutions, "
                "folded into the convolution that reads a slice where there is one: less arithmetic, no Slice",
            }
        )


def _forget_shapes(model, names: list[str]) -> None:
    gone = set(names)
    for vi in [v for v in model.graph.value_info if v.name in gone]:
        model.graph.value_info.remove(vi)


def _drop_unused_initializers(model) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)


def _average_pools_as_depthwise(model, shapes, keep: set[str], records: list[dict[str, Any]]) -> None:
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "AveragePool"]:
        in_shape = shapes.get(node.input[0])
        kernel = list(_attr(node, "kernel_shape", []))
        pads = list(_attr(node, "pads", [0] * 2 * len(kernel)))
        if node.name in keep or in_shape is None or len(in_shape) != 4 or not in_shape[1] or len(kernel) != 2:
            continue
        if _attr(node, "ceil_mode", 0) or _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        if any(d != 1 for d in _attr(node, "dilations", [1, 1])):
            continue
        # Without count_include_pad a border cell divides by fewer values: not a convolution.
        if any(pads) and not _attr(node, "count_include_pad", 0):
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
            strides=list(_attr(node, "strides", [1, 1])),
        )
        at = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(at, conv)
        records.append(
            {
                "rule": "average_pool_as_depthwise_conv",
                "nodes": [node.name],
                "why": "ONNX Runtime's QLinearAveragePool is several times slower than the FP32 pool; the same "
                "mean as a depthwise convolution runs in its integer kernels",
            }
        )


def _is_depthwise(node: onnx.NodeProto, weight: np.ndarray) -> bool:
    return _attr(node, "group", 1) > 1 and weight.shape[1] == 1 and weight.shape[0] == _attr(node, "group", 1)


def _densifiable(node: onnx.NodeProto, weight: np.ndarray) -> bool:
    return _attr(node, "group", 1) == 1 or all(s == 1 for s in weight.shape[2:])


def _conv_weights(model, node) -> tuple[np.ndarray, np.ndarray | None] | None:
    weight = _constant(model, node.input[1])
    if weight is None:
        return None
    if len(node.input) > 2 and node.input[2]:
        bias = _constant(model, node.input[2])
        return None if bias is None else (weight, bias)
    return weight, None


def _dense(node: onnx.NodeProto, weight: np.ndarray) -> np.ndarray:
    """Block-diagonal dense weights of a grouped convolution (and group set to 1)."""
    group = _attr(node, "group", 1)
    if group == 1:
        return weight
    c_out, c_in_g = weight.shape[:2]
    dense = np.zeros((c_out, c_in_g * group, *weight.shape[2:]), weight.dtype)
    per_out = c_out // group
    for g in range(group):
        dense[g * per_out : (g + 1) * per_out, g * c_in_g : (g + 1) * c_in_g] = weight[g * per_out : (g + 1) * per_out]
    for a in node.attribute:
        if a.name == "group":
            a.i = 1
    return dense


def _set_weights(model, node, weight: np.ndarray, bias: np.ndarray | None, tag: str) -> None:
    base = node.name or node.output[0]
    model.graph.initializer.append(
        numpy_helper.from_array(weight.astype(np.float32, copy=False), f"{base}/weight_{tag}")
    )
    node.input[1] = f"{base}/weight_{tag}"
    if bias is not None:
        model.graph.initializer.append(
            numpy_helper.from_array(bias.astype(np.float32, copy=False), f"{base}/bias_{tag}")
        )
        node.input[2] = f"{base}/bias_{tag}"


def _ceil(n: int, k: int) -> int:
    return -(-n // k) * k


def _align_channels(model: onnx.ModelProto, keep: set[str], records: list[dict[str, Any]]) -> None:
    """Give the channels between the convolutions that make them and the convolutions that read
    them the counts ONNX Runtime's fast INT8 kernels need, by appending channels that are zero where
    they are made and ignored where they are read (zero weights): the function is unchanged, the
    arithmetic grows by the padding. Between the two may lie per-channel operators, depthwise
    convolutions, a squeeze-and-excitation block (its global pool, its 1×1 convolutions and the
    product with its scale) and gated activations (hard-swish as ``x · HardSigmoid(x)``, SiLU)."""
    for producer_node in [n for n in model.graph.node if n.op_type == "Conv"]:
        region = _padding_region(model, producer_node, keep)
        if region is None:
            continue
        align = DEPTHWISE_ALIGN if region.depthwise else OUTPUT_ALIGN
        channels = region.channels
        padded = max(_ceil(channels, align), MIN_OUTPUTS if not region.depthwise else align)
        if padded == channels or (not region.depthwise and channels % OUTPUT_ALIGN == 0 and channels >= MIN_OUTPUTS):
            continue
        extra = padded - channels
        for node in region.producers:
            weight, bias = _conv_weights(model, node)
            weight = _dense(node, weight)
            weight = np.concatenate([weight, np.zeros((extra, *weight.shape[1:]), weight.dtype)])
            bias = None if bias is None else np.concatenate([bias, np.zeros(extra, bias.dtype)])
            _set_weights(model, node, weight, bias, f"pad{padded}")
        for node in region.depthwise:
            w, b = _conv_weights(model, node)
            w = np.concatenate([w, np.zeros((extra, *w.shape[1:]), w.dtype)])
            b = None if b is None else np.concatenate([b, np.zeros(extra, b.dtype)])
            for a in node.attribute:
                if a.name == "group":
                    a.i = padded
            _set_weights(model, node, w, b, f"pad{padded}")
        for node in region.readers:
            w, b = _conv_weights(model, node)
            w = _dense(node, w)
            w = np.concatenate([w, np.zeros((w.shape[0], extra, *w.shape[2:]), w.dtype)], axis=1)
            _set_weights(model, node, w, b, f"in{padded}")
        _forget_shapes(model, region.tensors)
        records.append(
            {
                "rule": "channels_aligned",
                "nodes": list(dict.fromkeys(n.name for n in (*region.producers, *region.depthwise, *region.readers))),
                "channels": [channels, padded],
                "why": f"{channels} channels padded with {extra} zero channels to {padded}: ONNX Runtime's fast INT8 "
                "convolution kernels need depthwise channels in sixteens and dense channels in fours/eights",
            }
        )


# Operators whose output channel c depends on input channel c alone (a global pool included).
_PADDABLE_UNARY = _PER_CHANNEL | {"GlobalAveragePool", "GlobalMaxPool"}
# Element-wise products and sums of two tensors with the same channels (one may be broadcast over
# height and width, as a squeeze-and-excitation scale is): zero-padded channels meet each other.
_PADDABLE_PAIR = {"Mul", "Add"}


@dataclass
class _Region:
    channels: int
    producers: list[onnx.NodeProto]  # dense convolutions that make the channels: pad their outputs
    depthwise: list[onnx.NodeProto]  # pad their channels (weights and group)
    readers: list[onnx.NodeProto]  # dense convolutions that read the channels: pad their inputs
    tensors: list[str]


def _padding_region(model, producer_node, keep: set[str]) -> _Region | None:
    """Every tensor that carries the channels ``producer_node`` makes, followed forwards to the
    convolutions that read them and backwards to every convolution that makes a tensor combined with
    them, when all of it can grow by zero channels without changing the function: nothing else reads
    or makes those tensors, none is a graph output and no node involved is kept in float."""
    if producer_node.name in keep:
        return None
    conv = _conv_weights(model, producer_node)
    if conv is None or _is_depthwise(producer_node, conv[0]) or not _densifiable(producer_node, conv[0]):
        return None
    producer, users, outputs = graph_index(model)
    region = _Region(conv[0].shape[0], [], [], [], [])
    constants = {i.name for i in model.graph.initializer}
    todo = [producer_node.output[0]]

    def member(node: onnx.NodeProto, role: list[onnx.NodeProto]) -> bool:
        # Per role, not over the whole region: a dense convolution that both reads the channels and
        # makes a tensor combined with them (a residual branch's projection) must be in producers
        # and in readers, or one side of its weights keeps the old count.
        key = _key(node)
        return any(key == _key(n) for n in role)

    def is_scalar(name: str) -> bool:
        value = _constant(model, name)
        return value is not None and value.size == 1

    def add_made_by(node: onnx.NodeProto) -> bool:
        """Take in the node that makes a region tensor, and what it reads; False if it cannot grow."""
        if node.name in keep:
            return False
        if node.op_type == "Conv":
            weights = _conv_weights(model, node)
            if weights is None:
                return False
            if _is_depthwise(node, weights[0]):
                if not member(node, region.depthwise):
                    region.depthwise.append(node)
                    todo.append(node.input[0])
                return True
            if not _densifiable(node, weights[0]) or weights[0].shape[0] != region.channels:
                return False
            if not member(node, region.producers):
                region.producers.append(node)
            return True
        if node.op_type in _PADDABLE_UNARY:
            todo.append(node.input[0])
            return all(is_scalar(i) for i in node.input[1:] if i)
        if node.op_type in _PADDABLE_PAIR:
            for name in node.input:
                if name in constants or _constant(model, name) is not None:
                    if not is_scalar(name):
                        return False
                else:
                    todo.append(name)
            return True
        return False

    def add_read_by(node: onnx.NodeProto, tensor: str) -> bool:
        """Take in a node that reads a region tensor; False if it cannot take zero channels."""
        if node.name in keep:
            return False
        if node.op_type == "Conv":
            weights = _conv_weights(model, node)
            if weights is None or node.input[0] != tensor:
                return False
            if _is_depthwise(node, weights[0]):
                if not member(node, region.depthwise):
                    region.depthwise.append(node)
                todo.append(node.output[0])
            elif _densifiable(node, weights[0]):
                if not member(node, region.readers):
                    region.readers.append(node)
            else:
                return False
            return True
        if node.op_type in _PADDABLE_UNARY and node.input[0] == tensor or node.op_type in _PADDABLE_PAIR:
            todo.append(node.output[0])
            return add_made_by(node)
        return False

    while todo:
        tensor = todo.pop()
        if tensor in region.tensors:
            continue
        if tensor in outputs or tensor in constants or tensor not in producer:
            return None
        region.tensors.append(tensor)
        if not add_made_by(producer[tensor]):
            return None
        for node in users.get(tensor, []):
            if not add_read_by(node, tensor):
                return None
    # A dense convolution may be both a producer and a reader (it reads the channels and makes a
    # tensor added to them): its new rows and columns are both zero.
    return region if region.readers else None


def _key(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]


def _pad_image_channels(model: onnx.ModelProto, shapes, keep: set[str], records: list[dict[str, Any]]) -> None:
    """A convolution reading the graph's input image (3 channels) misses the fast kernel, which
    wants input channels in fours: pad the image with a zero channel (in float, before it is
    quantized) and give the convolution a zero weight for it."""
    graph = model.graph
    inputs = {i.name for i in graph.input} - {i.name for i in graph.initializer}
    _, users, _ = graph_index(model)
    for name in inputs:
        shape = shapes.get(name)
        readers = users.get(name, [])
        if shape is None or len(shape) != 4 or not shape[1] or shape[1] % INPUT_ALIGN == 0 or not readers:
            continue
        if any(r.op_type != "Conv" or r.name in keep or r.input[0] != name for r in readers):
            continue
        weights = [_conv_weights(model, r) for r in readers]
        if any(w is None or _attr(r, "group", 1) != 1 for r, w in zip(readers, weights)):
            continue
        extra = _ceil(shape[1], INPUT_ALIGN) - shape[1]
        padded, pad_name = f"{name}/channels_padded", f"{name}/pad_channels"
        graph.initializer.append(
            numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64), f"{pad_name}/pads")
        )
        graph.node.insert(
            0, helper.make_node("Pad", [name, f"{pad_name}/pads"], [padded], name=pad_name, mode="constant")
        )
        for reader, (w, b) in zip(readers, weights):
            w = np.concatenate([w, np.zeros((w.shape[0], extra, *w.shape[2:]), w.dtype)], axis=1)
            _set_weights(model, reader, w, b, f"in{shape[1] + extra}")
            reader.input[0] = padded
        records.append(
            {
                "rule": "image_channels_padded",
                "nodes": [pad_name, *(r.name for r in readers)],
                "channels": [shape[1], shape[1] + extra],
                "kept_float": [pad_name],
                "range_of": {padded: name},
                "why": f"the {shape[1]}-channel image padded to {shape[1] + extra} channels (the Pad runs in float, "
                "before the image is quantized) so the first convolution runs in ONNX Runtime's fast INT8 kernel",
            }
        )


def _silu_as_quickgelu(model: onnx.ModelProto, keep: set[str], records: list[dict[str, Any]]) -> None:
    """``Mul(x, Sigmoid(x))`` → ONNX Runtime's ``QuickGelu(x, alpha=1)`` (the same function), left in
    float by the quantizer: faster than its integer Sigmoid lookup and integer Mul."""
    producer, users, outputs = graph_index(model)
    fused: list[str] = []
    dropped: set[str] = set()
    for mul in [n for n in model.graph.node if n.op_type == "Mul" and n.name not in keep]:
        for x, gate in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
            sigmoid = producer.get(gate)
            if sigmoid is None or sigmoid.op_type != "Sigmoid" or sigmoid.input[0] != x or sigmoid.name in keep:
                continue
            if len(users.get(gate, [])) != 1 or gate in outputs:
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
    records.append(
        {
            "rule": "silu_as_quickgelu",
            "nodes": fused,
            "kept_float": fused,
            "why": "SiLU x·sigmoid(x) runs as ONNX Runtime's float QuickGelu between DequantizeLinear and "
            "QuantizeLinear: its integer Sigmoid lookup plus integer Mul were slower",
        }
    )
