"""`edgecv benchmark` and `edgecv report` as a user runs them: real subprocesses, exit codes, files; the
bad inputs in this process (typer's test runner), one of them also as a real subprocess."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from tests.conftest import assert_user_error, assert_user_error_in_process, run_cli

QUICK = ("--warmup", "1", "--iterations", "5")


def test_benchmark_writes_report_and_json(dynamic_run, tmp_path):
    proc = run_cli(
        "benchmark",
        dynamic_run,
        "--backend",
        "onnxruntime",
        "--batch",
        "1,2",
        *QUICK,
        "--report",
        tmp_path / "report",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "edgecv.results/1"
    assert [(r["artifact"], r["batch"]) for r in doc["results"]] == [("onnx-fp32", 1), ("onnx-fp32", 2)]
    assert doc["results"][0]["memory"]["scope"] == "subprocess"
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"results.json", "report.md", "report.html"}
    assert "report.html" in proc.stderr


def test_benchmark_prints_a_table(static_run, tmp_path):
    proc = run_cli(
        "benchmark", static_run, "--in-process", *QUICK, "--precision", "f32", "--report", tmp_path / "report"
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("pytorch", "onnx-fp32", "openvino-fp32", "onnx-int8-cpu", "SQNR"):
        assert name in proc.stdout
    # The notes the table points at are printed under it, each once, as the report lists them.
    printed = [line.removeprefix("note: ") for line in proc.stderr.splitlines() if line.startswith("note: ")]
    reported = {
        n for r in json.loads((tmp_path / "report" / "results.json").read_text())["results"] for n in r["notes"]
    }
    assert printed and len(printed) == len(set(printed)) and set(printed) == reported


def test_a_thread_sweep_gives_rows_per_count_and_ends_with_the_recommendation(static_run, tmp_path):
    from edgecv.runfolder import EVAL_FILE, disk_digest

    run = tmp_path / "run"
    shutil.copytree(static_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["options"]["max_accuracy_drop"] = 0.5  # what an export with a budget records
    (run / "manifest.json").write_text(json.dumps(manifest))
    # Figures as `edgecv eval` records them (the scoring is its own tests' business): INT8 0.3 pt down.
    figures = {"onnx-fp32": (0.80, None), "onnx-int8-cpu": (0.797, -0.003)}
    paths = {"onnx-fp32": "model.onnx", "onnx-int8-cpu": "model.int8.cpu.onnx"}
    (run / EVAL_FILE).write_text(
        json.dumps(
            {
                "schema": "edgecv.eval/1",
                "data": {"path": "digits"},
                "accuracy": {
                    a: {"task": "classification", "metric": "top1", "value": v, "delta": d}
                    for a, (v, d) in figures.items()
                },
                "scored": {a: {"path": p, "digest": disk_digest(run, p)} for a, p in paths.items()},
            }
        )
    )
    proc = run_cli(
        "benchmark", run, "--backend", "onnxruntime", "--threads", "1,2", "--in-process", *QUICK,
        "--report", tmp_path / "report", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["settings"]["threads"] == [1, 2]
    assert [(r["artifact"], r["threads"]) for r in doc["results"]] == [
        ("onnx-fp32", 1), ("onnx-int8-cpu", 1), ("onnx-fp32", 2), ("onnx-int8-cpu", 2)
    ]  # fmt: skip
    rec = doc["recommendation"]
    assert rec["budget"] == {"max_drop_pts": 0.5, "source": "manifest", "metric": "top1"}
    assert [(g["threads"], g["basis"]) for g in rec["groups"]] == [(1, "accuracy budget"), (2, "accuracy budget")]
    for group in rec["groups"]:  # which one is faster is this machine's business; both are within 0.5 pt
        assert {group["pick"]["artifact"], *(a["artifact"] for a in group["alternatives"])} == set(figures)
    [verdict] = rec["int8"]
    assert verdict["artifact"] == "onnx-int8-cpu" and [a["threads"] for a in verdict["at"]] == [1, 2]
    assert sorted(verdict["pays_at"] + verdict["loses_at"]) == [1, 2]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| batch | threads |" in report  # the table tells the counts apart
    assert "## Recommendation" in report and "1 thread: deploy" in report and "budget (from the run folder" in report
    assert "<h2>Recommendation</h2>" in (tmp_path / "report" / "report.html").read_text()
    # Re-rendered without the block (a results.json from before benchmarks recorded one): still there.
    old = {k: v for k, v in doc.items() if k != "recommendation"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    proc = run_cli("report", tmp_path / "old.json")
    assert proc.returncode == 0, proc.stderr
    assert "recommendation:" in proc.stdout and "2 threads: deploy" in proc.stdout


def test_report_compares_runs(static_run, tmp_path):
    first = run_cli("benchmark", static_run / "model.onnx", *QUICK, "--report", tmp_path / "a")
    second = run_cli("benchmark", static_run / "model.onnx", *QUICK, "--report", tmp_path / "b")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    proc = run_cli(
        "report", tmp_path / "a" / "results.json", tmp_path / "b" / "results.json", "--out", tmp_path / "cmp", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    comparison = json.loads(proc.stdout)
    assert comparison["baseline"] == "a" and comparison["rows"][0]["speedups"][0] == 1.0
    assert (tmp_path / "cmp" / "comparison.html").is_file()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("benchmark", "{tmp}/absent.onnx"), ("does not exist",)),
        (("benchmark", "{tmp}/notes.txt"), ("unknown artifact kind", ".onnx → onnxruntime")),
        (("benchmark", "{static}", "--batch", "1,4", *QUICK), ("static batch of 1", "--dynamic-batch")),
        (("benchmark", "{static}/model.onnx", "--batch", "4", *QUICK), ("model.onnx has a static batch of 1",)),
        # Outside a run folder the batch is only known once loaded: the error comes from the worker.
        (("benchmark", "{tmp}/loose.onnx", "--batch", "4", *QUICK), ("takes only batch 1, asked for batch 4",)),
        (("benchmark", "{static}", "--batch", "two"), ("--batch takes positive integers",)),
        (("benchmark", "{static}", "--scenario", "server"), ("scenario must be one of",)),
        (("benchmark", "{static}", "--iterations", "5", "--duration", "1"), ("not both",)),
        (("benchmark", "{static}", "--precision", "fp8"), ("unknown precision",)),
        (("benchmark", "{static}", "--threads", "x"), ("--threads takes positive integers",)),
        (("benchmark", "{static}", "--threads", "1,0"), ("--threads takes positive integers",)),
        (("benchmark", "{static}", "--max-accuracy-drop", "-1"), ("--max-accuracy-drop takes a number",)),
        (("benchmark", "{static}", "--max-accuracy-drop", "x"), ("--max-accuracy-drop must be a number",)),
        (("benchmark", "{static}", "--backend", "tflite"), ("unknown backend 'tflite'",)),
        (("report", "{tmp}/absent.json"), ("does not exist",)),
        (("report", "{static}/manifest.json"), ("this edgecv reads edgecv.results/1",)),
    ],
)
def test_bad_input_exits_2_with_one_line(args, fragments, static_run, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    shutil.copy(static_run / "model.onnx", tmp_path / "loose.onnx")
    argv = [str(a).format(tmp=tmp_path, static=static_run) for a in args]
    assert_user_error_in_process(*argv, fragments=fragments)


def test_bad_input_exits_2_from_the_real_command(static_run):
    assert_user_error(run_cli("benchmark", static_run, "--batch", "two"), "--batch takes positive integers")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_engine_without_tensorrt_names_the_install(tmp_path):
    (tmp_path / "model.fp16.engine").write_bytes(b"\0" * 8)
    assert_user_error(run_cli("benchmark", tmp_path / "model.fp16.engine"), "tensorrt", "pip install")
