"""The Ray executor's goals, measured on local Ray clusters (``ray.cluster_utils.Cluster``):

1. Same table. The digits MobileNetV2 (α 0.35, 32 px, FP32 and INT8, ONNX Runtime, 1 thread) swept
   ``--repeats`` times locally and as often on a 2-node cluster whose nodes carry the labels
   ``alpha`` and ``beta`` (``--on beta``), interleaved: accuracy must be identical, every benchmark
   must have run on a ``beta`` node (read inside the task), and the median of each latency median
   must differ between local and Ray by no more than one executor's runs differ among themselves
   (the run-to-run noise, printed).
2. Overhead. A MobileNetV2 point as the sweep goal has them (1.0 at 224 px, FP32 and INT8, ONNX
   Runtime and OpenVINO, 1 thread, random weights), with the local executor and on a 1-node
   cluster, interleaved. Ray's own work for a point (its run folder packed and unpacked, tasks
   dispatched and results fetched, timed inside the tasks and on the driver) must be ≤ 5 % of a
   local point's time; the end-to-end difference is printed too, though on a shared machine the
   load moves it more than Ray does.

What Ray costs once per sweep (starting a local cluster, connecting and asking every node for its
versions) is printed apart, not spread over the points.
Run: ``python benchmarks/sweep_ray.py [--repeats 3] [--iterations 200] [--calib-size 100] [--skip-table] [--skip-overhead]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.make_digits_fixture import FIXTURE, digits_as_images  # noqa: E402
from edgecv.sweep.executor import LocalExecutor, SweepObserver  # noqa: E402
from edgecv.sweep.run import make_plan  # noqa: E402
from edgecv.sweep.store import SweepStore  # noqa: E402

OVERHEAD_GOAL = 0.05


def cluster(*devices: str, cpus: int):
    from ray.cluster_utils import Cluster

    from edgecv.sweep.ray_cluster import DEVICE_LABEL, SLOT

    args = [{"num_cpus": cpus, "resources": {SLOT: 1}, "labels": {DEVICE_LABEL: d}} for d in devices]
    c = Cluster(initialize_head=True, head_node_args=args[0])
    for a in args[1:]:
        c.add_node(**a)
    c.wait_for_nodes()
    return c


class Clock(SweepObserver):
    """When the points started (after connecting and asking the nodes) and when the last ended."""

    def sweep_start(self, total: int, reused: int) -> None:
        self.started = time.perf_counter()
        super().sweep_start(total, reused)

    def sweep_end(self) -> None:
        self.ended = time.perf_counter()
        super().sweep_end()


def run(plan, out: Path, executor) -> tuple[dict[str, float], dict[str, dict]]:
    """(seconds: whole run, points from first to last, setup before them), the point records."""
    clock = Clock()
    start = time.perf_counter()
    with SweepStore(out, plan) as store:
        executor.run(plan, store, clock)
        wall = time.perf_counter() - start
        records = {p.key: rec for p, rec in store.records()}
    failed = {k: r["error"]["message"] for k, r in records.items() if r["status"] != "done"}
    if failed:
        raise SystemExit(f"points failed: {failed}")
    times = {"wall": wall, "points": clock.ended - clock.started, "setup": clock.started - start}
    return times, records


def medians(records: dict[str, dict]) -> dict[tuple[str, str], float]:
    return {(k, row["backend"]): row["median_ms"] for k, r in records.items() for row in r["rows"]}


def same_table(tmp: Path, repeats: int, iterations: int) -> bool:
    from edgecv.models.registry import create_model
    from edgecv.sweep.ray_executor import RayExecutor

    spec = create_model("mobilenetv2", num_classes=10, width_mult=0.35, resolution=32).input_spec
    x_train, x_test, _, y_test = digits_as_images(spec)
    np.save(tmp / "calib.npy", x_train)
    np.savez(tmp / "val.npz", inputs=x_test, labels=y_test)
    settings = {"models": "mobilenetv2", "width_mult": "0.35", "resolution": "32", "num_classes": 10}
    settings |= {"precision": "fp32,int8", "threads": "1", "weights": str(FIXTURE), "calib": str(tmp / "calib.npy")}
    settings |= {"data": str(tmp / "val.npz"), "iterations": iterations, "calib_size": 300}
    plan = make_plan(settings)
    local, on_ray = [], []
    c = cluster("alpha", "beta", cpus=2)
    try:
        for i in range(repeats):  # interleaved, so a change in the machine's load hits both alike
            local.append(run(plan, tmp / f"local-{i}", LocalExecutor())[1])
            on_ray.append(run(plan, tmp / f"ray-{i}", RayExecutor(c.address, on="beta"))[1])
    finally:
        c.shutdown()
    accuracy_same = all(r[k]["accuracy"] == local[0][k]["accuracy"] for r in local + on_ray for k in local[0])
    placed = all(row["node"]["device"] == "beta" for rs in on_ray for r in rs.values() for row in r["rows"])
    print(f"\n1. same table (digits MobileNetV2 α0.35 32 px, ONNX Runtime, 1 thread, {repeats} runs each)")
    print(f"   accuracy identical: {accuracy_same}  every benchmark on a beta node: {placed}")
    within = True
    for key in sorted(medians(local[0])):
        lm = [medians(r)[key] for r in local]
        rm = [medians(r)[key] for r in on_ray]
        noise = max(max(lm) - min(lm), max(rm) - min(rm))
        diff = abs(statistics.median(rm) - statistics.median(lm))
        record = local[0][key[0]]
        artifact = next(row["artifact"] for row in record["rows"] if row["backend"] == key[1])
        acc = record["accuracy"][artifact]["value"]
        print(
            f"   {key[0]:<28} {artifact} top-1 {acc:.4f}  medians local {' '.join(f'{x:.4f}' for x in lm)} ms,"
            f" Ray {' '.join(f'{x:.4f}' for x in rm)} ms: |Ray − local| {diff:.4f} ms, run-to-run range {noise:.4f} ms"
        )
        within &= diff <= noise
    print(f"   latency within the run-to-run noise: {within}")
    return accuracy_same and placed and within


def overhead(tmp: Path, repeats: int, iterations: int, calib_size: int) -> bool:
    from edgecv.sweep.ray_executor import RayExecutor

    settings = {"models": "mobilenetv2", "resolution": "224", "precision": "fp32,int8", "threads": "1"}
    settings |= {"backend": "onnxruntime,openvino", "iterations": iterations, "calib_size": calib_size}
    plan = make_plan(settings)
    points = len(plan.points)
    t0 = time.perf_counter()
    c = cluster("here", cpus=len(os.sched_getaffinity(0)))
    start_s = time.perf_counter() - t0
    local, ray, breakdown = [], [], []
    try:
        for i in range(repeats):  # interleaved, so a change in the machine's load hits both alike
            local.append(run(plan, tmp / f"local-{i}", LocalExecutor(jobs=1))[0])
            ex = RayExecutor(c.address, jobs=1)
            ray.append(run(plan, tmp / f"ray-{i}", ex)[0])
            breakdown += ex.timings
            print(
                f"   repeat {i + 1}: points local {local[-1]['points']:.1f} s, Ray {ray[-1]['points']:.1f} s;"
                f" Ray's connect + node check {ray[-1]['setup']:.1f} s, whole run {ray[-1]['wall']:.1f} s",
                flush=True,
            )
    finally:
        c.shutdown()

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    per_point = med(local, "points") / points
    end_to_end = (med(ray, "points") - med(local, "points")) / points
    # Ray's own work for a point: its run folder packed, unpacked on the driver and in each task
    # that reads it, plus getting a task to a worker and its result back (driver − task, taken on
    # the exports: one at a time, they never queue behind another task as benchmarks do).
    transport = sum(t["transport_s"] for t in breakdown) / len(ray) / points
    exports = [t for t in breakdown if t["kind"] == "export"]
    dispatch = sum(t["outer_s"] - t["task_s"] for t in exports) / len(ray) / points
    cost = transport + dispatch
    print(
        f"\n2. overhead (MobileNetV2 1.0 at 224 px, FP32 + INT8, ONNX Runtime + OpenVINO, 1 thread,"
        f" {iterations} iterations, {points} points of one export)"
    )
    print(
        f"   once per sweep, not counted per point: cluster start {start_s:.1f} s (--ray local),"
        f" connect + node check {med(ray, 'setup'):.1f} s"
    )
    print(
        f"   local {per_point:.1f} s a point; Ray's own work {cost:.2f} s a point = {cost / per_point:.1%}"
        f" (goal ≤ {OVERHEAD_GOAL:.0%}): run folders packed and unpacked {transport:.2f} s,"
        f" tasks dispatched and results fetched {dispatch:.2f} s"
    )
    print(
        f"   end to end, points first to last: Ray {end_to_end:+.2f} s a point = {end_to_end / per_point:+.1%}"
        f" against local (medians of {repeats}, interleaved; on a loaded machine this is mostly noise)"
    )
    return cost / per_point <= OVERHEAD_GOAL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--calib-size", type=int, default=100)
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    from edgecv.sysinfo import machine_info

    m = machine_info()
    print(f"machine: {m['cpu']} ({', '.join(m['flags'])}) · {m['cores']['usable']} cores · Python {m['python']}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="edgecv-sweep-ray-") as tmp:
        if not args.skip_table:
            ok &= same_table(Path(tmp), max(2, args.repeats), 5 * args.iterations)
        if not args.skip_overhead:
            ok &= overhead(Path(tmp), args.repeats, args.iterations, args.calib_size)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
