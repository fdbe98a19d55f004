"""Planning a benchmark: which artifacts of a target (a run folder, one artifact, a zoo model) to
time, on which backend, at which batches and threads. Nothing is loaded or timed here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from edgecv.errors import ArtifactError, InputMismatchError, InvalidOptionError
from edgecv.runfolder import find_artifact

from .base import normalize_precision
from .registry import BACKENDS, backend_name, canonical_device
from .timing import OFFLINE_BATCH, check_batch_value

BASELINE_LABEL = "pytorch"

# (done calls, fraction of the loop done)


@dataclass
class BenchJob:
    """One artifact to load once and time at each batch (``None``: the scenario's batch)."""

    label: str
    source: str
    backend: str
    batches: list[int | None]
    threads: int | None = None
    precision: str | None = None
    record: dict[str, Any] = field(default_factory=dict)  # the manifest's artifact record, if any
    device: str | None = None  # in the backend's spelling; None: the backend's default
    # The target's InputSpec (as a dict): every job of one target builds its inputs from the same
    # spec, so the PyTorch baseline and the artifacts are timed on the same pictures.
    input_spec: dict[str, Any] | None = None


@dataclass
class PlanOptions:
    """What to run for a target; with :class:`~edgecv.runtime.timing.BenchSettings` (how to time) the
    one settings object a benchmark takes."""

    batches: Sequence[int] | None = None
    threads: int | None = None
    backends: Sequence[str] | None = None
    precision: str | None = None
    baseline: bool = True  # time the PyTorch model a run folder was exported from
    isolate: bool = True  # each artifact in a fresh process: honest peak memory and cold start
    # One device for every backend (``cuda``), or one per backend (``torch=cuda:0,openvino=GPU``).
    device: str | None = None

    def __post_init__(self) -> None:
        if self.device is not None:
            parse_devices(self.device)
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise InvalidOptionError(f"threads must be a positive integer, got {self.threads!r}")
        self.precision = normalize_precision(self.precision)
        if self.batches:
            self.batches = [check_batch_value(b) for b in self.batches]
        self.backends = list(self.backends) if self.backends else None


def parse_devices(text: str) -> dict[str | None, str]:
    """``cuda`` → ``{None: "cuda"}`` (every backend); ``torch=cuda:0,ov=GPU`` → one device per
    backend, each checked against what that backend takes."""
    text = str(text).strip()
    if not text:
        raise InvalidOptionError("--device needs a device name, e.g. cuda (or BACKEND=DEVICE,…)")
    if "=" not in text:
        return {None: text}
    devices: dict[str | None, str] = {}
    for pair in text.split(","):
        backend, sep, device = pair.partition("=")
        if not sep or not backend.strip() or not device.strip():
            raise InvalidOptionError(
                f"--device takes DEVICE or BACKEND=DEVICE pairs (torch=cuda,openvino=GPU), got {text!r}"
            )
        name = backend_name(backend)
        devices[name] = canonical_device(name, device)
    return devices


def device_for(devices: dict[str | None, str], backend: str) -> str | None:
    """The device ``backend`` runs on; a device meant for every backend must suit this one."""
    if backend in devices:
        return devices[backend]
    if None not in devices:
        return None
    try:
        return canonical_device(backend, devices[None])
    except InvalidOptionError as exc:
        raise InvalidOptionError(
            f"--device {devices[None]}: {exc}; keep to the backends that can with --backend, or give one "
            "device per backend (torch=cuda,openvino=GPU)"
        ) from None


def _find_record(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The manifest record of an artifact inside a run folder, and the manifest, if any."""
    found = find_artifact(path)
    return (found[0], found[1]) if found else ({}, None)


def run_folder_artifacts(
    path: Path, manifest: dict[str, Any], wanted: set[str] | None, skipped: list[dict[str, str]]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, backend, record) of each artifact a run folder lists that an edgecv runtime runs and
    ``wanted`` (backend names, None for all) keeps. Artifacts of unknown backends are added to
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
        found.append((label, backend, record))
    return found


def _planned_batch(record: dict[str, Any], scenario: str) -> int:
    if not record.get("dynamic_batch"):
        return int(record.get("batch", 1))
    return OFFLINE_BATCH if scenario == "offline" else 1


def plan_jobs(
    target: str | Path,
    *,
    batches: Sequence[int] | None,
    backends: Iterable[str] | None,
    threads: int | None,
    precision: str | None,
    scenario: str,
    baseline: bool = True,
    device: str | None = None,
) -> tuple[dict[str, Any], list[BenchJob], list[dict[str, str]]]:
    """What to run for ``target``: (target description, jobs, skipped artifacts with reasons)."""
    from edgecv.runfolder import MANIFEST_NAME, read_manifest

    wanted = {backend_name(b) for b in backends} if backends else None
    skipped: list[dict[str, str]] = []
    devices = parse_devices(device) if device is not None else {}
    input_spec: dict[str, Any] | None = None

    def job_for(
        label: str, source: str, backend: str, record: dict[str, Any], job_batches: list[int | None]
    ) -> BenchJob:
        entry = BACKENDS[backend]
        return BenchJob(
            label=label,
            source=source,
            backend=backend,
            batches=job_batches,
            threads=threads if entry.cpu_threads else None,
            precision=precision if entry.precision_hint else None,
            record=record,
            device=device_for(devices, backend),
            input_spec=input_spec,
        )

    path = Path(target).expanduser()
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        manifest = read_manifest(path)
        input_spec = manifest.get("input_spec") if isinstance(manifest.get("input_spec"), dict) else None
        jobs = []
        for label, backend, record in run_folder_artifacts(path, manifest, wanted, skipped):
            if batches:
                _check_record_batches(label, record, batches)
            job_batches = list(batches) if batches else [_planned_batch(record, scenario)]
            jobs.append(job_for(label, str(path / record["path"]), backend, record, job_batches))
        model = manifest.get("model") or {}
        if baseline and (wanted is None or "torch" in wanted):
            if model.get("custom"):
                skipped.append(
                    {"artifact": BASELINE_LABEL, "reason": "exported from a custom nn.Module: no PyTorch baseline"}
                )
            else:
                planned = sorted({b for job in jobs for b in job.batches if b is not None}) or [None]
                jobs.insert(
                    0, job_for(BASELINE_LABEL, str(path), "torch", {"precision": "fp32"}, list(batches or planned))
                )
        if not jobs:
            raise InvalidOptionError(
                f"nothing to benchmark in {path}" + (f" for backend {', '.join(sorted(wanted))}" if wanted else "")
            )
        return {"path": str(path), "kind": "run-folder", "model": model}, jobs, skipped

    from .registry import resolve_backend

    backend = resolve_backend(str(target), next(iter(wanted)) if wanted and len(wanted) == 1 else None)
    if wanted is not None and backend not in wanted:
        raise InvalidOptionError(f"{target} runs in {backend}, not in {', '.join(sorted(wanted))}")
    if path.exists():
        record, manifest = _find_record(path)
        if manifest and isinstance(manifest.get("input_spec"), dict):
            input_spec = manifest["input_spec"]
        if batches and record:
            _check_record_batches(path.name, record, batches, single_file=True)
        label = record.get("name") or path.name
        model = (manifest or {}).get("model")
        kind = "artifact"
    else:
        record, label, model, kind = {}, str(target), {"name": str(target)}, "model"
    job = job_for(label, str(target), backend, record, list(batches) if batches else [None])
    return {"path": str(target), "kind": kind, "model": model}, [job], skipped


def _check_record_batches(
    label: str, record: dict[str, Any], batches: Sequence[int], single_file: bool = False
) -> None:
    if record.get("dynamic_batch"):
        return
    fixed = int(record.get("batch", 1))
    bad = [b for b in batches if b != fixed]
    if bad:
        advice = (
            f"time this file at --batch {fixed}, or re-export with --dynamic-batch (runs/<model>-…-dyn) "
            "and benchmark that file to sweep batch sizes"
            if single_file
            else "export with --dynamic-batch to sweep batch sizes, or pick artifacts with --backend"
        )
        raise InputMismatchError(
            f"{label} has a static batch of {fixed}, asked for batch {', '.join(map(str, bad))} ({advice})"
        )
