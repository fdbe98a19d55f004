"""The Ray executor on an in-process cluster of labelled nodes (``ray.cluster_utils.Cluster``): a sweep
whose benchmarks land on the device asked for (checked from inside the tasks), nothing shared on
disk, a rerun that reuses every point, nodes lost mid-sweep, and one-line errors for a cluster that
cannot run what was asked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray executor needs Ray core (pip install 'edgecv[ray]')")
from ray.cluster_utils import Cluster  # noqa: E402

from edgecv.errors import UserInputError  # noqa: E402
from edgecv.sweep.executor import SweepObserver  # noqa: E402
from edgecv.sweep.ray_cluster import DEVICE_LABEL, SLOT  # noqa: E402
from edgecv.sweep.ray_executor import RayExecutor  # noqa: E402
from edgecv.sweep.run import make_plan  # noqa: E402
from edgecv.sweep.store import SweepStore  # noqa: E402
from tests.conftest import ROOT, assert_user_error_in_process, run_cli  # noqa: E402

pytestmark = pytest.mark.slow
FIXTURE = ROOT / "tests" / "fixtures" / "digits_mobilenetv2_a0.35_r32.pth"
TINY = {"models": "mobilenetv2", "resolution": "32", "num_classes": 10, "iterations": 5, "warmup": 1}
# A killed node is declared dead after about a second instead of Ray's default half minute.
CLI_TINY = ("mobilenetv2", "--resolution", "32", "--num-classes", "10", "-n", "5", "--warmup", "1")
FAST_HEALTH_CHECKS = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300}
FAST_HEALTH_CHECKS["health_check_failure_threshold"] = 3


def node_args(device: str) -> dict:
    return {"num_cpus": 2, "resources": {SLOT: 1}, "labels": {DEVICE_LABEL: device}}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={**node_args("alpha"), "_system_config": FAST_HEALTH_CHECKS})
    c.add_node(**node_args("beta"))
    c.wait_for_nodes()
    yield c
    c.shutdown()


class Recorder(SweepObserver):
    def __init__(self, on_stage=None, on_done=None):
        super().__init__()
        self.notes: list[str] = []
        self.on_stage, self.on_done = on_stage, on_done

    def note(self, message: str) -> None:
        self.notes.append(message)

    def point_stage(self, point, stage):
        super().point_stage(point, stage)
        if self.on_stage:
            self.on_stage(point, stage)

    def point_done(self, point):
        super().point_done(point)
        if self.on_done:
            self.on_done(point)


def sweep(out: Path, executor: RayExecutor, observer: SweepObserver | None = None, **settings) -> dict[str, dict]:
    plan = make_plan({**TINY, **settings})
    with SweepStore(out, plan) as store:
        executor.run(plan, store, observer or Recorder())
    return {p.stem: json.loads(p.read_text()) for p in (out / "points").glob("*.json")}


def test_benchmarks_run_on_the_device_asked_for_and_a_rerun_reuses_every_point(cluster, tmp_path):
    # The inputs are removed from the driver's disk once the sweep has packed them: the tasks only
    # see them through the object store.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(FIXTURE, inputs / "w.pth")
    rng = np.random.default_rng(0)
    data = inputs / "val.npz"
    np.savez(data, inputs=rng.standard_normal((8, 3, 32, 32)).astype(np.float32), labels=np.arange(8) % 10)
    settings = {"width_mult": "0.35", "precision": "fp32,int8", "calib_size": 4}
    settings |= {"weights": str(inputs / "w.pth"), "data": str(data)}
    plan = make_plan({**TINY, **settings})  # made while the files exist: --data is checked here
    ex = RayExecutor(cluster.address, on="beta")
    with SweepStore(tmp_path / "sweep", plan) as store:
        ex.run(plan, store, Recorder(on_stage=lambda point, stage: shutil.rmtree(inputs, ignore_errors=True)))
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "sweep" / "points").glob("*.json")}

    assert {k: r["status"] for k, r in records.items()} == {
        "mobilenetv2-w0.35-r32-fp32": "done",
        "mobilenetv2-w0.35-r32-int8": "done",
    }
    for r in records.values():
        assert r["rows"] and all(row["node"]["device"] == "beta" for row in r["rows"])  # read inside the task
        assert {"onnx-fp32", "onnx-int8-cpu"} <= set(r["accuracy"])
        for figures in r["accuracy"].values():
            assert figures["images"] == 8 and figures["data"] == str(data)  # the driver's path, not a node's copy
    assert records["mobilenetv2-w0.35-r32-fp32"]["accuracy"] == records["mobilenetv2-w0.35-r32-int8"]["accuracy"]
    assert sorted(t["kind"] for t in ex.timings) == [
        "benchmark",
        "benchmark",
        "eval",
        "export",
    ]  # one eval a run folder
    assert all(t["node"]["device"] == "beta" for t in ex.timings if t["kind"] == "benchmark")
    # The driver ends with the whole run folder, complete and with nothing half-written beside it.
    run_dir = tmp_path / "sweep" / "runs" / "mobilenetv2-w0.35-r32"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {a["name"] for a in manifest["artifacts"]} >= {"onnx-fp32", "onnx-int8-cpu"}
    assert all((run_dir / a["path"]).is_file() for a in manifest["artifacts"])
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".partial-")]

    # Rerun: every point is finished under the same plan, so no task runs at all.
    rerun = RayExecutor(cluster.address, on="beta")
    with SweepStore(tmp_path / "sweep", plan) as store:
        observer = Recorder()
        rerun.run(plan, store, observer)
    assert rerun.timings == [] and observer.done == 2
    assert "2 of 2 points already finished: reused" in observer.notes


def test_a_node_lost_mid_sweep_keeps_the_finished_points_and_the_rest_run_elsewhere(cluster, tmp_path):
    # gamma is the only node of device "shared" until the first point is finished; then it is
    # killed and zeta takes its place. gamma times one benchmark at a time, so the second point's
    # is still to finish (running or waiting for the slot) when the first point's is done.
    gamma = cluster.add_node(**node_args("shared"))
    cluster.wait_for_nodes()
    out = tmp_path / "sweep"
    before_kill: dict[str, str] = {}
    zeta = []

    def kill_gamma(point):
        if not zeta:
            before_kill.update({p.name: p.read_text() for p in (out / "points").glob("*.json")})
            cluster.remove_node(gamma, allow_graceful=False)
            zeta.append(cluster.add_node(**node_args("shared")))

    ex = RayExecutor(cluster.address, on="shared", jobs=1)
    records = sweep(out, ex, Recorder(on_done=kill_gamma), width_mult="0.35,0.5")

    assert len(records) == 2 and all(r["status"] == "done" for r in records.values()), records
    assert len(before_kill) == 1
    for name, text in before_kill.items():  # what had finished is kept as it was, timed on gamma
        assert (out / "points" / name).read_text() == text
    ran_on = {key: {row["node"]["node_id"] for row in r["rows"]} for key, r in records.items()}
    assert ran_on == {key: {gamma.node_id if f"{key}.json" in before_kill else zeta[0].node_id} for key in records}
    cluster.remove_node(zeta[0])


def test_a_failing_export_and_benchmarks_with_no_node_left_are_recorded_and_the_sweep_ends(cluster, tmp_path):
    # α 0.5 has a checkpoint that is not one: its export fails inside its task. α 0.35 has none and
    # is timed only, on delta, the one node of its device, killed as the benchmark is handed out.
    (tmp_path / "mobilenetv2_a0.5.pth").write_bytes(b"not a checkpoint")
    delta = cluster.add_node(**node_args("delta"))
    cluster.wait_for_nodes()

    def kill_at_first_benchmark(point, stage):
        if stage == "benchmark" and delta in cluster.worker_nodes:
            cluster.remove_node(delta, allow_graceful=False)

    ex = RayExecutor(cluster.address, on="delta", placement_timeout_s=2.0)
    weights = str(tmp_path / "{model}_a{width_mult}.pth")
    observer = Recorder(on_stage=kill_at_first_benchmark)
    records = sweep(tmp_path / "sweep", ex, observer, width_mult="0.35,0.5", weights=weights)

    broken = records["mobilenetv2-w0.5-r32-fp32"]
    assert broken["status"] == "failed" and broken["error"]["stage"] == "export"
    assert f"{tmp_path}/mobilenetv2_a0.5.pth is not a readable PyTorch checkpoint" in broken["error"]["message"]
    assert "export_task" in broken["error"]["traceback"]  # the worker's traceback, not the driver's
    lost = records["mobilenetv2-w0.35-r32-fp32"]
    assert lost["status"] == "failed" and lost["error"]["stage"] == "benchmark"
    assert lost["error"]["type"] == "PointNotRun"
    assert "not run: no alive Ray node for --on delta" in lost["error"]["message"]
    assert observer.failed == 2
    # The export had finished: its run folder is on the driver, so a rerun only times the point.
    assert (tmp_path / "sweep" / "runs" / "mobilenetv2-w0.35-r32" / "manifest.json").is_file()


def test_a_device_no_node_carries_is_a_one_line_error_before_any_point_runs(cluster, tmp_path):
    ex = RayExecutor(cluster.address, on="jetson-orin-nano")
    with pytest.raises(UserInputError) as info:
        sweep(tmp_path / "sweep", ex, width_mult="0.35")
    message = str(info.value)
    assert "--on jetson-orin-nano: no Ray node carries the label edgecv/device=jetson-orin-nano" in message
    assert "devices in the cluster: alpha, beta" in message and "\n" not in message
    assert ex.timings == [] and not list((tmp_path / "sweep" / "points").iterdir())


def test_cli_sweeps_on_a_throwaway_local_cluster(tmp_path):
    out = tmp_path / "sweep"
    proc = run_cli("sweep", *CLI_TINY, "--width-mult", "0.35", "--ray", "local", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["failed"] == [] and [r["point"] for r in doc["rows"]] == ["mobilenetv2-w0.35-r32-fp32"]
    assert (out / "runs" / "mobilenetv2-w0.35-r32" / "model.onnx").is_file()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--on", "jetson-orin-nano"), "--on places benchmarks on the nodes of a Ray cluster: give --ray too"),
        (("--ray", "127.0.0.1:9"), "--ray 127.0.0.1:9: no Ray cluster answers there"),
    ],
)
def test_cli_refuses_ray_flags_it_cannot_use_before_writing_anything(tmp_path, flags, message):
    assert_user_error_in_process("sweep", *CLI_TINY, *flags, "--out", tmp_path / "s", fragments=(message,))
    assert not (tmp_path / "s").exists()
