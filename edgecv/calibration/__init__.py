"""Calibration data, INT8 quantization (ONNX Q/DQ for TensorRT and for CPUs, NNCF for OpenVINO) and
INT8-vs-FP32 fidelity.

    from edgecv.calibration import load_calibration, quantize_run
    calib = load_calibration("photos/", spec, size=300)
    result = quantize_run("run/model.onnx", "run", calib, openvino_xml="run/openvino/model.xml")

Names are imported lazily: importing one submodule must not pull in ONNX Runtime's quantization
tools, NNCF or OpenVINO.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load_calibration": "data",
    "CalibrationData": "data",
    "CalibrationReport": "data",
    "CalibrationWarning": "data",
    "quantize_run": "run",
    "Int8Result": "int8_report",
    "FidelityReport": "fidelity",
    "rank_layers": "sensitivity",
    "SensitivityReport": "sensitivity",
    "quantize_openvino": "openvino_int8",
    "AccuracyBudget": "accuracy_budget",
    "CALIB_METHODS": "ranges",
    "DEFAULT_METHOD": "ranges",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .accuracy_budget import AccuracyBudget
    from .data import CalibrationData, CalibrationReport, CalibrationWarning, load_calibration
    from .fidelity import FidelityReport
    from .int8_report import Int8Result
    from .openvino_int8 import quantize_openvino
    from .ranges import CALIB_METHODS, DEFAULT_METHOD
    from .run import quantize_run
    from .sensitivity import SensitivityReport, rank_layers


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecv.calibration' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
