"""The run folder's contract: the one module every layer may import to read or write a run.

What ``edgecv export`` writes and every other command reads: the file names, the declared table
of artifact kinds (:data:`ARTIFACT_KINDS`: one row per kind, as Ultralytics' ``export_formats()``
declares its formats), the typed ``manifest.json`` records, the atomic write (an interrupted run
never leaves a file that looks finished; ``os.replace`` is atomic on POSIX within a file system;
metadata goes into the temporary file before the rename), sha256 of a file, and finding the record
of an artifact inside its run folder. Imports only ``edgecv.errors`` and ``edgecv.records``. (Over
400 lines for a reason: the contract is read in one place, so a file name lives nowhere else.)

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

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from edgecv.errors import ArtifactError, OutputPathError
from edgecv.records import known_fields

# --- file names ---------------------------------------------------------------------------------
MANIFEST_NAME = "manifest.json"
RAW_ONNX = "model.raw.onnx"
ONNX = "model.onnx"
INT8_ONNX = "model.int8.onnx"  # Q/DQ, TensorRT flavour
INT8_CPU_ONNX = "model.int8.cpu.onnx"  # Q/DQ, ONNX Runtime's CPU flavour
FP16_ONNX = "model.fp16.onnx"  # what TensorRT builds its FP16 engine from
INT8_FP16_ONNX = "model.int8.fp16.onnx"  # the Q/DQ graph with its float parts in FP16, for TensorRT
OV_DIR = "openvino"
OV_XML = f"{OV_DIR}/model.xml"
OV_FP16_XML = f"{OV_DIR}/model.fp16.xml"
OV_INT8_XML = f"{OV_DIR}/model.int8.xml"
CALIBRATION_DIR = "calibration"
RANGES_FILE = f"{CALIBRATION_DIR}/ranges.json"
RANGES_META_FILE = f"{CALIBRATION_DIR}/ranges.meta.json"  # the key that vouches for the ranges cache
INT8_REPORT_FILE = f"{CALIBRATION_DIR}/report.json"
TENSORRT_DIR = "tensorrt"
TIMING_CACHE = f"{TENSORRT_DIR}/timing.cache"
EVAL_FILE = "eval.json"  # what `edgecv eval` measured on the run's artifacts
RESULTS_FILE = "results.json"  # in a report folder


def tensorrt_engine(precision: str) -> str:
    return f"{TENSORRT_DIR}/model.{precision}.engine"


def companion_files(rel: str) -> list[str]:
    """Files written next to an artifact and renamed with it: OpenVINO's weights, a plan's sidecar."""
    suffix = {".xml": ".bin", ".engine": ".json"}.get(Path(rel).suffix)
    return [Path(rel).with_suffix(suffix).as_posix()] if suffix else []


RESULTS_SCHEMA = "edgecv.results/1"
COMPARISON_SCHEMA = "edgecv.comparison/2"


# --- manifest.json ------------------------------------------------------------------------------
SCHEMA = "edgecv.manifest/1"


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
        return cls(**known_fields(cls, d))


@dataclass(frozen=True)
class ArtifactKind:
    """One row of :data:`ARTIFACT_KINDS`: what an artifact of this kind is, wherever it is made.
    ``description`` may name fields (``{weights}``) that the stage making it fills in."""

    name: str
    file: str
    format: str
    backend: str
    precision: str
    intended_for: str
    description: str

    def record(self, *, description: str | None = None, **fields: Any) -> ArtifactRecord:
        """The manifest record of this artifact; ``fields`` are the run's (batch, figures, extra)."""
        return ArtifactRecord(
            name=self.name,
            path=self.file,
            format=self.format,
            backend=self.backend,
            precision=self.precision,
            intended_for=self.intended_for,
            description=self.description if description is None else description,
            **fields,
        )


def _tensorrt_kind(precision: str) -> ArtifactKind:
    return ArtifactKind(
        f"tensorrt-{precision}",
        tensorrt_engine(precision),
        "tensorrt",
        "tensorrt",
        precision,
        "tensorrt",
        "TensorRT {tensorrt} engine for {gpu} ({typing})",
    )


# Every artifact a run folder may hold, one row per kind: the manifest, `edgecv eval` and reports
# label files from here, so a new engine is one row plus the stage that makes it.
ARTIFACT_KINDS: dict[str, ArtifactKind] = {
    k.name: k
    for k in (
        ArtifactKind("onnx-fp32", ONNX, "onnx", "onnxruntime", "fp32", "onnxruntime", "simplified FP32 ONNX"),
        ArtifactKind(
            "openvino-fp32", OV_XML, "openvino", "openvino", "fp32", "openvino", "OpenVINO IR, {weights} weights"
        ),
        ArtifactKind(
            "openvino-fp16", OV_FP16_XML, "openvino", "openvino", "fp16", "openvino", "OpenVINO IR, {weights} weights"
        ),
        ArtifactKind(
            "onnx-int8",
            INT8_ONNX,
            "onnx",
            "onnxruntime",
            "int8",
            "tensorrt",
            "INT8 Q/DQ, TensorRT flavour (signed, symmetric); slow in ONNX Runtime on CPUs",
        ),
        ArtifactKind(
            "onnx-int8-cpu",
            INT8_CPU_ONNX,
            "onnx",
            "onnxruntime",
            "int8",
            "onnxruntime",
            "INT8 Q/DQ, U8 activations / S8 weights: ONNX Runtime's fast CPU flavour",
        ),
        ArtifactKind(
            "openvino-int8", OV_INT8_XML, "openvino", "openvino", "int8", "openvino", "OpenVINO IR quantized by NNCF"
        ),
        *(_tensorrt_kind(p) for p in ("fp32", "fp16", "int8")),
    )
}


def artifact_kind(name: str) -> ArtifactKind:
    return ARTIFACT_KINDS[name]


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


def find_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], Path] | None:
    """(artifact record, manifest, run folder) of the run folder that lists ``path`` (looked up to
    two levels up, for ``openvino/model.xml``), or None for a file outside any run folder."""
    resolved = Path(path).expanduser().resolve()
    for folder in list(resolved.parents)[:2]:
        if not (folder / MANIFEST_NAME).is_file():
            continue
        try:
            manifest = read_manifest(folder)
        except ArtifactError:
            return None
        for record in manifest.get("artifacts", []):
            if (folder / record.get("path", "")).resolve() == resolved:
                return record, manifest, folder
    return None


def verification_headline(verification: dict[str, Any] | None) -> dict[str, Any] | None:
    """The worst figures of an artifact's verification over all its outputs, for tables: largest
    difference, lowest cosine and top-1 agreement, and for detectors the share of detections
    matched."""
    outputs = (verification or {}).get("outputs") or []
    if not outputs:
        return None
    top1 = [o["top1_agreement"] for o in outputs if o.get("top1_agreement") is not None]
    head = {
        "passed": verification.get("passed"),
        "max_abs": max(o.get("max_abs", o.get("max_score_diff", 0.0)) for o in outputs),
        "cosine": min((o["cosine"] for o in outputs if "cosine" in o), default=None),
        "top1_agreement": min(top1) if top1 else None,
    }
    matched = [o["matched_share"] for o in outputs if "matched_share" in o]
    if matched:
        head["matched_share"] = min(matched)
    return head


# --- atomic writes and hashes -------------------------------------------------------------------
TMP_MARK = ".partial-"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tmp_name(final: Path) -> Path:
    """A temporary sibling of ``final`` that keeps its suffix (some writers dispatch on it)."""
    return final.with_name(f"{TMP_MARK}{os.getpid()}-{final.name}")


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows: assume its writer still runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_partials(folder: Path) -> None:
    """Temporary files whose writer is gone (killed while writing) will never be finished: remove
    them. Those of a live process may still be renamed into place and stay."""
    for p in folder.glob(f"{TMP_MARK}*"):
        pid = p.name[len(TMP_MARK) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink() if p.is_file() else shutil.rmtree(p)


@contextlib.contextmanager
def atomic_path(
    final: str | Path, companions: tuple[str, ...] = (), finish: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary path to write; rename it (and companion files with the same stem and the
    given suffixes, e.g. OpenVINO's ``.bin`` next to the ``.xml``) onto ``final`` on success.
    ``finish`` gets the written temporary file before the rename (an artifact's metadata goes in
    there, so the file is written once and never reopened once it looks finished).
    On any error the temporary files are removed and nothing named ``final`` is touched; what a
    killed writer left next to ``final`` goes at the next write there."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(final.parent)
    tmp = tmp_name(final)
    pairs = [(tmp, final)] + [(tmp.with_suffix(s), final.with_suffix(s)) for s in companions]
    try:
        yield tmp
        if finish is not None and tmp.exists():
            finish(tmp)
        for src, _ in pairs:
            if not src.exists():
                raise FileNotFoundError(f"writer did not produce {src.name}")
        # Companions first: the main file appearing is what marks the artifact as complete.
        for src, dst in reversed(pairs):
            os.replace(src, dst)
    finally:
        for src, _ in pairs:
            with contextlib.suppress(FileNotFoundError):
                src.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def remove_stale_partials(run_dir: Path) -> None:
    """Temporary files of an earlier, interrupted run are never finished artifacts: remove them."""
    for p in run_dir.rglob(f"{TMP_MARK}*"):
        with contextlib.suppress(OSError):
            p.unlink() if p.is_file() else shutil.rmtree(p)


def prepare_run_dir(out: str | Path) -> Path:
    """Create (or reuse) the output folder, refusing paths that cannot hold a run."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).exists():
        # Never mix a run into a folder that holds something else.
        raise OutputPathError(f"output folder {out} is not empty and holds no edgecv manifest; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputPathError(f"output folder {out} is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=TMP_MARK):
            pass
    except OSError as exc:
        raise OutputPathError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
    remove_stale_partials(out)
    return out


def file_record(run_dir: Path, rel: str) -> dict[str, Any]:
    p = run_dir / rel
    return {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}


# --- eval.json: figures count only while the artifact they scored is unchanged --------------------
def artifact_parts(rel: str) -> list[str]:
    """The files one artifact is made of: OpenVINO keeps its weights in a ``.bin`` next to the ``.xml``
    (two IRs can share an identical ``.xml``)."""
    return [rel, Path(rel).with_suffix(".bin").as_posix()] if rel.endswith(".xml") else [rel]


def listed_digest(files: dict[str, Any], rel: str) -> str | None:
    """One digest of an artifact from the hashes a manifest records; None when a part is unlisted."""
    hashes = {part: (files.get(part) or {}).get("sha256") for part in artifact_parts(rel)}
    return sha256_json(hashes) if all(hashes.values()) else None


def disk_digest(run_dir: Path, rel: str) -> str | None:
    """The digest :func:`listed_digest` gives for the bytes on disk now; None when a part is missing."""
    parts = artifact_parts(rel)
    if not all((run_dir / part).is_file() for part in parts):
        return None
    return sha256_json({part: sha256_file(run_dir / part) for part in parts})


def _read_eval(run_dir: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((run_dir / EVAL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("accuracy"), dict) else None


def scored_accuracy(run_dir: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The accuracy rows of ``<run>/eval.json`` whose artifact the manifest still lists with the
    bytes eval scored (``scored`` holds each row's digest); rows without one are never vouched for."""
    doc = _read_eval(run_dir)
    if doc is None:
        return {}
    if manifest is None:
        try:
            manifest = read_manifest(run_dir)
        except ArtifactError:
            return {}
    files = manifest.get("files") or {}
    current = {a.get("name"): listed_digest(files, a.get("path", "")) for a in manifest.get("artifacts", [])}
    scored = doc.get("scored") if isinstance(doc.get("scored"), dict) else {}
    return {
        label: row
        for label, row in doc["accuracy"].items()
        if current.get(label) is not None and (scored.get(label) or {}).get("digest") == current[label]
    }


def prune_eval(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Drop the rows of ``<run>/eval.json`` for artifacts ``manifest`` no longer lists as scored."""
    doc = _read_eval(run_dir)
    if doc is None:
        return
    kept = scored_accuracy(run_dir, manifest)
    if kept == doc["accuracy"]:
        return
    doc["accuracy"] = kept
    doc["scored"] = {label: doc["scored"][label] for label in kept}
    write_json_atomic(run_dir / EVAL_FILE, doc)
