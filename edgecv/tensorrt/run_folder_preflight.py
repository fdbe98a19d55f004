"""The TensorRT preflight of files as a run folder (or a bundle) holds them: each read with what the
folder's manifest says of it, so a file and the folder it sits in get the same findings.

The INT8 stage checks the TensorRT-flavour Q/DQ graph against :mod:`.rules` before writing it and
records the verdict in the manifest; the sha256 the manifest lists for the file says it is still the
graph that was checked, and then the rules are not run on it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv.errors import ArtifactError
from edgecv.runfolder import INT8_ONNX, ONNX, read_manifest, sha256_file
from edgecv.tensorrt.build import FP16_ONNX, INT8_FP16_ONNX
from edgecv.tensorrt.findings import PreflightReport
from edgecv.tensorrt.installation import DEFAULT_TRT_VERSION
from edgecv.tensorrt.preflight import check_tensorrt

# ONNX files of a run folder that are meant for TensorRT, in the order a user reads them.
RUN_FOLDER_ONNX = (ONNX, FP16_ONNX, INT8_ONNX, INT8_FP16_ONNX)


def check_target(
    path: str | Path, trt_version: str = DEFAULT_TRT_VERSION, *, max_batch: int | None = None
) -> list[PreflightReport]:
    """Preflight one ONNX file, or every TensorRT-bound ONNX of a run folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = [path / n for n in RUN_FOLDER_ONNX if (path / n).is_file()]
        if not files:
            raise ArtifactError(f"{path} holds none of {', '.join(RUN_FOLDER_ONNX)}")
        return [check_file(f, trt_version, max_batch=max_batch) for f in files]
    if path.suffix.lower() != ".onnx":
        raise ArtifactError(f"{path}: the TensorRT preflight reads .onnx files or run folders")
    return [check_file(path, trt_version, max_batch=max_batch)]


def check_file(path: Path, trt_version: str = DEFAULT_TRT_VERSION, *, max_batch: int | None = None) -> PreflightReport:
    """Preflight one ONNX file with what its folder's manifest and its own metadata say about it."""
    manifest = _manifest_beside(path)
    report = check_tensorrt(
        path,
        trt_version,
        max_batch=max_batch,
        exempt=kept_in_float(manifest),
        qdq_passed=qdq_rules_passed(path, manifest),
    )
    note = _other_engine_note(path, manifest)
    if note:
        report.notes.append(note)
    return report


def _manifest_beside(path: Path) -> dict[str, Any]:
    try:
        return read_manifest(path.parent)
    except ArtifactError:  # a file outside a run folder (or a bundle) has only its own metadata
        return {}


def _int8_info(manifest: dict[str, Any]) -> dict[str, Any]:
    return ((manifest.get("stages") or {}).get("int8") or {}).get("info") or {}


def kept_in_float(manifest: dict[str, Any]) -> tuple[str, ...]:
    """Nodes the INT8 stage kept in float on purpose (--exclude, --keep-fp32, a detector's decoding
    and NMS, the layers an accuracy budget put back): not INT8 by choice, so not a fault of the Q/DQ graph."""
    return int8_float_nodes(_int8_info(manifest))


def int8_float_nodes(int8_info: dict[str, Any]) -> tuple[str, ...]:
    """The nodes the INT8 stage's record (its manifest ``info``) says the TensorRT flavour keeps in
    float: those kept in every flavour and those that flavour added (``--max-accuracy-drop``)."""
    added = ((int8_info.get("flavours") or {}).get("tensorrt") or {}).get("float_added") or ()
    return tuple(dict.fromkeys([*(int8_info.get("excluded") or ()), *added]))


def int8_stage_passed_rules(int8_info: dict[str, Any]) -> bool:
    """Whether the INT8 stage's record (its manifest ``info``) says the TensorRT flavour it wrote
    passed the Q/DQ rules, checked with :func:`kept_in_float`'s nodes exempt."""
    return ((int8_info.get("flavours") or {}).get("tensorrt") or {}).get("tensorrt_rules") == "passed"


def qdq_rules_passed(path: Path, manifest: dict[str, Any]) -> bool:
    """Whether ``path`` is the TensorRT flavour the INT8 stage checked, unchanged since."""
    if path.name != INT8_ONNX or not int8_stage_passed_rules(_int8_info(manifest)):
        return False
    listed = ((manifest.get("files") or {}).get(path.name) or {}).get("sha256")
    return bool(listed) and listed == sha256_file(path)


def _other_engine_note(path: Path, manifest: dict[str, Any]) -> str | None:
    """For an INT8 flavour made for another engine: say so, and name the TensorRT one."""
    from edgecv.artifact_metadata import PREFIX, read_metadata

    record = next((a for a in manifest.get("artifacts", []) if a.get("path") == path.name), {})
    meta = read_metadata(path)
    intended = meta.get(f"{PREFIX}intended_for") or record.get("intended_for")
    precision = meta.get(f"{PREFIX}precision") or record.get("precision")
    if precision != "int8" or intended in (None, "", "tensorrt"):
        return None
    tensorrt = next(
        (
            a["path"]
            for a in manifest.get("artifacts", [])
            if a.get("intended_for") == "tensorrt" and a.get("precision") == "int8" and a.get("format") == "onnx"
        ),
        INT8_ONNX,
    )
    return (
        f"{path.name} is the INT8 flavour made for {intended}, not for TensorRT, so the findings below are "
        f"expected; check {path.parent / tensorrt} (the TensorRT flavour) instead"
    )
