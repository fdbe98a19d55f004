"""ONNX → OpenVINO IR (``openvino/model.xml|bin``; ``model.fp16.xml|bin`` with FP16-compressed weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv.errors import BackendUnavailableError, StageError


def _openvino():
    try:
        import openvino as ov
    except ImportError as exc:  # pragma: no cover - openvino is a core dependency
        raise BackendUnavailableError("openvino", "openvino", str(exc)) from None
    return ov


def convert_to_ir(onnx_path: Path, xml_path: Path, *, compress_to_fp16: bool = False) -> dict[str, Any]:
    """Convert and save; ``xml_path`` may be a temporary name (the ``.bin`` follows its stem)."""
    ov = _openvino()
    try:
        ov_model = ov.convert_model(str(onnx_path))
        ov.save_model(ov_model, str(xml_path), compress_to_fp16=compress_to_fp16)
    except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses for unsupported graphs
        raise StageError("openvino", f"OpenVINO could not convert {onnx_path.name}: {exc}") from exc
    return {
        "openvino": ov.get_version(),
        "weights": "fp16" if compress_to_fp16 else "fp32",
        "ops": len(ov_model.get_ordered_ops()),
    }
