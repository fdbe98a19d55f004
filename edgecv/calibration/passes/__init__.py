"""Graph passes of the INT8 flavours, one module each.

Before ONNX Runtime quantizes the CPU flavour, :data:`CPU_PASSES` rewrite the FP32 graph, in order,
into one computing the same function that ONNX Runtime's CPU kernels run fast (:func:`rewrite_for_cpu_int8`).
ONNX Runtime runs a quantized graph's convolutions channels-last (NHWC) in integers and is slow at
everything around them; each pass's module says what it measured. Every tensor that is still
computed keeps its name and its range (a permutation or appended zero channels read by nothing
change neither the range that matters nor its use), so activation ranges computed on the original
graph apply to the rewritten one; the one new activation tensor, the padded image, is named in its
record's ``range_of`` with the tensor whose range it shares.

After quantizing, on the Q/DQ graph: :func:`bypass_input_qdq` (layers kept in float read float
inputs, both flavours), :func:`dedicate_qdq_pairs` (one Q/DQ pair per consumer, TensorRT) and
:func:`hardsigmoid_as_integer_add` (CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import onnx

from edgecv.onnx_graph import remove_unused_initializers, static_shapes

from .average_pool import average_pools_as_depthwise
from .channel_alignment import align_channels
from .channel_shuffle import fold_channel_shuffles
from .channel_split import fold_split_permutations
from .context import PassContext
from .dedicated_qdq import dedicate_qdq_pairs
from .float_inputs import bypass_input_qdq
from .hardsigmoid_add import hardsigmoid_as_integer_add
from .image_channels import pad_image_channels
from .silu_quickgelu import silu_as_quickgelu

# The split pass folds the permutations the shuffle pass writes; channels are aligned once the
# shuffles, splits and pools are convolutions, so those convolutions are aligned too.
CPU_PASSES: tuple[Callable[[PassContext], None], ...] = (
    fold_channel_shuffles,
    fold_split_permutations,
    average_pools_as_depthwise,
    align_channels,
    pad_image_channels,
    silu_as_quickgelu,
)

__all__ = [
    "CPU_PASSES",
    "PassContext",
    "bypass_input_qdq",
    "dedicate_qdq_pairs",
    "hardsigmoid_as_integer_add",
    "rewrite_for_cpu_int8",
]


def rewrite_for_cpu_int8(model: onnx.ModelProto, keep: Collection[str] = ()) -> list[dict[str, Any]]:
    """Apply every CPU pass to ``model`` in place and return one record per rewrite (rule, nodes,
    why). Nodes named in ``keep`` (kept in float by the user) are left as they are."""
    ctx = PassContext(model, static_shapes(model), set(keep))
    for run in CPU_PASSES:
        run(ctx)
    if ctx.records:
        remove_unused_initializers(model)
    return ctx.records
