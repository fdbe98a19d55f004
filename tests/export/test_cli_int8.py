"""`edgecv export --int8` through the command line (the shared export a real subprocess, the
reruns on copies of it in this process): the three INT8 artifacts with their fidelity, the
sensitivity ranking, --keep-fp32, a rerun that reuses the calibration ranges, and --target-cpu
(recorded in the manifest and the artifacts, noted by the benchmark on another CPU)."""

from __future__ import annotations

import json
import shutil

import onnx
import pytest

from edgecv.artifact_metadata import read_metadata
from edgecv.sysinfo import cpu_int8_target
from tests.conftest import assert_user_error_in_process, invoke_cli

ARGS = ("mobilenetv2", "--width-mult", "0.35", "--resolution", "64", "--int8", "--calib-size", "48")


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory):
    """One INT8 export the tests only read; a test that exports again works on its own copy, so no
    test sees what another changed, whatever order they run in."""
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("int8") / "run"
    proc = run_cli("export", *ARGS, "--sensitivity", "--keep-fp32", "2", "--out", out, "--json")
    return out, proc


def own_copy(int8_run, tmp_path):
    out, proc = int8_run
    assert proc.returncode == 0, proc.stderr
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    return copy


def test_int8_artifacts_and_report(int8_run):
    out, proc = int8_run
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    int8 = {a["name"]: a for a in summary["artifacts"] if a["precision"] == "int8"}
    assert set(int8) == {"onnx-int8", "onnx-int8-cpu", "openvino-int8"}
    assert int8["onnx-int8"]["intended_for"] == "tensorrt"
    assert int8["onnx-int8-cpu"]["intended_for"] == "onnxruntime"
    for a in int8.values():
        f = a["fidelity"]
        assert {"top1_agreement", "top5_agreement", "cosine_mean", "sqnr_db"} <= set(f), f
        assert f["inputs"] > 0 and not f["in_sample"]
    report = json.loads((out / "calibration" / "report.json").read_text())
    assert set(report["fidelity"]) == set(int8)
    assert summary["int8"]["report"] == str(out / "calibration" / "report.json")
    assert summary["int8"]["method"] == "percentile" and len(summary["int8"]["excluded"]) == 2
    assert summary["int8"]["timings_s"]["ranges"] > 0
    assert "default" in report["calibration"]["kind"]  # no --calib: the stock photographs, with a warning
    assert "calib" in proc.stderr.lower()
    manifest = json.loads((out / "manifest.json").read_text())
    here = cpu_int8_target()
    assert manifest["options"]["target_cpu"] == "auto" and manifest["stages"]["int8"]["info"]["target_cpu"] == here
    assert read_metadata(out / "model.int8.cpu.onnx")["edgecv.target_cpu"] == here
    assert read_metadata(out / "openvino" / "model.int8.xml")["edgecv.target_cpu"] == here
    assert "edgecv.target_cpu" not in read_metadata(out / "model.int8.onnx")  # the same for every CPU


def test_keep_fp32_leaves_the_top_ranked_layers_in_float(int8_run):
    out, proc = int8_run
    report = json.loads((out / "calibration" / "report.json").read_text())
    ranking = report["sensitivity"]["layers"]
    assert len(ranking) > 10 and ranking[0]["gain_db"] >= ranking[-1]["gain_db"]
    top2 = [layer["node"] for layer in ranking[:2]]
    assert report["excluded"] == top2
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    for node in graph.node:
        if node.name in top2:
            # its activation input comes straight from float, not through a DequantizeLinear
            assert producers.get(node.input[0]) != "DequantizeLinear", node.name
    cpu = onnx.load(str(out / "model.int8.cpu.onnx")).graph
    cpu_producers = {o: n.op_type for n in cpu.node for o in n.output}
    for node in cpu.node:
        if node.name in top2:
            assert cpu_producers.get(node.input[0]) != "DequantizeLinear", node.name
    assert report["flavours"]["openvino"]["excluded_not_found"] == []


def test_rerun_reuses_ranges_and_a_new_exclusion_requantizes(int8_run, tmp_path):
    out = own_copy(int8_run, tmp_path)
    again = invoke_cli("export", *ARGS, "--sensitivity", "--keep-fp32", "2", "--out", out)
    assert again.returncode == 0, again.stderr
    assert "INT8 sensitivity" in again.stdout
    assert f"INT8 built for {cpu_int8_target()} (this machine's CPU: " in again.stdout
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert {name: stage["status"] for name, stage in stages.items()} == dict.fromkeys(stages, "reused")
    changed = invoke_cli("export", *ARGS, "--keep-fp32", "1", "--out", out, "--json")
    assert changed.returncode == 0, changed.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["stages"]["int8"]["info"]
    assert manifest["stages"]["int8"]["status"] == "done"
    assert info["ranges"]["reused"] is True and len(info["excluded"]) == 1


def test_target_cpu_shapes_the_cpu_artifacts_and_the_benchmark_notes_it(int8_run, tmp_path):
    """Built for an AVX2-only CPU: 7-bit weights in ONNX Runtime's CPU flavour, NNCF's overflow fix on
    every layer, the target stamped in; on any other CPU the benchmark says what that costs."""
    run = own_copy(int8_run, tmp_path)
    done = invoke_cli("export", *ARGS, "--target-cpu", "x86-avx2", "--out", run, "--json")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    info = manifest["stages"]["int8"]["info"]
    assert manifest["options"]["target_cpu"] == "x86-avx2" and info["target_cpu"] == "x86-avx2"
    assert info["ranges"]["reused"] is True  # the ranges do not depend on the target
    assert info["flavours"]["cpu"]["reduce_range"] is True and info["flavours"]["tensorrt"]["reduce_range"] is False
    assert info["flavours"]["openvino"]["overflow_fix"] == "enable"
    assert read_metadata(run / "model.int8.cpu.onnx")["edgecv.target_cpu"] == "x86-avx2"
    bench = invoke_cli(
        "benchmark", run / "model.int8.cpu.onnx", "--in-process", "--warmup", "1", "--iterations", "2", "--json"
    )
    assert bench.returncode == 0, bench.stderr
    notes = json.loads(bench.stdout)["results"][0]["notes"]
    noted = [n for n in notes if "built for x86-avx2" in n]
    assert noted if cpu_int8_target() != "x86-avx2" else not noted, notes


def test_unknown_exclude_names_the_closest_nodes(int8_run, tmp_path):
    out = own_copy(int8_run, tmp_path)
    assert_user_error_in_process(
        "export",
        *ARGS,
        "--exclude",
        "/features/features.2/conv/conv.0/conv.0.0/Convv",
        "--out",
        out,
        fragments=("no node named", "did you mean"),
    )
