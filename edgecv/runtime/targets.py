"""What a command runs: a run folder, an artifact file or a zoo model name, resolved to the
artifacts to load. ``edgecv benchmark`` and ``edgecv eval`` both start here, so they accept the same
targets and read a run folder the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgecv.errors import ArtifactError
from edgecv.runfolder import MANIFEST_NAME, find_artifact, read_manifest

from .registry import BACKENDS, backend_name, resolve_backend


@dataclass
class Artifact:
    """One thing to load: ``source`` is a file, or a zoo model name for the PyTorch backend."""

    label: str
    source: str
    backend: str
    record: dict[str, Any] = field(default_factory=dict)  # its entry in the run folder's manifest


@dataclass
class Target:
    path: Path
    kind: str  # run-folder | artifact | model
    artifacts: list[Artifact]
    manifest: dict[str, Any] | None = None
    run_dir: Path | None = None  # the run folder it is or is in
    # Artifacts left out, with why: {"artifact": label, "reason": ...}
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def model(self) -> Any:
        return (self.manifest or {}).get("model")


def wanted_backends(backends: Iterable[str] | None) -> set[str] | None:
    return {backend_name(b) for b in backends} if backends else None


def resolve_target(target: str | Path, wanted: set[str] | None) -> Target:
    """Every artifact of a run folder that an edgecv runtime runs and ``wanted`` (backend names, None
    for all) keeps; or the one artifact file; or a zoo model in PyTorch."""
    path = Path(target).expanduser()
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        manifest = read_manifest(path)
        skipped: list[dict[str, str]] = []
        return Target(path, "run-folder", _listed(path, manifest, wanted, skipped), manifest, path, skipped)
    backend = resolve_backend(str(target), next(iter(wanted)) if wanted and len(wanted) == 1 else None)
    if path.exists():
        found = find_artifact(path)
        record, manifest, run_dir = found if found else ({}, None, None)
        artifact = Artifact(record.get("name") or path.name, str(path), backend, record)
        return Target(path, "artifact", [artifact], manifest, run_dir)
    return Target(path, "model", [Artifact(str(target), str(target), backend)])


def _listed(
    path: Path, manifest: dict[str, Any], wanted: set[str] | None, skipped: list[dict[str, str]]
) -> list[Artifact]:
    """The artifacts a run folder lists that an edgecv runtime runs and ``wanted`` keeps. Artifacts of unknown backends are added to
    ``skipped``; a listed file that is missing is an error: the run folder is not what its
    manifest says."""
    found = []
    for record in manifest.get("artifacts", []):
        label, backend = record.get("name") or record.get("path"), record.get("backend", "")
        if backend not in BACKENDS:
            skipped.append({"artifact": label, "reason": f"no edgecv runtime for backend '{backend}'"})
            continue
        if wanted is not None and backend not in wanted:
            continue
        if not (path / record["path"]).is_file():
            raise ArtifactError(f"{path} lists {record['path']} but the file is missing (re-run the export)")
        found.append(Artifact(label, str(path / record["path"]), backend, record))
    return found
