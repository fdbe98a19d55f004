"""The grid: flags and TOML → points, checked before anything runs; the store's resume rule."""

from __future__ import annotations

import pytest

from edgecv.errors import InvalidOptionError
from edgecv.sweep.grid import parse_latency
from edgecv.sweep.point import PointExport
from edgecv.sweep.run import make_plan
from edgecv.sweep.store import SweepStore


def plan(**settings):
    return make_plan({"models": "mobilenetv2", **settings})


def test_points_share_one_export_per_run_folder():
    p = plan(width_mult="0.35,0.5", resolution="32,64", precision="fp32,int8", backend="onnxruntime,openvino")
    assert len(p.points) == 2 * 2 * 2
    groups = p.export_groups()
    assert len(groups) == 4
    for points in groups.values():
        assert [q.precision for q in points] == ["fp32", "int8"]
        # One export makes both precisions: its options are the union of what the group needs.
        assert all(q.export_options == points[0].export_options for q in points)
        assert points[0].export_options["int8"] is True
        assert points[0].export_options["backends"] == ("onnxruntime", "openvino")
    assert "mobilenetv2-w0.35-r64-int8" in {q.key for q in p.points}


@pytest.mark.parametrize(("threads", "planned_at"), [("1", 1), ("2", 2), ("1,2", None), (None, None)])
def test_int8_speed_plan_measures_at_the_thread_count_the_sweep_times(threads, planned_at):
    settings = {"threads": threads} if threads else {}
    p = plan(width_mult="0.35", resolution="32", precision="fp32,int8", **settings)
    assert all(q.export_options.get("threads") == planned_at for q in p.points)


def test_weights_template_names_a_file_per_point(tmp_path):
    (tmp_path / "mobilenetv2_a0.5.pth").write_bytes(b"x")
    p = plan(width_mult="0.35,0.5", resolution="32", weights=str(tmp_path / "{model}_a{width_mult}.pth"))
    by_width = {q.width_mult: q.weights for q in p.points}
    assert by_width[0.5] == str(tmp_path / "mobilenetv2_a0.5.pth")
    assert by_width[0.35] is None  # no file: timed only


def test_toml_grid_and_flags_over_it(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'models = ["mobilenetv2", "shufflenetv2"]\nwidth_mult = [0.5, 1.0]\nresolution = [64]\n'
        'precision = ["fp32"]\nthreads = [1, 2]\nmax_latency = "10ms"\n[export]\nopset = 17\n'
    )
    p = make_plan({"resolution": "32,64"}, grid)
    assert {q.model for q in p.points} == {"mobilenetv2", "shufflenetv2"}
    assert {q.resolution for q in p.points} == {32, 64}  # the flag won
    assert p.threads == (1, 2)
    assert p.max_latency_ms == 10.0
    assert all(q.export_options["opset"] == 17 for q in p.points)


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"precision": "int4"}, "--precision"),
        ({"backend": "tflite"}, "unknown backend"),
        ({"width_mult": "wide"}, "--width-mult"),
        ({"resolution": "33"}, "multiple of 32"),
        ({"threads": "0"}, "--threads"),
        ({"max_latency": "10ms", "min_accuracy": 70.0}, "not both"),
        ({"data": "/no/such/val"}, "no such file"),
        ({"weights": "/no/such/{model}.pth"}, "no such file for any point"),
    ],
)
def test_bad_grid_values_are_refused_before_anything_runs(settings, fragment):
    with pytest.raises(InvalidOptionError, match=fragment):
        plan(**settings)


def test_bad_toml_key_is_refused(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["mobilenetv2"]\nresolutions = [64]\n')
    with pytest.raises(InvalidOptionError, match="unknown key"):
        make_plan({}, grid)


@pytest.mark.parametrize("text, ms", [("10ms", 10.0), ("2.5", 2.5), ("0.01s", 10.0), ("500us", 0.5)])
def test_parse_latency(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


def test_store_reuses_only_points_done_under_the_same_settings(tmp_path):
    p = plan(width_mult="0.35", resolution="32", precision="fp32,int8")
    fp32, int8 = p.points
    export = PointExport(str(tmp_path), fp32.run_name, "classification", 1, 2, True, [], {}, 0.0)
    with SweepStore(tmp_path / "sweep", p) as store:
        store.record_done(fp32, export, {}, [])
        store.record_failed(int8, "export", RuntimeError("boom"))
        assert [q.key for q in store.pending()] == [int8.key]  # a failed point runs again
        assert store.record(int8)["error"]["message"] == "boom"
    # Other timing settings: the finished point is stale and runs again; earlier results go.
    (tmp_path / "sweep" / "sweep.json").write_text("{}")
    p.iterations = 7
    with SweepStore(tmp_path / "sweep", p) as store:
        assert len(store.pending()) == 2
        assert not (tmp_path / "sweep" / "sweep.json").exists()


def test_one_sweep_process_per_folder(tmp_path):
    from edgecv.errors import OutputPathError

    p = plan(resolution="32")
    with SweepStore(tmp_path / "s", p):
        with pytest.raises(OutputPathError, match="in use"):
            SweepStore(tmp_path / "s", p).open()


@pytest.mark.parametrize(
    "threads, bench, exports",
    [((1,), [3], [0, 1, 2]), ((1, 2), [2, 3], [0, 1]), ((None,), [0, 1, 2, 3], []), ((8,), [0, 1, 2, 3], [])],
)
def test_benchmarks_reserve_the_cores_they_time(threads, bench, exports):
    from edgecv.sweep.executor import split_cores

    assert split_cores(threads, [0, 1, 2, 3]) == (bench, exports)


def test_a_checkpoint_rewritten_in_place_reruns_its_points(tmp_path):
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"one")
    p = plan(resolution="32", weights=str(ckpt))
    export = PointExport(str(tmp_path), p.points[0].run_name, "classification", 1, 2, False, [], {}, 0.0)
    with SweepStore(tmp_path / "sweep", p) as store:
        store.record_done(p.points[0], export, {}, [])
        assert store.pending() == []
        ckpt.write_bytes(b"other weights")
        assert store.pending() == p.points
