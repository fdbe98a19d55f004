"""sweep.json/md/html from point records (no export): published figures labelled and ranked only
when nothing was measured, the Pareto front and recommendation marked, failed points listed; and
`edgecv report` lining two sweeps up."""

from __future__ import annotations

import json

from edgecv.sweep.point import PointExport
from edgecv.sweep.report import render_markdown, write_reports
from edgecv.sweep.results import sweep_document
from edgecv.sweep.run import make_plan
from edgecv.sweep.store import SweepStore
from tests.conftest import invoke_cli

# p90 latency per point key and engine, as a benchmark would have recorded it.
LATENCY = {"mobilenetv1-w0.5-r224-fp32": 2.0, "mobilenetv1-w0.75-r224-fp32": 4.0, "mobilenetv1-w1.0-r224-fp32": 6.0}


def bench_row(backend, p90):
    return {"backend": backend, "artifact": "onnx-fp32", "threads": 1, "p90_ms": p90, "median_ms": p90 * 0.9,
            "throughput_ips": 1000 / p90, "notes": []}  # fmt: skip


def make_sweep(root, scale=1.0, fail=None):
    plan = make_plan(
        {
            "models": "mobilenetv1",
            "width_mult": "0.75,1.0,0.5",
            "resolution": "224",
            "threads": "1",
            "max_latency": "5ms",
        }  # fmt: skip
    )
    with SweepStore(root, plan) as store:
        for p in plan.points:
            if p.key == fail:
                store.record_failed(p, "export", RuntimeError("exporter crashed\nsecond line"))
                continue
            export = PointExport(str(root), p.run_name, "classification", 500_000_000, 4_000_000, True, [], {}, 1.0)
            store.record_done(p, export, {}, [bench_row("onnxruntime", LATENCY[p.key] * scale)])
        doc = sweep_document(plan, store.records())
        write_reports(doc, root)
    return doc


def test_published_figures_rank_a_timing_only_sweep(tmp_path):
    doc = make_sweep(tmp_path / "s", fail="mobilenetv1-w0.5-r224-fp32")
    rows = {r["point"]: r for r in doc["rows"]}
    assert rows["mobilenetv1-w1.0-r224-fp32"]["published"] == {
        "top1": 70.6, "source": "Howard et al. 2017, MobileNets, Table 6", "label": "published"}  # fmt: skip
    assert all(r["timing_only"] and r["accuracy"] is None for r in rows.values())
    assert doc["accuracy_basis"] == "published"
    assert doc["pareto"] == [rows["mobilenetv1-w0.75-r224-fp32"]["id"], rows["mobilenetv1-w1.0-r224-fp32"]["id"]]
    # Within 5 ms only α 0.75 qualifies; α 1.0 is more accurate but slower.
    assert doc["recommendation"]["choice"] == rows["mobilenetv1-w0.75-r224-fp32"]["id"]
    assert doc["failed"] == [{"point": "mobilenetv1-w0.5-r224-fp32", "stage": "export",
                              "message": "exporter crashed\nsecond line"}]  # fmt: skip
    md = render_markdown(doc)
    assert "published ImageNet top-1" in md and "68.4%" in md and "timing only (no weights)" in md
    assert "| mobilenetv1-w0.5-r224-fp32 | export | exporter crashed |" in md
    html = (tmp_path / "s" / "sweep.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # accuracy–latency and latency–MACs plots
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["schema"] == "edgecv.sweep/1"


def test_report_lines_up_two_sweeps(tmp_path):
    make_sweep(tmp_path / "laptop")
    make_sweep(tmp_path / "board", scale=3.0)
    result = invoke_cli("report", tmp_path / "laptop", tmp_path / "board" / "sweep.json", "--json")
    assert result.returncode == 0, result.stderr
    comparison = json.loads(result.stdout)
    assert [s["label"] for s in comparison["sweeps"]] == ["laptop", "board"]
    for row in comparison["rows"]:
        assert row["ratio"][1] == 3.0
    result = invoke_cli("report", tmp_path / "laptop")
    assert result.returncode == 2 and "two or more sweeps" in result.stderr


def test_published_figures_stand_beside_fp32_points_only(tmp_path):
    plan = make_plan({"models": "mobilenetv1", "width_mult": "1.0", "resolution": "224", "precision": "fp32,int8",
                      "threads": "1", "max_latency": "5ms"})  # fmt: skip
    with SweepStore(tmp_path / "s", plan) as store:
        for p in plan.points:
            export = PointExport(str(tmp_path), p.run_name, "classification", 500_000_000, 4_000_000, True, [], {}, 1.0)
            store.record_done(p, export, {}, [bench_row("onnxruntime", 6.0 if p.precision == "fp32" else 3.0)])
        doc = sweep_document(plan, store.records())
    rows = {r["precision"]: r for r in doc["rows"]}
    assert rows["fp32"]["published"]["top1"] == 70.6
    # The paper's figure is its float model's: INT8 lost an unknown amount, so it is not ranked on it.
    assert rows["int8"]["published"] is None
    assert doc["recommendation"]["choice"] != rows["int8"]["id"]
