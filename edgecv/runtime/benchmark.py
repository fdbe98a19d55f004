"""Latency benchmark of one runtime (:func:`benchmark`) or of every artifact of a run folder
(:func:`benchmark_target`).

What is timed: ``clock()`` (``time.perf_counter_ns``) right before and right after each call of the
runtime, and nothing else in between: inputs are generated and checked before the loop, and the
loop calls the backend without re-checking them. Warmup calls are not timed, except the very first
one, reported apart as the cold first inference. Statistics: see :mod:`edgecv.runtime.stats`.
Throughput is items per second of timed calls: batch × calls / Σ latencies.

Scenarios (after MLPerf): ``single-stream`` sends one batch (1 by default) at a time and reports the
p90 latency as its headline; ``offline`` sends the largest batch the artifact allows (its fixed
batch, the top of a TensorRT profile, else :data:`OFFLINE_BATCH`) and reports throughput.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edgecv.errors import ArtifactError, BackendUnavailableError, InputMismatchError, InvalidOptionError
from edgecv.runfolder import find_artifact, verification_headline

from . import load
from .base import Runtime, normalize_precision
from .memory import current_rss_mb
from .registry import BACKENDS, backend_class, backend_name, is_installed
from .stats import LatencyStats

SCENARIOS = ("single-stream", "offline", "throughput")
# Backends whose throughput scenario keeps several inferences in flight (see Runtime.run_concurrently).
CONCURRENT_BACKENDS = ("onnxruntime", "openvino")
DEFAULT_WARMUP = 10
DEFAULT_ITERATIONS = 200
OFFLINE_BATCH = 32
PROGRESS_EVERY_NS = 100_000_000
BASELINE_LABEL = "pytorch"

# (done calls, fraction of the loop done)
ProgressFn = Callable[[int, float], None]


@dataclass
class BenchSettings:
    """How to time: the loop's length and the scenario. Shared by every artifact of a report."""

    warmup: int = DEFAULT_WARMUP
    iterations: int | None = None
    duration: float | None = None
    scenario: str = "single-stream"
    seed: int = 0
    # ``1x3x224x224`` (or ``name:1x3x224x224``): the input shape for artifacts that do not fix it.
    shape: str | None = None
    # Throughput scenario: inferences in flight (default: the backend's choice).
    requests: int | None = None

    def __post_init__(self) -> None:
        if self.shape is not None:
            parse_shape(self.shape)
        if self.requests is not None and (isinstance(self.requests, bool) or not isinstance(self.requests, int)
                                          or self.requests < 1):
            raise InvalidOptionError(f"requests must be an integer ≥ 1, got {self.requests!r}")
        if self.scenario not in SCENARIOS:
            raise InvalidOptionError(f"scenario must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        if self.iterations is not None and self.duration is not None:
            raise InvalidOptionError("give iterations or duration, not both")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise InvalidOptionError(f"warmup must be an integer ≥ 0, got {self.warmup!r}")
        if self.iterations is not None and (not isinstance(self.iterations, int) or self.iterations < 1):
            raise InvalidOptionError(f"iterations must be an integer ≥ 1, got {self.iterations!r}")
        if self.duration is not None and not (self.duration > 0):
            raise InvalidOptionError(f"duration must be a number of seconds > 0, got {self.duration!r}")
        if self.iterations is None and self.duration is None:
            self.iterations = DEFAULT_ITERATIONS


@dataclass
class BenchResult:
    """One artifact at one batch size."""

    artifact: str
    backend: str
    scenario: str
    batch: int
    latency: LatencyStats
    throughput_ips: float
    samples_ms: list[float]
    warmup: int
    path: str | None = None
    device: str | None = None
    precision: str | None = None  # what ran (read back from the backend)
    float_precision: str | None = None  # for INT8 graphs: the precision of the remaining float layers
    artifact_precision: str | None = None  # what the artifact was built as (from the manifest)
    intended_for: str | None = None  # the engine the artifact was made for (from the manifest)
    threads: int | None = None
    load_s: float | None = None  # load + compile: the cold start before the first call
    first_infer_ms: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    size_bytes: int | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)  # INT8 vs FP32, from the manifest
    verification: dict[str, Any] = field(default_factory=dict)  # vs PyTorch, from the manifest
    speedup_vs_torch: float | None = None
    notes: list[str] = field(default_factory=list)
    # Throughput scenario: items/s with several inferences in flight, next to the single-stream figure.
    concurrency: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> tuple[str, float, str]:
        """(figure, value, unit) the scenario reports first."""
        if self.scenario == "throughput" and self.concurrency:
            return "throughput", self.concurrency["items_per_s"], "items/s"
        if self.scenario == "offline":
            return "throughput", self.throughput_ips, "items/s"
        return "p90", self.latency.p90_ms, "ms"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency"] = self.latency.to_dict()
        d["samples_ms"] = [round(s, 4) for s in self.samples_ms]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchResult":
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["latency"] = LatencyStats.from_dict(d["latency"])
        return cls(**kw)


# --- one runtime -----------------------------------------------------------------------------------


def scenario_batch(runtime: Runtime, scenario: str) -> int:
    """The batch a scenario sends when none is asked for."""
    low, high = runtime.batch_range
    if low == high or scenario != "offline":  # throughput: one item per request, several in flight
        return low
    return high if high is not None else max(low, OFFLINE_BATCH)


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``"1x3x224x224"`` → ``(None, (1, 3, 224, 224))``; ``"input:1x3x224x224"`` names the input
    (trtexec's ``--shapes``, benchmark_app's ``-shape``; commas work as separators too)."""
    name, _, dims = str(text).strip().rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.replace(",", "x").replace("×", "x").strip("[]() ").split("x"))
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise InvalidOptionError(f"--shape takes sizes like 1x3x224x224 (optionally NAME:1x3x224x224), got {text!r}")
    return name or None, shape


def _given_shape(runtime: Runtime, info: Any, shape: str | None) -> tuple[int, ...] | None:
    if shape is None:
        return None
    name, dims = parse_shape(shape)
    if name is None and len(runtime.inputs) > 1:
        raise InvalidOptionError(
            f"{runtime.name} has {len(runtime.inputs)} inputs; name the one --shape is for (NAME:1x3x224x224)"
        )
    if name is not None and name not in {i.name for i in runtime.inputs}:
        raise InvalidOptionError(f"--shape names input '{name}'; {runtime.name} has {', '.join(i.name for i in runtime.inputs)}")
    if name is not None and name != info.name:
        return None
    fixed = info.shape
    if fixed is not None and (len(fixed) != len(dims) or any(
            isinstance(f, int) and f != d for axis, (f, d) in enumerate(zip(fixed, dims)) if axis > 0)):
        raise InvalidOptionError(f"--shape {'x'.join(map(str, dims))} does not fit input '{info.name}' of {runtime.name}, "
                                 f"which takes {info.describe()}")
    return dims


def shape_batch(shape: str | None) -> int | None:
    """The batch a ``--shape`` asks for (its first dimension)."""
    return None if shape is None else parse_shape(shape)[1][0]


def make_inputs(runtime: Runtime, batch: int, seed: int = 0, shape: str | None = None) -> dict[str, np.ndarray]:
    """Random inputs of the model's shapes at ``batch`` (standard normal: what normalised images
    look like; CNN latency does not depend on the values). ``shape`` (``1x3x224x224``) fills the
    dimensions an artifact leaves open, as trtexec's ``--shapes`` does."""
    rng = np.random.default_rng(seed)
    feed = {}
    for info in runtime.inputs:
        given = _given_shape(runtime, info, shape)
        if info.shape is None and given is None:
            raise InvalidOptionError(
                f"input '{info.name}' of {runtime.name} has no known shape to benchmark with; give it with "
                "--shape, e.g. --shape 1x3x224x224"
            )
        dims = []
        for axis, dim in enumerate(info.shape if info.shape is not None else given):
            if axis == 0:
                dims.append(batch)
            elif isinstance(dim, int):
                dims.append(dim)
            elif given is not None:
                dims.append(given[axis])
            else:
                raise InvalidOptionError(
                    f"input '{info.name}' of {runtime.name} has a dynamic dimension {axis} besides the batch; "
                    "give the size to time with --shape (e.g. --shape 1x3x224x224), or export it with a fixed "
                    "input size"
                )
        if np.issubdtype(info.dtype, np.floating):
            feed[info.name] = rng.standard_normal(dims).astype(info.dtype)
        else:
            feed[info.name] = np.zeros(dims, dtype=info.dtype)
    return feed


def _detector_photos(runtime: Runtime, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Real pictures for a detector's single image input: random noise gives NMS nothing (or
    everything) to suppress, so its latency would not be the deployed one."""
    from edgecv.artifact_metadata import input_spec_of
    from edgecv.preprocess import photo_batch

    model = getattr(runtime, "model", None)
    spec = getattr(model, "input_spec", None)
    if spec is None and runtime.path is not None and runtime.path.is_file():
        spec = input_spec_of(runtime.path)
    if spec is None or spec.task != "detection" or len(feed) != 1:
        return None
    (name, noise), = feed.items()
    if noise.ndim != 4 or tuple(noise.shape[1:]) != (spec.channels, spec.height, spec.width):
        return None
    photos = photo_batch(spec.with_batch(1), noise.shape[0])
    return None if photos is None else {name: photos.astype(noise.dtype, copy=False)}


def time_calls(
    call: Callable[[], Any],
    settings: BenchSettings,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
    progress: ProgressFn | None = None,
) -> tuple[list[int], float | None]:
    """Warm up, then time each call with ``clock``; returns (latencies in ns, first call in ms).

    The first warmup call is timed apart with ``perf_counter_ns`` (it pays lazy initialisation);
    the others are not timed. ``clock`` is read exactly twice per timed call.
    """
    first_ms = None
    for i in range(settings.warmup):
        if i == 0:
            start = time.perf_counter_ns()
            call()
            first_ms = (time.perf_counter_ns() - start) / 1e6
        else:
            call()
    samples: list[int] = []
    append = samples.append
    total = settings.iterations
    budget_ns = None if settings.duration is None else int(settings.duration * 1e9)
    loop_start = last_report = None
    while True:
        start = clock()
        call()
        end = clock()
        append(end - start)
        if loop_start is None:
            loop_start = last_report = start
        done = len(samples)
        finished = done >= total if total is not None else end - loop_start >= budget_ns
        if progress is not None and (finished or end - last_report >= PROGRESS_EVERY_NS):
            last_report = end
            progress(done, 1.0 if finished else (done / total if total else (end - loop_start) / budget_ns))
        if finished:
            return samples, first_ms


def benchmark(
    runtime_or_path: Runtime | str | Path,
    *,
    warmup: int = DEFAULT_WARMUP,
    iterations: int | None = None,
    duration: float | None = None,
    batch: int | None = None,
    threads: int | None = None,
    scenario: str = "single-stream",
    clock: Callable[[], int] = time.perf_counter_ns,
    backend: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> BenchResult:
    """Time one artifact (a path, loaded here and closed after) or an already loaded runtime.

    ``batch=None`` sends the scenario's batch (see the module doc); a batch the artifact cannot take
    raises :class:`InputMismatchError`. ``iterations`` (default 200) or ``duration`` in seconds.
    ``threads``/``backend``/``device``/``precision`` apply when loading a path.
    """
    settings = BenchSettings(warmup=warmup, iterations=iterations, duration=duration, scenario=scenario, seed=seed)
    if isinstance(runtime_or_path, Runtime):
        given = {"threads": threads, "backend": backend, "device": device, "precision": precision}
        if any(v is not None for v in given.values()):
            names = ", ".join(k for k, v in given.items() if v is not None)
            raise InvalidOptionError(f"{names} apply when loading; pass them to edgecv.runtime.load()")
        return measure(runtime_or_path, batch, settings, clock=clock, progress=progress)
    with load(runtime_or_path, backend=backend, device=device, threads=threads, precision=precision) as runtime:
        return measure(runtime, batch, settings, clock=clock, progress=progress)


def measure(
    runtime: Runtime,
    batch: int | None,
    settings: BenchSettings,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
    progress: ProgressFn | None = None,
) -> BenchResult:
    """:func:`benchmark` on a loaded runtime with validated settings."""
    if batch is None:
        batch = shape_batch(settings.shape) or scenario_batch(runtime, settings.scenario)
    check_batch_value(batch)
    runtime.check_batch(batch)
    feed = make_inputs(runtime, batch, settings.seed, settings.shape)
    notes = list(runtime.notes)
    photos = _detector_photos(runtime, feed)
    if photos is not None:
        feed = photos
        notes.append("inputs: sample photographs preprocessed with the artifact's input spec, not noise "
                     "(a detector's NMS time depends on what the picture holds)")
    feed = runtime.prepare(feed)
    infer = runtime.infer

    def call() -> Any:
        return infer(feed, check_inputs=False)

    samples, first_ms = time_calls(call, settings, clock=clock, progress=progress)
    stats = LatencyStats.from_ns(samples)
    return BenchResult(
        artifact=runtime.name,
        backend=runtime.backend,
        scenario=settings.scenario,
        batch=batch,
        latency=stats,
        throughput_ips=batch * len(samples) / (sum(samples) / 1e9) if sum(samples) else float("inf"),
        samples_ms=[s / 1e6 for s in samples],
        warmup=settings.warmup,
        path=str(runtime.path) if runtime.path else None,
        device=runtime.device,
        precision=runtime.precision,
        float_precision=runtime.float_precision,
        threads=runtime.threads,
        load_s=runtime.load_s,
        first_infer_ms=first_ms,
        size_bytes=runtime.size_bytes,
        notes=notes,
    )


def check_batch_value(batch: Any) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidOptionError(f"batch must be a positive integer, got {batch!r}")
    return batch


def parse_batches(text: str | None) -> tuple[int, ...] | None:
    """``"1,4,8"`` → ``(1, 4, 8)``; ``None`` or empty → ``None`` (the scenario's batch)."""
    if text is None or not text.strip():
        return None
    batches = []
    for part in text.split(","):
        try:
            batches.append(check_batch_value(int(part.strip())))
        except ValueError:
            raise InvalidOptionError(f"--batch takes positive integers separated by commas, got {text!r}") from None
    return tuple(dict.fromkeys(batches))


# --- a job: one artifact, every batch, in this process or a fresh one --------------------------------


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


def run_job(job: BenchJob, settings: BenchSettings, progress: Callable[[int | None, int, float], None] | None = None) -> list[BenchResult]:
    """Load the artifact, time every batch, close it. Memory figures cover the whole job."""
    # Import the backend's package first, so the RSS growth below is the model's, not the library's.
    backend_class(job.backend)
    rss_before = current_rss_mb()
    runtime = load(job.source, backend=job.backend, threads=job.threads, precision=job.precision)
    results = []
    try:
        for batch in job.batches:
            if batch is not None:
                runtime.check_batch(batch)  # every batch before timing any: a bad one fails fast
        for batch in job.batches:
            def report(done: int, fraction: float, batch: int | None = batch) -> None:
                if progress is not None:
                    progress(batch, done, fraction)

            result = measure(runtime, batch, settings, progress=report)
            results.append(result)
        rss_loaded = current_rss_mb()
    finally:
        runtime.close()
    if settings.scenario == "throughput" and job.backend in CONCURRENT_BACKENDS:
        measure_concurrency(job, results, settings)
    record = job.record
    from edgecv.int8_kernels import artifact_target_note

    # INT8 built for another kind of CPU: what that costs here (CPU devices only).
    cpu_note = artifact_target_note(job.label, job.source, record)
    for result in results:
        if cpu_note and str(result.device or "cpu").lower().startswith("cpu"):
            result.notes.append(cpu_note)
        result.artifact = job.label
        result.artifact_precision = record.get("precision")
        result.intended_for = record.get("intended_for")
        if result.artifact_precision == "fp16" and result.precision not in (None, "fp16"):
            result.notes.append(
                f"{job.label}: FP16-compressed weights; the backend decompresses them at load and computes "
                f"in {result.precision} on this device: the file is half the size, the arithmetic is not FP16"
            )
        if result.intended_for == "tensorrt" and result.backend == "onnxruntime":
            result.notes.append(
                f"{job.label}: the TensorRT-flavour INT8 graph (signed, symmetric Q/DQ) that TensorRT builds its "
                "INT8 engine from. ONNX Runtime's CPU kernels run this flavour slower than FP32, so its time here "
                "is a reference, not a deployment figure; ONNX Runtime's own INT8 artifact is onnx-int8-cpu"
            )
        result.fidelity = dict(record.get("fidelity") or {})
        verification = record.get("verification") or {}
        headline = verification_headline(verification)
        # The precision the export verified in (OpenVINO: f32), which a benchmark may not run.
        result.verification = {**headline, "inputs": verification.get("inputs"),
                               "ran_precision": verification.get("ran_precision")} if headline else {}
        result.memory = {"rss_before_load_mb": rss_before, "rss_loaded_mb": rss_loaded}
    return results


def _throughput_load(job: BenchJob) -> tuple[dict[str, Any], str]:
    """How to load an artifact for throughput, and that setup in words for the report."""
    if job.backend == "openvino":
        return {"threads": job.threads, "performance_hint": "THROUGHPUT"}, "OpenVINO THROUGHPUT hint, AsyncInferQueue"
    # One intra-op thread per run, several runs of one session at once: ORT's throughput setup.
    return {"threads": 1}, "ONNX Runtime, concurrent runs of one session on threads, 1 intra-op thread each"


def measure_concurrency(job: BenchJob, results: list[BenchResult], settings: BenchSettings) -> None:
    """Load ``job``'s artifact set up for throughput and time several inferences in flight at each
    result's batch; sets ``result.concurrency`` next to the single-stream figures."""
    options, setup = _throughput_load(job)
    with load(job.source, backend=job.backend, precision=job.precision, **options) as runtime:
        requests = settings.requests or runtime.max_concurrency()
        for result in results:
            feed = runtime.prepare(make_inputs(runtime, result.batch, settings.seed, settings.shape))
            runtime.run_concurrently(feed, requests, calls=max(requests * 2, settings.warmup))  # warm every request
            calls = None if settings.iterations is None else settings.iterations * requests
            done, wall = runtime.run_concurrently(feed, requests, calls=calls, duration_s=settings.duration)
            items = result.batch * done / wall if wall > 0 else float("inf")
            result.concurrency = {
                "requests": requests,
                "items_per_s": items,
                "calls": done,
                "wall_s": wall,
                "setup": f"{setup}, {requests} in flight",
                "vs_single_stream": items / result.throughput_ips if result.throughput_ips else None,
            }
            result.notes.append(f"{job.label}: throughput with {setup}; items/s: one request at a time → {requests} in flight")


def _run_in_process(job: BenchJob, settings: BenchSettings, observer: "BenchObserver") -> list[BenchResult]:
    results = run_job(job, settings, progress=lambda b, done, frac: observer.progress(job, b, done, frac))
    for result in results:
        result.memory.update(scope="in-process", peak_rss_mb=None)
        result.notes.append("memory: RSS growth while loaded, in a process that ran other artifacts too (no peak)")
    return results


# --- a target: a run folder, one artifact or a zoo model -------------------------------------------


class BenchObserver:
    """Receives progress; the CLI renders it with rich, the library stays quiet."""

    def job_start(self, job: BenchJob) -> None: ...

    def progress(self, job: BenchJob, batch: int | None, done: int, fraction: float) -> None: ...

    def job_end(self, job: BenchJob, results: list[BenchResult]) -> None: ...

    def skipped(self, label: str, reason: str) -> None: ...


@dataclass
class BenchReport:
    target: dict[str, Any]
    settings: dict[str, Any]
    machine: dict[str, Any]
    versions: dict[str, Any]
    results: list[BenchResult]
    skipped: list[dict[str, str]] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        from edgecv import __version__
        from edgecv.runfolder import RESULTS_SCHEMA

        return {
            "schema": RESULTS_SCHEMA,
            "created": self.created,
            "edgecv_version": __version__,
            "target": self.target,
            "settings": self.settings,
            "machine": self.machine,
            "versions": self.versions,
            "results": [r.to_dict() for r in self.results],
            "skipped": self.skipped,
        }


def _find_record(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The manifest record of an artifact inside a run folder, and the manifest, if any."""
    found = find_artifact(path)
    return (found[0], found[1]) if found else ({}, None)


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
) -> tuple[dict[str, Any], list[BenchJob], list[dict[str, str]]]:
    """What to run for ``target``: (target description, jobs, skipped artifacts with reasons)."""
    from edgecv.runfolder import MANIFEST_NAME, read_manifest

    wanted = {backend_name(b) for b in backends} if backends else None
    skipped: list[dict[str, str]] = []

    def job_for(label: str, source: str, backend: str, record: dict[str, Any], job_batches: list[int | None]) -> BenchJob:
        entry = BACKENDS[backend]
        return BenchJob(
            label=label, source=source, backend=backend, batches=job_batches,
            threads=threads if entry.cpu_threads else None,
            precision=precision if entry.precision_hint else None, record=record,
        )

    path = Path(target).expanduser()
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        manifest = read_manifest(path)
        jobs = []
        for record in manifest.get("artifacts", []):
            label, backend = record.get("name") or record.get("path"), record.get("backend", "")
            if backend not in BACKENDS:
                skipped.append({"artifact": label, "reason": f"no edgecv runtime for backend '{backend}'"})
                continue
            if wanted is not None and backend not in wanted:
                continue
            if not (path / record["path"]).is_file():
                raise ArtifactError(f"{path} lists {record['path']} but the file is missing (re-run the export)")
            if batches:
                _check_record_batches(label, record, batches)
            job_batches = list(batches) if batches else [_planned_batch(record, scenario)]
            jobs.append(job_for(label, str(path / record["path"]), backend, record, job_batches))
        model = manifest.get("model") or {}
        if baseline and (wanted is None or "torch" in wanted):
            if model.get("custom"):
                skipped.append({"artifact": BASELINE_LABEL, "reason": "exported from a custom nn.Module: no PyTorch baseline"})
            else:
                planned = sorted({b for job in jobs for b in job.batches if b is not None}) or [None]
                jobs.insert(0, job_for(BASELINE_LABEL, str(path), "torch", {"precision": "fp32"}, list(batches or planned)))
        if not jobs:
            raise InvalidOptionError(f"nothing to benchmark in {path}" + (f" for backend {', '.join(sorted(wanted))}" if wanted else ""))
        return {"path": str(path), "kind": "run-folder", "model": model}, jobs, skipped

    from .registry import resolve_backend

    backend = resolve_backend(str(target), next(iter(wanted)) if wanted and len(wanted) == 1 else None)
    if wanted is not None and backend not in wanted:
        raise InvalidOptionError(f"{target} runs in {backend}, not in {', '.join(sorted(wanted))}")
    if path.exists():
        record, manifest = _find_record(path)
        if batches and record:
            _check_record_batches(path.name, record, batches, single_file=True)
        label = record.get("name") or path.name
        model = (manifest or {}).get("model")
        kind = "artifact"
    else:
        record, label, model, kind = {}, str(target), {"name": str(target)}, "model"
    job = job_for(label, str(target), backend, record, list(batches) if batches else [None])
    return {"path": str(target), "kind": kind, "model": model}, [job], skipped


def _check_record_batches(label: str, record: dict[str, Any], batches: Sequence[int], single_file: bool = False) -> None:
    if record.get("dynamic_batch"):
        return
    fixed = int(record.get("batch", 1))
    bad = [b for b in batches if b != fixed]
    if bad:
        advice = (
            f"time this file at --batch {fixed}, or re-export with --dynamic-batch (runs/<model>-…-dyn) "
            "and benchmark that file to sweep batch sizes"
            if single_file else
            "export with --dynamic-batch to sweep batch sizes, or pick artifacts with --backend"
        )
        raise InputMismatchError(
            f"{label} has a static batch of {fixed}, asked for batch {', '.join(map(str, bad))} ({advice})"
        )


def add_speedups(results: list[BenchResult]) -> None:
    """Speed-up over PyTorch eager at the same batch and scenario (median against median)."""
    torch_median = {(r.batch, r.scenario): r.latency.median_ms for r in results if r.backend == "torch"}
    for r in results:
        base = torch_median.get((r.batch, r.scenario))
        r.speedup_vs_torch = base / r.latency.median_ms if base and r.latency.median_ms > 0 else None


def benchmark_target(
    target: str | Path,
    *,
    warmup: int = DEFAULT_WARMUP,
    iterations: int | None = None,
    duration: float | None = None,
    batches: Sequence[int] | None = None,
    threads: int | None = None,
    backends: Iterable[str] | None = None,
    precision: str | None = None,
    scenario: str = "single-stream",
    isolate: bool = True,
    baseline: bool = True,
    seed: int = 0,
    shape: str | None = None,
    requests: int | None = None,
    observer: BenchObserver | None = None,
) -> BenchReport:
    """Benchmark a run folder (every artifact in its manifest, plus the PyTorch model it was
    exported from as the baseline), a single artifact file, or a zoo model name.

    ``backends`` keeps only those backends' artifacts (asking for one that is not installed is an
    error; otherwise artifacts whose backend is missing are skipped and listed in ``skipped``).
    ``threads`` goes to CPU backends, ``precision`` to OpenVINO (the others run what the artifact
    was built as). ``isolate``: each artifact in a fresh subprocess (honest peak RSS and cold start);
    ``False`` runs them all in this process (faster; memory is then RSS growth, not a peak).
    """
    from edgecv.sysinfo import backend_versions, machine_info, openvino_default_precision

    settings = BenchSettings(
        warmup=warmup, iterations=iterations, duration=duration, scenario=scenario, seed=seed, shape=shape,
        requests=requests,
    )
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InvalidOptionError(f"threads must be a positive integer, got {threads!r}")
    precision = normalize_precision(precision)
    if batches:
        batches = [check_batch_value(b) for b in batches]
    observer = observer or BenchObserver()
    backends = list(backends) if backends else None
    explicit = {backend_name(b) for b in backends} if backends else set()
    target_info, jobs, skipped = plan_jobs(
        target, batches=batches, backends=backends, threads=threads, precision=precision,
        scenario=scenario, baseline=baseline,
    )
    for job in list(jobs):
        if not is_installed(job.backend):
            if job.backend in explicit or len(jobs) == 1:
                raise BackendUnavailableError(
                    job.backend, next(iter(BACKENDS[job.backend].packages.values())), "its Python package is not installed"
                )
            jobs.remove(job)
            skipped.append({"artifact": job.label, "reason": f"{job.backend} is not installed"})
    for item in skipped:
        observer.skipped(item["artifact"], item["reason"])
    if isolate:
        from .worker import run_in_subprocess as run
    else:
        run = _run_in_process
    results: list[BenchResult] = []
    for job in jobs:
        observer.job_start(job)
        try:
            job_results = run(job, settings, observer)
        except BackendUnavailableError as exc:
            # A device missing here (TensorRT engine, no GPU) only skips that artifact, unless asked for.
            if job.backend in explicit or len(jobs) == 1:
                raise
            skipped.append({"artifact": job.label, "reason": str(exc)})
            observer.skipped(job.label, str(exc))
            continue
        results.extend(job_results)
        observer.job_end(job, job_results)
    add_speedups(results)
    machine = machine_info()
    machine["openvino_default_precision"] = openvino_default_precision()
    return BenchReport(
        target=target_info,
        settings={
            **asdict(settings),
            "batches": list(batches) if batches else None,
            "threads": threads,
            "precision_hint": precision,
            "backends": sorted(explicit) or None,
            "isolation": "subprocess per artifact" if isolate else "in-process",
            "timer": "time.perf_counter_ns around each call",
            "percentiles": "nearest rank (p90/p95/p99); median interpolated; outliers: Tukey 1.5·IQR, kept",
        },
        machine=machine,
        versions=backend_versions(),
        results=results,
        skipped=skipped,
    )
