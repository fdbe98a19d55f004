"""Executors carry out a :class:`~edgecv.sweep.grid.SweepPlan`; this module holds their contract and
the local one.

The contract (every executor, local or Ray, meets it):

* ``executor.run(plan, store, observer)`` runs every point of ``store.pending()`` and returns when
  each has a record; a point already finished is never run again.
* The work is :mod:`edgecv.sweep.point`'s functions: :func:`export_point` once per run folder
  (``plan.export_groups()``; the points of one group share it), :func:`eval_point` for a point with
  weights when ``plan.data`` is set, :func:`benchmark_point` for every point, one benchmark at a time
  per machine, on cores no other work of the sweep uses.
* The store is the only writer of the sweep folder: the executor calls ``store.record_done(point,
  export, accuracy, rows, wall_s)`` or ``store.record_failed(point, stage, error)`` (stage: export |
  eval | benchmark) for each point, from the driver. Run folders end up under
  ``store.run_dir(point)`` on the driver (an executor on other machines ships them there with
  :func:`~edgecv.sweep.shipping.pack` / :func:`~edgecv.sweep.shipping.unpack_folder` under
  :func:`~edgecv.sweep.point.folder_lock`).
* A failing point records its error and the sweep goes on; an interrupt (KeyboardInterrupt) leaves
  the records already written and is re-raised.
* Progress goes to the :class:`SweepObserver`: ``sweep_start``, ``point_stage``, ``point_done``,
  ``point_failed``, ``sweep_end``.
* :func:`prepare_group` is the untimed half of a run folder's work (export, then one eval shared by
  its points) as one picklable call; benchmarks reserve :func:`split_cores`' first answer.
* ``edgecv sweep --ray ADDRESS`` builds ``edgecv.sweep.ray_executor.RayExecutor(address=..., on=..., jobs=...)``
  (``address`` may be ``"local"``); that module alone imports Ray.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

from .grid import SweepPlan
from .point import EvalData, Point, PointExport, benchmark_point, eval_point, export_point
from .progress import SweepObserver
from .store import SweepStore


class Executor(Protocol):
    def run(self, plan: SweepPlan, store: SweepStore, observer: SweepObserver) -> None: ...


@dataclass
class GroupResult:
    """What a worker hands back for one run folder: its export, or the error that stopped it, and
    each point's accuracy or eval error."""

    export: PointExport | None = None
    error: BaseException | None = None
    accuracy: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_errors: dict[str, BaseException] = field(default_factory=dict)
    eval_wall_s: dict[str, float] = field(default_factory=dict)


def prepare_group(points: list[Point], runs_root: str, data: EvalData | None) -> GroupResult:
    """Export one run folder and evaluate its points (the untimed work, any core will do)."""
    out = GroupResult()
    try:
        out.export = export_point(points[0], runs_root)
    except Exception as exc:  # the point's error, recorded; the sweep goes on
        out.error = _picklable(exc)
        return out
    if data is None or points[0].weights is None:  # the points of a run folder share its weights
        return out
    start = time.perf_counter()
    try:
        accuracy = eval_point(points[0], out.export.run_dir, data)  # every artifact, once per run folder
    except Exception as exc:
        accuracy, error = {}, _picklable(exc)
        out.eval_errors = {p.key: error for p in points}
    wall = time.perf_counter() - start
    for p in points:
        out.accuracy[p.key] = accuracy
        out.eval_wall_s[p.key] = wall
    return out


def _picklable(exc: BaseException) -> BaseException:
    """An exception that survives the trip back from a worker (some libraries' do not), carrying
    its traceback as text (pickling drops the traceback itself)."""
    import pickle
    import traceback

    trace = "".join(traceback.format_exception(exc))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    exc.worker_traceback = trace  # type: ignore[attr-defined]
    return exc


def _pin(cpus: list[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, set(cpus))


@contextlib.contextmanager
def workers_ignore_interrupts() -> Iterator[None]:
    """Worker processes started inside ignore Ctrl-C (an ignored signal stays ignored in the child):
    the driver alone answers it, ending them, instead of each printing its own traceback."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def end_workers() -> None:
    """Terminate this process's worker processes (after an interrupt; their files are written
    atomically, so what they leave is never mistaken for finished work)."""
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=10)


def split_cores(threads: tuple[int | None, ...], available: list[int] | None = None) -> tuple[list[int], list[int]]:
    """(cores a benchmark is timed on, cores left for exports): as many as the most threads it is
    timed with, every core for an engine left to its own thread count. No cores left means
    exports and benchmarks take turns."""
    cores = sorted(available if available is not None else os.sched_getaffinity(0))
    want = len(cores) if None in threads else max(threads)
    k = max(1, min(want, len(cores)))
    return cores[-k:], cores[:-k]


class LocalExecutor:
    """Exports (and evals) in ``jobs`` worker processes; benchmarks one at a time in their own
    process, pinned to the cores they reserve. On a machine with no core to spare besides those,
    exports and benchmarks take turns, so no timing shares its cores with the sweep's own work."""

    def __init__(self, jobs: int = 1, cores: list[int] | None = None):
        self.jobs = max(1, jobs)
        self.cores = cores

    def run(self, plan: SweepPlan, store: SweepStore, observer: SweepObserver) -> None:
        pending = store.pending()
        observer.sweep_start(len(plan.points), len(plan.points) - len(pending))
        if pending:
            _LocalRun(self, plan, store, observer, pending).loop()
        observer.sweep_end()


class _LocalRun:
    """One run of the local executor: the pools, the queue of points waiting for the benchmark
    lane, and what is in flight."""

    def __init__(
        self, ex: LocalExecutor, plan: SweepPlan, store: SweepStore, observer: SweepObserver, pending: list[Point]
    ):
        self.plan, self.store, self.observer = plan, store, observer
        self.bench_cpus, spare = split_cores(plan.threads, ex.cores)
        self.take_turns = not spare
        ctx = multiprocessing.get_context("spawn")  # no fork of a parent holding torch's or ORT's threads
        self.exports = ProcessPoolExecutor(ex.jobs, mp_context=ctx, initializer=_pin, initargs=(spare or None,))
        self.bench_pool = ProcessPoolExecutor(1, mp_context=ctx)
        self.ctx = ctx
        groups: dict[str, list[Point]] = {}
        for p in pending:
            groups.setdefault(p.run_name, []).append(p)
        self.groups = list(groups.values())
        self.bench_queue: list[tuple[Point, PointExport, dict[str, float]]] = []
        self.in_export: dict[Future, list[Point]] = {}
        self.in_bench: dict[Future, tuple[Point, PointExport, dict[str, float], float]] = {}
        self.jobs = ex.jobs
        self.spare = spare
        self.accuracy: dict[str, dict[str, Any]] = {}

    def loop(self) -> None:
        try:
            while self.groups or self.bench_queue or self.in_export or self.in_bench:
                with workers_ignore_interrupts():  # pools start their workers on submit
                    self._submit()
                done, _ = wait([*self.in_export, *self.in_bench], return_when=FIRST_COMPLETED)
                for fut in done:
                    if fut in self.in_export:
                        self._export_finished(fut, self.in_export.pop(fut))
                    else:
                        self._bench_finished(fut, *self.in_bench.pop(fut))
        except BaseException:
            end_workers()
            raise
        finally:
            for pool in (self.exports, self.bench_pool):
                pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self) -> None:
        # Taking turns, benchmarks go first once queued: exports in flight finish, none start.
        if self.bench_queue and not self.in_bench and not (self.take_turns and self.in_export):
            point, export, wall = self.bench_queue.pop(0)
            self.observer.point_stage(point, "benchmark")
            fut = self.bench_pool.submit(
                benchmark_point,
                point,
                self.store.run_dir(point),
                self.plan.backends,
                self.plan.threads,
                self.bench_cpus,
                iterations=self.plan.iterations,
                warmup=self.plan.warmup,
            )
            self.in_bench[fut] = (point, export, wall, time.perf_counter())
        exports_allowed = not (self.take_turns and (self.in_bench or self.bench_queue))
        while exports_allowed and self.groups and len(self.in_export) < self.jobs:
            group = self.groups.pop(0)
            for p in group:
                self.observer.point_stage(p, "export")
            fut = self.exports.submit(prepare_group, group, str(self.store.runs_root), self.plan.data)
            self.in_export[fut] = group

    def _export_finished(self, fut: Future, group: list[Point]) -> None:
        try:
            result: GroupResult = fut.result()
        except BrokenProcessPool as exc:
            self.exports = self._renew(self.exports)
            result = GroupResult(error=RuntimeError(f"the export worker died ({exc})"))
        except Exception as exc:  # the result could not come back (unpicklable): still this group's failure
            result = GroupResult(error=exc)
        if result.export is None:
            for p in group:
                self._failed(p, "export", result.error or RuntimeError("export failed"))
            return
        for p in group:
            if p.key in result.eval_errors:
                self._failed(p, "eval", result.eval_errors[p.key])
                continue
            wall = {"export": result.export.wall_s, "eval": result.eval_wall_s.get(p.key, 0.0)}
            self.bench_queue.append((p, result.export, wall))
            self.accuracy[p.key] = result.accuracy.get(p.key, {})

    def _bench_finished(self, fut: Future, point: Point, export: PointExport, wall: dict[str, float], t0: float):
        try:
            rows = fut.result()
        except BrokenProcessPool as exc:
            self.bench_pool = self._renew(self.bench_pool)
            self._failed(point, "benchmark", RuntimeError(f"the benchmark process died ({exc})"))
            return
        except Exception as exc:
            self._failed(point, "benchmark", exc)
            return
        wall = {**wall, "benchmark": time.perf_counter() - t0}
        self.store.record_done(point, export, self.accuracy.pop(point.key, {}), rows, wall)
        self.observer.point_done(point)

    def _failed(self, point: Point, stage: str, error: BaseException) -> None:
        self.store.record_failed(point, stage, error)
        self.observer.point_failed(point, stage, str(error) or type(error).__name__)

    def _renew(self, pool: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """A fresh pool in place of a broken one (a worker killed by the OS); the other futures of
        the broken pool fail too, and find the fresh pool already there."""
        if not getattr(pool, "_broken", False):
            return pool
        pool.shutdown(wait=False, cancel_futures=True)
        if pool is self.exports:
            return ProcessPoolExecutor(self.jobs, mp_context=self.ctx, initializer=_pin, initargs=(self.spare or None,))
        return ProcessPoolExecutor(1, mp_context=self.ctx)
