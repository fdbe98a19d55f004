"""onnxsim simplification, with the raw graph kept when onnxsim fails on a model."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import onnx


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def simplify_onnx(raw: Path, out: Path) -> dict[str, Any]:
    """Simplify ``raw`` into ``out``. If onnxsim errors or cannot validate its result, copy the raw
    graph instead and say why: a working, unsimplified graph beats no artifact."""
    model = onnx.load(str(raw))
    before = len(model.graph.node)
    info: dict[str, Any] = {"nodes_before": before, "ops_before": op_histogram(model)}
    try:
        import onnxsim

        info["onnxsim"] = getattr(onnxsim, "__version__", "unknown")
        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified graph against the original")
        onnx.checker.check_model(simplified)
    except Exception as exc:  # onnxsim raises bare RuntimeErrors from C++; any failure means "keep raw"
        shutil.copyfile(raw, out)
        info.update(simplified=False, reason=f"{type(exc).__name__}: {exc}", nodes_after=before)
        return info
    onnx.save(simplified, str(out))
    info.update(
        simplified=True,
        nodes_after=len(simplified.graph.node),
        ops_after=op_histogram(simplified),
    )
    return info
