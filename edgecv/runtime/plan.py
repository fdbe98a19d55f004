"""Planning a benchmark: which artifacts of a target (a run folder, one artifact, a zoo model) to
time, on which backend, at which batches and threads. Nothing is loaded or timed here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from edgecv.errors import InputMismatchError, InvalidOptionError

from .base import normalize_precision
from .registry import BACKENDS, backend_name, canonical_device
from .targets import Artifact, resolve_target, wanted_backends
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
    # The ONNX file the artifact is or was built from (an engine's sidecar names it): what lines a
    # board's engine up with this machine's ONNX figures in `edgecv report`.
    source_sha256: str | None = None


@dataclass
class PlanOptions:
    """What to run for a target; with :class:`~edgecv.runtime.timing.BenchSettings` (how to time) the
    one settings object a benchmark takes."""

    batches: Sequence[int] | None = None
    # One thread count, or several to sweep: every CPU artifact is timed at each.
    threads: int | Sequence[int] | None = None
    backends: Sequence[str] | None = None
    precision: str | None = None
    baseline: bool = True  # time the PyTorch model a run folder was exported from
    isolate: bool = True  # each artifact in a fresh process: honest peak memory and cold start
    # One device for every backend (``cuda``), or one per backend (``torch=cuda:0,openvino=GPU``).
    device: str | None = None

    def __post_init__(self) -> None:
        if self.device is not None:
            parse_devices(self.device)
        self.threads = check_threads(self.threads)
        self.precision = normalize_precision(self.precision)
        if self.batches:
            self.batches = [check_batch_value(b) for b in self.batches]
        self.backends = list(self.backends) if self.backends else None


def check_threads(threads: int | Sequence[int] | None) -> int | tuple[int, ...] | None:
    """``threads`` as given (one count) or as a tuple without repeats (a sweep); a value that is not
    a positive integer raises :class:`InvalidOptionError`."""
    counts = [threads] if threads is None or isinstance(threads, int) else list(threads)
    for count in counts:
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise InvalidOptionError(f"threads must be a positive integer, got {count!r}")
    if threads is None or isinstance(threads, int):
        return threads
    if not counts:
        raise InvalidOptionError("threads: give at least one thread count")
    return tuple(dict.fromkeys(counts))


def thread_counts(threads: int | Sequence[int] | None) -> list[int | None]:
    """The thread counts a plan runs at: ``[None]`` for each backend's default."""
    checked = check_threads(threads)
    return [checked] if checked is None or isinstance(checked, int) else list(checked)


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


def _planned_batch(record: dict[str, Any], scenario: str) -> int:
    if not record.get("dynamic_batch"):
        return int(record.get("batch", 1))
    return OFFLINE_BATCH if scenario == "offline" else 1


def plan_jobs(
    target: str | Path,
    *,
    batches: Sequence[int] | None,
    backends: Iterable[str] | None,
    threads: int | Sequence[int] | None,
    precision: str | None,
    scenario: str,
    baseline: bool = True,
    device: str | None = None,
) -> tuple[dict[str, Any], list[BenchJob], list[dict[str, str]]]:
    """What to run for ``target``: (target description, jobs, skipped artifacts with reasons).

    With several thread counts each CPU artifact (the baseline too) is one job per count, grouped
    by count; an artifact whose backend takes no thread count (TensorRT) runs once."""
    wanted = wanted_backends(backends)
    devices = parse_devices(device) if device is not None else {}
    resolved = resolve_target(target, wanted)
    manifest = resolved.manifest or {}
    input_spec = manifest.get("input_spec") if isinstance(manifest.get("input_spec"), dict) else None

    counts = thread_counts(threads)

    def jobs_for(artifact: Artifact, job_batches: list[int | None]) -> list[BenchJob]:
        entry = BACKENDS[artifact.backend]
        return [job_for(artifact, job_batches, count) for count in (counts if entry.cpu_threads else [None])]

    def job_for(artifact: Artifact, job_batches: list[int | None], count: int | None) -> BenchJob:
        entry = BACKENDS[artifact.backend]
        return BenchJob(
            label=artifact.label,
            source=artifact.source,
            backend=artifact.backend,
            batches=job_batches,
            threads=count,
            precision=precision if entry.precision_hint else None,
            record=artifact.record,
            device=device_for(devices, artifact.backend),
            input_spec=input_spec,
            source_sha256=_source_sha256(artifact, manifest),
        )

    path = resolved.path
    if resolved.kind == "run-folder":
        jobs = []
        for artifact in resolved.artifacts:
            if batches:
                _check_record_batches(artifact.label, artifact.record, batches)
            jobs += jobs_for(artifact, list(batches) if batches else [_planned_batch(artifact.record, scenario)])
        model = resolved.model or {}
        if baseline and (wanted is None or "torch" in wanted):
            if model.get("custom"):
                resolved.skipped.append(
                    {"artifact": BASELINE_LABEL, "reason": "exported from a custom nn.Module: no PyTorch baseline"}
                )
            else:
                planned = sorted({b for job in jobs for b in job.batches if b is not None}) or [None]
                torch = Artifact(BASELINE_LABEL, str(path), "torch", {"precision": "fp32"})
                jobs = jobs_for(torch, list(batches or planned)) + jobs
        if not jobs:
            raise InvalidOptionError(
                f"nothing to benchmark in {path}" + (f" for backend {', '.join(sorted(wanted))}" if wanted else "")
            )
        # One thread count at a time, every artifact at it, so a sweep's rows read count by count.
        order = {count: i for i, count in enumerate(counts)}
        jobs.sort(key=lambda job: order.get(job.threads, 0))
        return {"path": str(path), "kind": "run-folder", "model": model}, jobs, resolved.skipped

    [artifact] = resolved.artifacts
    if wanted is not None and artifact.backend not in wanted:
        raise InvalidOptionError(f"{target} runs in {artifact.backend}, not in {', '.join(sorted(wanted))}")
    if batches and artifact.record:
        _check_record_batches(path.name, artifact.record, batches, single_file=True)
    model = resolved.model if resolved.kind == "artifact" else {"name": str(target)}
    jobs = jobs_for(artifact, list(batches) if batches else [None])
    return {"path": str(target), "kind": resolved.kind, "model": model}, jobs, resolved.skipped


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


def _source_sha256(artifact: Artifact, manifest: dict[str, Any]) -> str | None:
    """The sha256 of the ONNX file ``artifact`` is (from the manifest) or an engine was built from
    (from its sidecar); None for the rest."""
    source = Path(artifact.source)
    if source.suffix == ".onnx":
        return ((manifest.get("files") or {}).get(str(artifact.record.get("path", ""))) or {}).get("sha256")
    if source.suffix == ".engine":
        import json

        try:
            return json.loads(source.with_suffix(".json").read_text()).get("onnx_sha256")
        except (OSError, ValueError, AttributeError):
            return None
    return None
