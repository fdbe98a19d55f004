"""The benchmark session: run a plan (:mod:`edgecv.runtime.plan`) artifact by artifact, in a fresh
process each or in this one, time each with :mod:`edgecv.runtime.timing`, and gather the results
document (``results.json``). :func:`benchmark` times one artifact; :func:`benchmark_target` a run
folder, one artifact or a zoo model.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgecv.errors import BackendUnavailableError, InvalidOptionError
from edgecv.progress import Observer
from edgecv.report.format import threads_words

from . import load
from .base import Runtime
from .job import run_job
from .plan import BASELINE_LABEL, BenchJob, PlanOptions, plan_jobs
from .registry import BACKENDS, backend_name, is_installed
from .timing import (
    DEFAULT_WARMUP,
    SCENARIOS,
    BenchResult,
    BenchSettings,
    ProgressFn,
    check_batch_value,
    make_inputs,
    measure,
    time_calls,
)

__all__ = [
    "BASELINE_LABEL",
    "SCENARIOS",
    "BenchJob",
    "BenchObserver",
    "BenchReport",
    "BenchResult",
    "BenchSettings",
    "PlanOptions",
    "benchmark",
    "benchmark_target",
    "check_batch_value",
    "make_inputs",
    "measure",
    "run_job",
    "time_calls",
]


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


def _run_in_process(job: BenchJob, settings: BenchSettings, observer: "BenchObserver") -> list[BenchResult]:
    results = run_job(job, settings, progress=lambda b, done, frac: observer.progress(job, b, done, frac))
    for result in results:
        result.memory.update(scope="in-process", peak_rss_mb=None)
        result.notes.append("memory: RSS growth while loaded, in a process that ran other artifacts too (no peak)")
    return results


def bench_task(job: BenchJob, batch: int | None) -> str:
    """The progress task of one artifact at one batch."""
    threads = f", {threads_words(job.threads)}" if job.threads is not None else ""
    return f"{job.label} ({job.backend}, batch {'auto' if batch is None else batch}{threads})"


class BenchObserver(Observer):
    """A benchmark's progress: one task per artifact and batch, counting the fraction of its timed
    calls done; skipped artifacts are notes."""

    def job_start(self, job: BenchJob) -> None:
        for batch in job.batches:
            self.start(bench_task(job, batch), 1.0, "0 calls")

    def progress(self, job: BenchJob, batch: int | None, done: int, fraction: float) -> None:
        self.advance(bench_task(job, batch), fraction, detail=f"{done} calls")

    def job_end(self, job: BenchJob, results: list[BenchResult]) -> None:
        for batch in job.batches:
            self.end(bench_task(job, batch))

    def skipped(self, label: str, reason: str) -> None:
        self.note(f"skipped {label}: {reason}")


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
        from edgecv.runfolder import RESULTS_SCHEMA
        from edgecv.version import __version__

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


def add_speedups(results: list[BenchResult], by_threads: bool = False) -> None:
    """Speed-up over PyTorch eager at the same batch and scenario (median against median) and, in a
    thread sweep, at the same thread count. Without a sweep the counts are not compared: each
    backend's default may differ, and the row records what it read back."""

    def key(r: BenchResult) -> tuple:
        return r.batch, r.scenario, r.threads if by_threads else None

    torch_median = {key(r): r.latency.median_ms for r in results if r.backend == "torch"}
    for r in results:
        base = torch_median.get(key(r))
        # In a sweep, a backend without a thread count (TensorRT) compares with a baseline only
        # where there is one.
        same = {v for k, v in torch_median.items() if k[:2] == (r.batch, r.scenario)}
        if base is None and r.threads is None and len(same) == 1:
            base = same.pop()
        r.speedup_vs_torch = base / r.latency.median_ms if base and r.latency.median_ms > 0 else None


def benchmark_target(
    target: str | Path,
    settings: BenchSettings | None = None,
    plan: PlanOptions | None = None,
    *,
    observer: BenchObserver | None = None,
    **fields: Any,
) -> BenchReport:
    """Benchmark a run folder (every artifact in its manifest, plus the PyTorch model it was
    exported from as the baseline), a single artifact file, or a zoo model name.

    ``settings`` says how to time (:class:`BenchSettings`), ``plan`` what to run
    (:class:`PlanOptions`); their fields may be given as keywords instead. ``plan.backends`` keeps
    only those backends' artifacts (asking for one that is not installed is an error; otherwise
    artifacts whose backend is missing are skipped and listed in ``skipped``). ``threads`` goes to
    CPU backends, ``precision`` to OpenVINO (the others run what the artifact was built as).
    ``device``: one for every backend (``cuda``) or one per backend (``torch=cuda:0,openvino=GPU``);
    a backend that cannot use it, or a device this machine lacks, is an error rather than a skip.
    ``isolate``: each artifact in a fresh subprocess (honest peak RSS and cold start); ``False`` runs
    them all in this process (faster; memory is then RSS growth, not a peak).
    """
    from edgecv.sysinfo import backend_versions, machine_info, openvino_default_precision

    settings, plan = _settings_from(settings, plan, fields)
    observer = observer or BenchObserver()
    explicit = {backend_name(b) for b in plan.backends} if plan.backends else set()
    target_info, jobs, skipped = plan_jobs(
        target,
        batches=plan.batches,
        backends=plan.backends,
        threads=plan.threads,
        precision=plan.precision,
        scenario=settings.scenario,
        baseline=plan.baseline,
        device=plan.device,
    )
    single = len({job.label for job in jobs}) == 1  # one artifact, perhaps at several thread counts
    for job in list(jobs):
        if not is_installed(job.backend):
            if job.backend in explicit or single:
                raise BackendUnavailableError(
                    job.backend,
                    next(iter(BACKENDS[job.backend].packages.values())),
                    "its Python package is not installed",
                )
            jobs.remove(job)
            skipped.append({"artifact": job.label, "reason": f"{job.backend} is not installed"})
    for item in skipped:
        observer.skipped(item["artifact"], item["reason"])
    if plan.isolate:
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
            if job.backend in explicit or job.device is not None or single:
                raise
            skipped.append({"artifact": job.label, "reason": str(exc)})
            observer.skipped(job.label, str(exc))
            continue
        results.extend(job_results)
        observer.job_end(job, job_results)
    add_speedups(results, by_threads=isinstance(plan.threads, tuple))
    machine = machine_info()
    machine["openvino_default_precision"] = openvino_default_precision()
    return BenchReport(
        target=target_info,
        settings={
            **asdict(settings),
            "batches": list(plan.batches) if plan.batches else None,
            "threads": list(plan.threads) if isinstance(plan.threads, tuple) else plan.threads,
            "precision_hint": plan.precision,
            "device": plan.device,
            "backends": sorted(explicit) or None,
            "isolation": "subprocess per artifact" if plan.isolate else "in-process",
            "timer": "time.perf_counter_ns around each call",
            "percentiles": "nearest rank (p90/p95/p99); median interpolated; outliers: Tukey 1.5·IQR, kept",
        },
        machine=machine,
        versions=backend_versions(),
        results=results,
        skipped=skipped,
    )


def _settings_from(
    settings: BenchSettings | None, plan: PlanOptions | None, fields: dict[str, Any]
) -> tuple[BenchSettings, PlanOptions]:
    """The two settings objects, built from keyword fields where the caller gave those instead."""
    timing_fields, plan_fields = set(BenchSettings.__dataclass_fields__), set(PlanOptions.__dataclass_fields__)
    unknown = set(fields) - timing_fields - plan_fields
    if unknown:
        raise TypeError(f"benchmark_target() got unknown option(s): {', '.join(sorted(unknown))}")
    given_timing = {k: v for k, v in fields.items() if k in timing_fields}
    given_plan = {k: v for k, v in fields.items() if k in plan_fields}
    if (settings is not None and given_timing) or (plan is not None and given_plan):
        raise TypeError("give a settings object or its fields as keywords, not both")
    return settings or BenchSettings(**given_timing), plan or PlanOptions(**given_plan)
