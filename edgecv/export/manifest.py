"""The run folder's ``manifest.json``: what was built, from what, with which tools, how it verified.

Schema ``edgecv.manifest/1``::

    {
      "schema": "edgecv.manifest/1",
      "created": ISO time, "edgecv_version": str,
      "model": {"name", "num_classes", "width_mult", "resolution", "weights", "weights_sha256",
                "random_weights": bool, ...variant options},
      "options": {every export option},
      "input_spec": InputSpec.to_dict(),
      "versions": {"python", "torch", "onnx", "onnxsim", "onnxruntime", "openvino", "nncf", ...},
      "machine": {"cpu", "flags", "cores", "os", "openvino_default_precision"},
      "stages": {stage: {"status": "done"|"skipped"|"failed"|"reused", "wall_s", "key", ...}},
      "artifacts": [ArtifactRecord.to_dict(), ...],
      "files": {relative path: {"sha256", "size_bytes"}},
      "calibration": {...} | null,
    }
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv.errors import ArtifactError

SCHEMA = "edgecv.manifest/1"
MANIFEST_NAME = "manifest.json"


@dataclass
class ArtifactRecord:
    """One runnable artifact of a run folder.

    ``backend`` is the runtime that runs it here (``onnxruntime``, ``openvino``, ``tensorrt``);
    ``intended_for`` names the engine it was made for (``model.int8.onnx`` runs in ONNX Runtime but is
    the TensorRT flavour of QDQ), so reports can label it honestly.
    """

    name: str  # short label, e.g. "onnx-fp32", "onnx-int8-cpu", "openvino-int8"
    path: str  # relative to the run folder
    format: str  # "onnx", "openvino", "tensorrt"
    backend: str
    precision: str  # "fp32", "fp16", "int8"
    intended_for: str = ""
    description: str = ""
    dynamic_batch: bool = False
    batch: int = 1
    verification: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactRecord":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{run_dir} is not an edgecv run folder (no {MANIFEST_NAME})")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not a readable manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ArtifactError(f"{path} is not an edgecv manifest (schema {SCHEMA} expected)")
    return data


def artifacts(manifest: dict[str, Any]) -> list[ArtifactRecord]:
    return [ArtifactRecord.from_dict(a) for a in manifest.get("artifacts", [])]
