"""What the passes that rewrite the FP32 graph for ONNX Runtime's CPU kernels share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx


@dataclass
class PassContext:
    model: onnx.ModelProto  # edited in place
    # Inferred once, on the graph as it came: the one pass that changes shapes (channel alignment)
    # runs after the shuffle and pool passes that read them and never changes the image's.
    shapes: dict[str, list[int]]
    keep: set[str]  # nodes the user keeps in float: no pass touches them
    records: list[dict[str, Any]] = field(default_factory=list)  # one per rewrite: rule, nodes, why
    # 1×1 convolutions the channel-shuffle pass wrote in place of a shuffle it could not fold; the
    # channel-split pass folds the Slices that read them.
    permutations: list[onnx.NodeProto] = field(default_factory=list)
