"""What ``quantize_run`` hands back and writes to ``calibration/report.json``: the INT8 artifacts,
their fidelity against FP32, the calibration, the layers kept in float and, under
``--max-accuracy-drop``, each artifact's drop before and after and what reverting layers cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import CalibrationReport
from .fidelity import FidelityReport
from .sensitivity import SensitivityReport

REPORT_SCHEMA = "edgecv.int8-report/1"


@dataclass
class Int8Result:
    out_dir: Path
    method: str
    artifacts: dict[str, Path]  # artifact name ("onnx-int8", "onnx-int8-cpu", "openvino-int8") → file
    fidelity: dict[str, FidelityReport]
    calibration: CalibrationReport
    ranges: dict[str, Any]  # cache path, key, whether it was reused, time
    flavours: dict[str, dict[str, Any]]
    excluded: list[str]
    sensitivity: SensitivityReport | None
    timings_s: dict[str, float]
    peak_rss_mb: float | None  # the process's peak so far (includes what ran before this call)
    warnings: list[str] = field(default_factory=list)
    target_cpu: str = ""  # the CPU the CPU flavour and the OpenVINO IR were built for
    kept_float: dict[str, Any] = field(default_factory=dict)  # see float_summary
    # --max-accuracy-drop: the data, and per artifact its drop before and after (BudgetOutcome)
    accuracy_budget: dict[str, Any] | None = None

    def fidelity_inputs(self) -> str:
        """Where the fidelity figures come from, in words a reader of the manifest cannot misread."""
        n = self.calibration.holdout
        if self.calibration.holdout_in_sample:
            return f"in-sample: {n} of the calibration inputs (too few to hold any out; optimistic)"
        return f"held out: {n} inputs not used for calibration"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "method": self.method,
            "artifacts": {k: v.relative_to(self.out_dir).as_posix() for k, v in self.artifacts.items()},
            "fidelity": {k: v.to_dict() for k, v in self.fidelity.items()},
            "calibration": self.calibration.to_dict(),
            "ranges": self.ranges,
            "flavours": self.flavours,
            "excluded": self.excluded,
            "sensitivity": (
                {**self.sensitivity.to_dict(), "in_sample": self.calibration.holdout_in_sample}
                if self.sensitivity
                else None
            ),
            "fidelity_inputs": self.fidelity_inputs(),
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
            "peak_rss_mb": None if self.peak_rss_mb is None else round(self.peak_rss_mb, 1),
            "warnings": self.warnings,
            "target_cpu": self.target_cpu,
            "kept_float": self.kept_float,
            "accuracy_budget": self.accuracy_budget,
        }
