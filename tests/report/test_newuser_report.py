"""`edgecv report A B` as a new user reads it: columns named by run, what differs between
the runs in every rendering, results folders accepted, throughput as the offline headline."""

from __future__ import annotations

import copy
import json

from typer.testing import CliRunner

from edgecv.cli import app
from edgecv.report import compare_files, write_comparison
from tests.conftest import export_conv_onnx


def _two_runs(results_doc, tmp_path, scenario=None):
    a = copy.deepcopy(results_doc)
    b = copy.deepcopy(results_doc)
    a["target"]["path"] = str(tmp_path / "runs" / "mnv2-a")
    b["target"]["path"] = str(tmp_path / "runs" / "mnv2-b")
    b["settings"]["threads"] = 4
    b["settings"]["precision_hint"] = "f32"
    b["machine"]["cpu"] = "Intel Xeon Platinum"
    b["versions"]["openvino"] = "0.0.0"
    for r in b["results"]:
        r["latency"]["median_ms"] *= 2
        r["throughput_ips"] /= 2
    folders = []
    for name, doc in (("mnv2-a", a), ("mnv2-b", b)):
        if scenario:
            doc["settings"]["scenario"] = scenario
        folder = tmp_path / "runs" / name / "report"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(doc))
        folders.append(folder)
    return folders


def test_report_names_runs_and_shows_what_differs(results_doc, tmp_path):
    folders = _two_runs(results_doc, tmp_path)
    res = CliRunner().invoke(app, ["report", *map(str, folders), "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "mnv2-a" in out and "mnv2-b" in out and "report-2" not in out
    for fragment in ("threads", "backend default", "precision hint", "f32", "Intel Xeon Platinum", "openvino", "0.0.0"):
        assert fragment in out, (fragment, out)
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "What differs" in md and "| threads |" in md and "p90 ms · mnv2-b" in md
    html = (tmp_path / "cmp" / "comparison.html").read_text()
    assert "What differs" in html and "Intel Xeon Platinum" in html
    comparison = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert comparison["differences"]["threads"] == ["backend default", 4]
    assert "scenario" not in comparison["differences"]


def test_same_target_twice_is_told_apart_by_its_results_folders(results_doc, tmp_path):
    for name in ("t1", "t2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results_doc))
    comparison = compare_files([tmp_path / "t1", tmp_path / "t2" / "results.json"])
    assert [r["label"] for r in comparison["runs"]] == ["t1", "t2"]
    assert comparison["differences"] == {}


def test_offline_comparison_headlines_throughput(results_doc, tmp_path):
    folders = _two_runs(results_doc, tmp_path, scenario="offline")
    comparison = compare_files(folders)
    assert comparison["headline"] == "throughput"
    written = write_comparison(comparison, tmp_path / "cmp")
    md = written["comparison.md"].read_text()
    assert "items/s · mnv2-a" in md and "0.50×" in md and "above 1" in md


def test_tensorrt_flavour_timed_in_onnxruntime_says_why_it_is_slow(results_doc, tmp_path):
    from rich.console import Console

    from edgecv.cli.tables import results_table
    from edgecv.report import write_report
    from edgecv.report.format import built_for

    assert built_for({"intended_for": "onnxruntime", "backend": "onnxruntime"}) == "onnxruntime"
    cell = built_for({"intended_for": "tensorrt", "backend": "onnxruntime"})
    assert cell.startswith("tensorrt") and "slow in ONNX Runtime" in cell
    doc = copy.deepcopy(results_doc)
    int8 = copy.deepcopy(next(r for r in doc["results"] if r["backend"] == "onnxruntime"))
    int8.update(artifact="onnx-int8", intended_for="tensorrt", precision="int8")
    doc["results"].append(int8)
    console = Console(width=400, record=True)
    console.print(results_table(doc))
    assert "slow in ONNX Runtime" in console.export_text()
    md = write_report(doc, tmp_path / "rep")["report.md"].read_text()
    assert "slow in ONNX Runtime" in md


def test_benchmark_notes_what_the_tensorrt_flavour_is_for(tmp_path):

    from edgecv.runfolder import SCHEMA
    from edgecv.runtime.benchmark import benchmark_target

    run = tmp_path / "run"
    run.mkdir()
    export_conv_onnx(run / "model.int8.onnx")
    record = {
        "name": "onnx-int8",
        "path": "model.int8.onnx",
        "backend": "onnxruntime",
        "precision": "int8",
        "intended_for": "tensorrt",
        "batch": 1,
        "dynamic_batch": False,
    }
    (run / "manifest.json").write_text(json.dumps({"schema": SCHEMA, "artifacts": [record], "model": {"custom": True}}))
    report = benchmark_target(run, warmup=1, iterations=3, isolate=False)
    (result,) = report.results
    assert any("TensorRT-flavour" in n and "onnx-int8-cpu" in n for n in result.notes), result.notes
