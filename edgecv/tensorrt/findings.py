"""What the TensorRT preflight reports: findings, each with its node, rule and severity, and the
report of one file.

Severities: ``error`` (the parser or the builder would fail), ``warning`` (it builds, but slower
than it should, or it cannot run elsewhere), ``info`` (what TensorRT will do that a user should know).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: str
    rule: str
    node: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.node}: {self.message}"


@dataclass
class PreflightReport:
    artifact: str
    trt_version: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what to know before reading the findings

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def summary(self) -> str:
        return f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "trt_version": self.trt_version,
            "would_build": not self.errors,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "notes": list(self.notes),
            "findings": [asdict(f) for f in self.findings],
        }
