"""What each export stage hands the stages after it and the manifest: one typed result per stage.

The manifest keeps a result as ``stages.<name>.info`` (its :meth:`StageResult.to_info`), and a
reused stage's result is read back from there (:meth:`StageResult.from_info`), so the typed fields
are views of that record and its JSON keeps one shape whether a stage ran or was reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageResult:
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "StageResult":
        return cls(dict(info))

    def to_info(self) -> dict[str, Any]:
        return self.info

    @property
    def warnings(self) -> list[str]:
        return list(self.info.get("warnings", []))

    @property
    def verification(self) -> dict[str, Any]:
        return self.info.get("verification", {})


class OnnxExportResult(StageResult):
    """The raw export: opset written, exporter, output names (:func:`export_onnx`'s record)."""


class SimplifyResult(StageResult):
    @property
    def simplified(self) -> bool:
        return bool(self.info.get("simplified"))


class OpenVinoResult(StageResult):
    @property
    def weights(self) -> str | None:
        return self.info.get("weights")

    @property
    def cpu_default_precision(self) -> str | None:
        return self.info.get("cpu_default_precision")


class Int8Result(StageResult):
    """The INT8 stage's record (``quantize_run``'s report, the sensitivity ranking cut short)."""

    @property
    def target_cpu(self) -> str:
        return self.info.get("target_cpu") or ""

    def fidelity(self, artifact: str) -> dict[str, Any]:
        """Fidelity of one INT8 artifact against FP32 (empty when it was not made)."""
        return (self.info.get("fidelity") or {}).get(artifact, {})

    def budget(self, artifact: str) -> dict[str, Any] | None:
        """The artifact under ``--max-accuracy-drop``: drop before/after, layers reverted, latency."""
        return ((self.info.get("accuracy_budget") or {}).get("artifacts") or {}).get(artifact)

    def made(self, artifact: str) -> bool:
        return artifact in (self.info.get("fidelity") or {})


class PreflightResult(StageResult):
    @property
    def reports(self) -> dict[str, Any]:
        return self.info.get("reports", {})


class EnginesResult(StageResult):
    @property
    def engines(self) -> dict[str, dict[str, Any]]:
        """Build record of each engine, by precision."""
        return self.info.get("engines", {})
