"""The local executor's lanes, without running anything: a benchmark never shares its cores with
the sweep's exports (on their own cores, or taking turns when no core is spare)."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from edgecv.sweep.executor import LocalExecutor, SweepObserver, _LocalRun
from edgecv.sweep.point import PointExport
from edgecv.sweep.run import make_plan
from edgecv.sweep.store import SweepStore


class Lane:
    """A pool that records what is submitted and runs nothing."""

    def __init__(self):
        self.calls = []

    def submit(self, fn, *args, **kwargs):
        self.calls.append(fn.__name__)
        return Future()

    def shutdown(self, **kw):
        pass


def local_run(tmp_path, threads, cores):
    plan = make_plan({"models": "mobilenetv2", "resolution": "32,64,96", "threads": threads})
    store = SweepStore(tmp_path / "s", plan).open()
    run = _LocalRun(LocalExecutor(jobs=2, cores=cores), plan, store, SweepObserver(), store.pending())
    for pool in (run.exports, run.bench_pool):
        pool.shutdown()
    run.exports, run.bench_pool = Lane(), Lane()
    export = PointExport(str(tmp_path), plan.points[0].run_name, "classification", 1, 1, True, [], {}, 0.0)
    return run, plan, export


@pytest.mark.parametrize("threads, cores, turns", [("1", [0, 1], False), ("2", [0, 1], True), ("1", [0], True)])
def test_benchmarks_and_exports_never_share_cores(tmp_path, threads, cores, turns):
    run, plan, export = local_run(tmp_path, threads, cores)
    assert run.take_turns is turns
    run._submit()  # nothing to time yet: exports start, as many as --jobs
    assert run.exports.calls == ["prepare_group"] * 2 and run.bench_pool.calls == []
    run.in_export.popitem()  # one export finished; its point waits for the benchmark lane
    run.bench_queue.append((plan.points[0], export, {}))
    run._submit()
    if turns:  # an export is still running on the cores a benchmark would time: it waits
        assert run.bench_pool.calls == [] and len(run.exports.calls) == 2
        run.in_export.clear()
        run._submit()
        assert run.bench_pool.calls == ["benchmark_point"]
        assert len(run.exports.calls) == 2  # and no export starts while it runs
    else:  # exports keep to their own cores: both lanes run at once
        assert run.bench_pool.calls == ["benchmark_point"] and len(run.exports.calls) == 3
    run.store.close()
