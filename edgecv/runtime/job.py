"""One benchmark job: load an artifact, time every batch it asks for, and annotate the results with
what the run folder's manifest says of the artifact. Runs in the benchmark's process or in a worker
(:mod:`edgecv.runtime.worker`), which is why it lives apart from the session that plans and reports."""

from __future__ import annotations

from typing import Any, Callable

from edgecv.models.spec import InputSpec
from edgecv.runfolder import verification_headline

from . import load
from .memory import current_rss_mb
from .plan import BenchJob
from .registry import backend_class
from .timing import BenchResult, BenchSettings, benchmark_inputs, measure

CONCURRENT_BACKENDS = ("onnxruntime", "openvino")


def run_job(
    job: BenchJob, settings: BenchSettings, progress: Callable[[int | None, int, float], None] | None = None
) -> list[BenchResult]:
    """Load the artifact, time every batch, close it. Memory figures cover the whole job."""
    # Import the backend's package first, so the RSS growth below is the model's, not the library's.
    backend_class(job.backend)
    rss_before = current_rss_mb()
    runtime = load(job.source, backend=job.backend, device=job.device, threads=job.threads, precision=job.precision)
    spec = _job_input_spec(job)
    results = []
    try:
        for batch in job.batches:
            if batch is not None:
                runtime.check_batch(batch)  # every batch before timing any: a bad one fails fast
        for batch in job.batches:

            def report(done: int, fraction: float, batch: int | None = batch) -> None:
                if progress is not None:
                    progress(batch, done, fraction)

            result = measure(runtime, batch, settings, progress=report, input_spec=spec)
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
        result.source_sha256 = job.source_sha256
        if result.artifact_precision == "fp16" and result.precision not in (None, "fp16"):
            result.notes.append(
                f"{job.label}: FP16-compressed weights; the backend decompresses them at load and computes "
                f"in {result.precision} on this device: the file is half the size, the arithmetic is not FP16"
            )
        if tensorrt_flavour_on_ort(result):
            result.notes.append(
                f"{job.label}: the TensorRT-flavour INT8 graph (signed, symmetric Q/DQ) that TensorRT builds its "
                "INT8 engine from. ONNX Runtime's CPU kernels run this flavour slower than FP32, so its time here "
                "is a reference, not a deployment figure; ONNX Runtime's own INT8 artifact is onnx-int8-cpu"
            )
        result.fidelity = dict(record.get("fidelity") or {})
        verification = record.get("verification") or {}
        headline = verification_headline(verification)
        # The precision the export verified in (OpenVINO: f32), which a benchmark may not run.
        result.verification = (
            {**headline, "inputs": verification.get("inputs"), "ran_precision": verification.get("ran_precision")}
            if headline
            else {}
        )
        result.memory = {"rss_before_load_mb": rss_before, "rss_loaded_mb": rss_loaded}
    return results


def _job_input_spec(job: BenchJob) -> InputSpec | None:
    return InputSpec.from_dict(job.input_spec) if job.input_spec else None


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
    spec = _job_input_spec(job)
    with load(job.source, backend=job.backend, device=job.device, precision=job.precision, **options) as runtime:
        requests = settings.requests or runtime.max_concurrency()
        for result in results:
            feed, _ = benchmark_inputs(runtime, result.batch, settings, spec)
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
            result.notes.append(
                f"{job.label}: throughput with {setup}; items/s: one request at a time → {requests} in flight"
            )


def tensorrt_flavour_on_ort(r: BenchResult) -> bool:
    return r.intended_for == "tensorrt" and r.backend == "onnxruntime"
