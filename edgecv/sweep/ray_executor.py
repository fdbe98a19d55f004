"""The Ray executor of ``edgecv sweep`` (``--ray ADDRESS`` / ``--ray local``, ``--on DEVICE``).

Exports and evals are tasks on any node; a benchmark is a task that takes a node's benchmark slot
(one at a time per node) on the device asked for, and pins its cores itself (Ray's CPU count pins
nothing). No filesystem is shared: the driver's inputs and each run folder travel through Ray's
object store (:mod:`.shipping`), and the driver unpacks every run folder into the sweep folder.

A task lost with its node is run again elsewhere by Ray (``max_retries``); once the retries are
spent, or when no node of the device is left for a benchmark, the point is recorded as not run and
the sweep goes on. Finished points are recorded as they finish, so a lost node never costs one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .executor import SweepObserver, split_cores
from .grid import SweepPlan
from .point import EvalData, Point, PointExport, benchmark_point, eval_point, export_point, folder_lock
from .ray_cluster import (
    DEVICE_LABEL,
    Placement,
    alive_nodes,
    check_reachable,
    connected,
    import_ray,
    place_benchmarks,
    survey,
)
from .shipping import (
    Parcel,
    driver_paths,
    localize_data,
    localize_point,
    make_parcel,
    named_as_on_driver,
    named_paths,
    pack,
    receive,
    scratch,
    unpack_folder,
)
from .store import SweepStore

POLL_S = 2.0
# The cores a Ray worker process was started with: tasks narrow them, and a reused worker must not
# inherit the previous task's pinning.
_START_CORES = sorted(os.sched_getaffinity(0))


class PointNotRun(RuntimeError):
    """The cluster could not run the point (its node was lost, no node of its device is left)."""


def _where() -> dict[str, Any]:
    import ray

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "device": ctx.get_node_labels().get(DEVICE_LABEL)}


def _pin_untimed(bench_nodes: frozenset[str], threads: tuple[int | None, ...]) -> dict[str, Any]:
    """Untimed work keeps off the cores this node's benchmarks are timed on (when it has others)."""
    where = _where()
    cores = _START_CORES
    if where["node_id"] in bench_nodes:
        cores = split_cores(threads, _START_CORES)[1] or _START_CORES
    os.sched_setaffinity(0, cores)
    return where


def _localize(parcels: list[Parcel]) -> dict[str, str]:
    import ray

    return {p.source: str(receive(p, lambda p=p: ray.get(p.blob))) for p in parcels}


def export_task(point: Point, parcels: list[Parcel], seed: bytes | None, bench_nodes, threads):
    """Export on this node (reusing the driver's earlier run folder, ``seed``) → (record, run folder)."""
    t0 = time.perf_counter()
    where = _pin_untimed(bench_nodes, threads)
    local = _localize(parcels)
    with scratch("export-") as root, named_as_on_driver(local):
        if seed is not None:
            unpack_folder(seed, root / point.run_name)
        export = export_point(localize_point(point, local), root)
        packed = time.perf_counter()
        blob = pack(export.run_dir)
        moved = time.perf_counter() - packed
    return {"export": export.to_dict(), "node": where, "task_s": time.perf_counter() - t0, "transport_s": moved}, blob


def eval_task(point: Point, parcels: list[Parcel], data: EvalData, run: bytes, bench_nodes, threads):
    """Every artifact of ``point``'s run folder evaluated (the points of a run folder share it)."""
    t0 = time.perf_counter()
    where = _pin_untimed(bench_nodes, threads)
    local = _localize(parcels)
    with scratch("eval-") as root, named_as_on_driver(local):
        start = time.perf_counter()
        run_dir = unpack_folder(run, root / point.run_name)
        unpacked = time.perf_counter()
        accuracy = eval_point(localize_point(point, local), run_dir, localize_data(data, local))
        work, moved = time.perf_counter() - unpacked, unpacked - start
    # The record names the data as the driver does, not where this node unpacked it.
    driver_path = {v: k for k, v in local.items()}
    for figures in accuracy.values():
        figures["data"] = driver_path.get(figures.get("data"), figures.get("data"))
    return {
        "accuracy": accuracy,
        "work_s": work,
        "node": where,
        "task_s": time.perf_counter() - t0,
        "transport_s": moved,
    }


def benchmark_task(point: Point, run: bytes, plan: SweepPlan):
    t0 = time.perf_counter()
    where = _where()
    cpus = split_cores(plan.threads, _START_CORES)[0]
    with scratch("bench-") as root:
        start = time.perf_counter()
        run_dir = unpack_folder(run, root / point.run_name)
        unpacked = time.perf_counter()
        rows = benchmark_point(
            point, run_dir, plan.backends, plan.threads, cpus, iterations=plan.iterations, warmup=plan.warmup
        )
        work, moved = time.perf_counter() - unpacked, unpacked - start
    for r in rows:
        r["node"] = where
    return {"rows": rows, "work_s": work, "node": where, "task_s": time.perf_counter() - t0, "transport_s": moved}


class RayExecutor:
    """Runs a sweep's points on the Ray cluster at ``address`` (``local``: a throwaway cluster on
    this machine), benchmarks on the nodes of device ``on`` (any node with a benchmark slot when
    None). ``jobs`` caps the exports in flight (None: as many as the cluster's CPUs take)."""

    def __init__(
        self,
        address: str = "local",
        on: str | None = None,
        jobs: int | None = None,
        *,
        max_retries: int = 2,
        placement_timeout_s: float = 60.0,
    ):
        import_ray()  # a missing Ray or a wrong address is an error before the sweep folder is touched
        if address != "local":
            check_reachable(address)
        self.address, self.on, self.jobs = address, on, jobs
        self.max_retries = max_retries
        self.placement_timeout_s = placement_timeout_s
        # One per finished task: where it ran; seconds seen by the driver (outer), in the task, in
        # edgecv's own work, and packing/unpacking its run folder.
        self.timings: list[dict[str, Any]] = []

    def run(self, plan: SweepPlan, store: SweepStore, observer: SweepObserver) -> None:
        pending = store.pending()
        if not pending:  # nothing to run: no cluster needed
            observer.sweep_start(len(plan.points), len(plan.points))
            observer.sweep_end()
            return
        with connected(self.address) as ray:
            placement = place_benchmarks(survey(ray), self.on, plan.threads)
            observer.sweep_start(len(plan.points), len(plan.points) - len(pending))
            _RayRun(ray, self, plan, store, observer, placement, pending).loop()
            observer.sweep_end()


@dataclass
class _OpenPoint:
    """A point between its export and its record."""

    point: Point
    export: PointExport
    run: Any  # the run folder's object ref
    waiting: set[str]
    accuracy: dict[str, Any] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


class _RayRun:
    def __init__(self, ray, ex: RayExecutor, plan, store, observer, placement: Placement, pending: list[Point]):
        self.ray, self.ex, self.plan, self.store, self.observer = ray, ex, plan, store, observer
        self.placement = placement
        groups: dict[str, list[Point]] = {}
        for p in pending:
            groups.setdefault(p.run_name, []).append(p)
        self.groups = list(groups.values())
        # ref → (kind, what it is for: an export's group and run folder ref, or the open points, submitted)
        self.tasks: dict[Any, tuple[str, Any, float]] = {}
        self.open: dict[str, _OpenPoint] = {}
        self.bench_lost_since: float | None = None
        self.last_check = 0.0
        parcels = {s: make_parcel(s) for s in driver_paths(pending, plan.data)}
        self.parcels = {s: Parcel(s, p.digest, ray.put(p.blob)) for s, p in parcels.items()}
        self.bench_nodes = frozenset(n.node_id for n in alive_nodes(ray) if placement.matches(n))
        retry = {"max_retries": ex.max_retries, "retry_exceptions": False}
        self.export_fn = ray.remote(num_cpus=1, num_returns=2, **retry)(export_task)
        self.eval_fn = ray.remote(num_cpus=1, **retry)(eval_task)
        self.bench_fn = ray.remote(**placement.task_options(), **retry)(benchmark_task)

    def _parcels_of(self, point: Point, data: EvalData | None = None) -> list[Parcel]:
        return [self.parcels[s] for s in named_paths([point], data) if s in self.parcels]

    def loop(self) -> None:
        try:
            while self.groups or self.tasks:
                self._submit_exports()
                ready, rest = self.ray.wait(list(self.tasks), num_returns=1, timeout=POLL_S)
                if ready and rest:
                    ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
                for ref in ready:
                    if ref not in self.tasks:  # cancelled: its point failed in another stage meanwhile
                        continue
                    kind, payload, submitted = self.tasks.pop(ref)
                    outer_s = time.perf_counter() - submitted
                    if kind == "export":
                        self._export_finished(ref, payload, outer_s)
                    else:
                        self._stage_finished(ref, payload, outer_s, kind)
                self._watch_benchmark_nodes()
        finally:
            for ref in self.tasks:
                self.ray.cancel(ref, force=True)

    def _submit_exports(self) -> None:
        in_flight = sum(kind == "export" for kind, _, _ in self.tasks.values())
        while self.groups and (self.ex.jobs is None or in_flight < self.ex.jobs):
            group = self.groups.pop(0)
            run_dir = self.store.run_dir(group[0])
            seed = pack(run_dir) if (run_dir / "manifest.json").is_file() else None
            for p in group:
                self.observer.point_stage(p, "export")
            meta, blob = self.export_fn.remote(
                group[0], self._parcels_of(group[0]), seed, self.bench_nodes, self.plan.threads
            )
            self.tasks[meta] = ("export", (group, blob), time.perf_counter())
            in_flight += 1

    def _result(self, ref: Any, points: list[Point], stage: str) -> Any:
        """The task's value, or None after recording why each of ``points`` did not get one."""
        from ray.exceptions import RayError, RayTaskError

        try:
            return self.ray.get(ref)
        except RayTaskError as exc:  # the point's own error, raised inside the task
            error: BaseException = exc.cause if isinstance(exc.cause, BaseException) else exc
            error.worker_traceback = str(exc)  # type: ignore[attr-defined]  # Ray's text: the task's traceback
        except RayError as exc:  # the cluster's: node or worker lost after every retry
            error = PointNotRun(f"not run: {str(exc).strip().splitlines()[0]}")
        for p in points:
            self._failed(p, stage, error)
        return None

    def _timing(self, kind: str, key: str, value: dict[str, Any], outer_s: float) -> None:
        work = value.get("work_s", value.get("export", {}).get("wall_s"))
        self.ex.timings.append(
            {
                "kind": kind,
                "key": key,
                "node": value["node"],
                "task_s": value["task_s"],
                "work_s": work,
                "transport_s": value["transport_s"],
                "outer_s": outer_s,
            }
        )

    def _export_finished(self, ref: Any, payload: tuple[list[Point], Any], outer_s: float) -> None:
        group, blob_ref = payload
        value = self._result(ref, group, "export")
        blob = value and self._result(blob_ref, group, "export")
        if blob is None:
            return
        target = self.store.run_dir(group[0])
        start = time.perf_counter()
        with folder_lock(self.store.runs_root, group[0].run_name):
            unpack_folder(blob, target)
        value["transport_s"] += time.perf_counter() - start  # the driver's unpacking counts with the export's packing
        self._timing("export", group[0].run_name, value, outer_s)
        export = PointExport.from_dict({**value["export"], "run_dir": str(target)})
        wants_eval = self.plan.data is not None and group[0].weights is not None  # a run folder's points share weights
        ops = []
        for p in group:
            op = _OpenPoint(p, export, blob_ref, {"eval"} if wants_eval else set(), wall={"export": export.wall_s})
            self.open[p.key] = op
            ops.append(op)
            self.observer.point_stage(p, "eval" if wants_eval else "benchmark")
        if wants_eval:  # one eval of every artifact, shared by the run folder's points
            parcels = self._parcels_of(group[0], self.plan.data)
            args = (group[0], parcels, self.plan.data, blob_ref, self.bench_nodes, self.plan.threads)
            self.tasks[self.eval_fn.remote(*args)] = ("eval", ops, time.perf_counter())
        for op in ops:
            self._submit_benchmark(op)

    def _submit_benchmark(self, op: _OpenPoint) -> None:
        op.waiting.add("benchmark")
        if (
            self.bench_lost_since is not None
            and time.perf_counter() - self.bench_lost_since > self.ex.placement_timeout_s
        ):
            self._not_placed(op)
            return
        ref = self.bench_fn.remote(op.point, op.run, self.plan)
        self.tasks[ref] = ("benchmark", [op], time.perf_counter())

    def _stage_finished(self, ref: Any, ops: list[_OpenPoint], outer_s: float, stage: str) -> None:
        value = self._result(ref, [op.point for op in ops], stage)
        if value is None:
            return
        self._timing(stage, ops[0].point.key, value, outer_s)
        for op in ops:
            op.wall[stage] = value["work_s"]
            if stage == "eval":
                op.accuracy = value["accuracy"]
            else:
                op.rows = value["rows"]
            self._progress(op, stage)

    def _progress(self, op: _OpenPoint, stage: str) -> None:
        op.waiting.discard(stage)
        if op.point.key not in self.open:
            return  # already recorded as failed by its other stage
        if op.waiting:
            self.observer.point_stage(op.point, next(iter(op.waiting)))
            return
        del self.open[op.point.key]
        self.store.record_done(op.point, op.export, op.accuracy, op.rows, op.wall)
        self.observer.point_done(op.point)

    def _failed(self, point: Point, stage: str, error: BaseException) -> None:
        if self.open.pop(point.key, None) is not None:  # a task left with no open point is pointless
            for ref, (kind, ops, _) in list(self.tasks.items()):
                if kind != "export" and not any(op.point.key in self.open for op in ops):
                    del self.tasks[ref]
                    self.ray.cancel(ref, force=True)
        self.store.record_failed(point, stage, error)
        self.observer.point_failed(point, stage, str(error) or type(error).__name__)

    def _not_placed(self, op: _OpenPoint) -> None:
        reason = (
            f"not run: no alive Ray node for {self.placement.describe()} within {self.ex.placement_timeout_s:.0f} s"
        )
        self._failed(op.point, "benchmark", PointNotRun(reason))

    def _watch_benchmark_nodes(self) -> None:
        """Benchmarks wait for a node of their device; when none is left for longer than the
        placement timeout, they are reported as not run instead of waiting forever."""
        now = time.perf_counter()
        if now - self.last_check < POLL_S:
            return
        self.last_check = now
        # Nodes join and leave: untimed work keeps off the benchmark cores of the ones there now.
        self.bench_nodes = frozenset(n.node_id for n in alive_nodes(self.ray) if self.placement.matches(n))
        if self.bench_nodes:
            self.bench_lost_since = None
            return
        self.bench_lost_since = self.bench_lost_since or now
        if now - self.bench_lost_since <= self.ex.placement_timeout_s:
            return
        for ref, (kind, ops, _) in list(self.tasks.items()):
            if kind == "benchmark" and ref in self.tasks:
                del self.tasks[ref]
                self.ray.cancel(ref, force=True)
                self._not_placed(ops[0])
