"""``edgecv check --target tensorrt``: graphs built to break each rule are reported with their node
names and the right severity; the exit code says whether a build would fail. The command runs as a
real subprocess for a passing check and for option errors, in this process otherwise."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecv.tensorrt.operators import UNSUPPORTED_OPS
from edgecv.tensorrt.preflight import check_tensorrt
from edgecv.tensorrt.run_folder_preflight import check_target
from tests.calibration.test_tensorrt_rules import qdq_model
from tests.conftest import assert_user_error, assert_user_error_in_process, invoke_cli, run_cli


def graph(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, dtype=TensorProto.FLOAT, shape=(1, 4)):
    return helper.make_tensor_value_info(name, dtype, list(shape))


def found(model, version="10.3", **kw):
    return {(f.severity, f.rule, f.node) for f in check_tensorrt(model, version, **kw).findings}


def test_the_tensorrt_flavour_passes(onnx_files):
    report = check_tensorrt(onnx_files["int8"], "10.3")
    assert report.errors == [] and report.exit_code == 0


@pytest.mark.parametrize(
    ("flavour", "rules"),
    [
        ("ort_uint8", {"qdq-int8", "qdq-zero-point", "qdq-bias-float"}),  # asymmetric UINT8 activations
        ("ort_default", {"qdq-zero-point", "qdq-bias-float"}),  # ORT 1.2x+: asymmetric INT8 activations
    ],
)
def test_onnx_runtime_default_asymmetric_quantization_would_not_build(onnx_files, flavour, rules):
    report = check_tensorrt(onnx_files[flavour], "10.3")
    assert rules <= {f.rule for f in report.errors}
    assert report.exit_code == 1
    assert any(f.node.startswith("input_") for f in report.errors)  # node names, not just rule names


@pytest.mark.parametrize(
    ("fault", "rule"),
    [
        ({"uint8": True}, "qdq-int8"),
        ({"zero_point": 3}, "qdq-zero-point"),
        ({"activation_per_channel": True}, "qdq-per-channel-weights-only"),
        ({"weight_axis": 1}, "qdq-per-channel-weights-only"),
        ({"weight_scale": [0.01, -0.01, 0.01, 0.01]}, "qdq-scale-positive"),
        ({"weight_scale": [0.01, float("inf"), 0.01, 0.01]}, "qdq-scale-positive"),
        ({"runtime_scale": True}, "qdq-scale-constant"),
        ({"int32_bias": True}, "qdq-bias-float"),
    ],
)
def test_qdq_faults_that_fail_the_build(fault, rule):
    report = check_tensorrt(qdq_model(**fault), "10.3")
    assert rule in {f.rule for f in report.errors}, report.findings
    assert report.exit_code == 1


def test_qdq_faults_that_only_slow_it():
    report = check_tensorrt(qdq_model(add_without_dq=True), "10.3")
    assert [(f.severity, f.rule, f.node) for f in report.findings] == [("warning", "qdq-residual-add", "residual_add")]
    assert report.exit_code == 0


def test_int8_weight_initializer_failed_on_8_only():
    model = qdq_model(int8_weight_initializer=True)
    assert ("error", "qdq-weight-qdq-pair", "dq_w") in found(model, "8.6")
    assert ("info", "qdq-weight-qdq-pair", "dq_w") in found(model, "10.3")


def test_unsupported_ops_per_version():
    def one(op, **attrs):
        return graph([helper.make_node(op, ["x"], ["y"], name=f"my_{op.lower()}", **attrs)], [vi("x")], [vi("y")])

    assert ("error", "unsupported-op", "my_unique") in found(one("Unique"), "10.3")
    assert ("error", "unsupported-op", "my_unique") in found(one("Unique"), "11.1")
    assert ("error", "unsupported-op", "my_hardmax") in found(one("Hardmax"), "8.6")
    assert not found(one("Hardmax"), "10.3")
    stft = one("HannWindow")
    assert ("error", "unsupported-op", "my_hannwindow") in found(stft, "10.3")
    assert not found(stft, "10.4")
    # The table is data with its source.
    assert UNSUPPORTED_OPS["Unique"][1].startswith("onnx-tensorrt")


def test_opset_above_the_documented_range():
    model = graph([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x")], [vi("y")], opset=18)
    assert ("warning", "opset", "graph") in found(model, "8.6")
    assert not found(model, "10.3")


def test_int64_tensors():
    inits = [numpy_helper.from_array(np.array([2**40], dtype=np.int64), "big")]
    model = graph(
        [helper.make_node("Add", ["x", "big"], ["y"], name="add")],
        [vi("x", TensorProto.INT64, (1,))],
        [vi("y", TensorProto.INT64, (1,))],
        inits,
    )
    old = found(model, "8.6")
    assert ("warning", "int64", "x") in old and ("warning", "int64", "big") in old  # cast down, clamped
    assert ("info", "int64", "x") in found(model, "10.3")


def test_dynamic_dimensions():
    model = graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        [vi("x", shape=("batch", 3, "h", 8))],
        [vi("y", shape=("batch", 3, "h", 8))],
    )
    result = found(model, max_batch=16)
    assert ("error", "dynamic-shape", "x") in result and ("info", "dynamic-batch", "x") in result


def test_plugins_and_custom_ops():
    nodes = [
        helper.make_node(
            "EfficientNMS_TRT", ["boxes", "scores"], ["n", "b", "s", "c"], name="nms_plugin", max_output_boxes=100
        ),
        helper.make_node("FusedConv", ["x"], ["y"], name="fused", domain="com.microsoft"),
    ]
    model = graph(nodes, [vi("boxes"), vi("scores"), vi("x")], [vi("n"), vi("b"), vi("s"), vi("c"), vi("y")])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    result = found(model)
    assert ("warning", "plugin", "nms_plugin") in result and ("info", "nms", "nms_plugin") in result
    assert ("error", "custom-op", "fused") in result


def test_nms_limits():
    consts = [
        numpy_helper.from_array(np.array([100], np.int64), "max_boxes"),
        numpy_helper.from_array(np.array([0.5], np.float32), "iou"),
    ]
    nms = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_boxes", "iou"], ["sel"], name="nms")
    inputs = [vi("boxes", shape=(1, 8732, 4)), vi("scores", shape=(1, 2, 8732))]
    ok = graph([nms], inputs, [vi("sel", TensorProto.INT64, ("n", 3))], consts)
    assert found(ok) >= {("warning", "nms", "nms")}
    assert not [f for f in check_tensorrt(ok).findings if f.severity == "error"]
    runtime = graph(
        [nms], [*inputs, vi("max_boxes", TensorProto.INT64, (1,))], [vi("sel", TensorProto.INT64, ("n", 3))], consts[1:]
    )
    assert ("error", "nms", "nms") in found(runtime)
    topk = graph(
        [helper.make_node("TopK", ["scores", "k"], ["v", "i"], name="topk")],
        [vi("scores", shape=(1, 8732))],
        [vi("v", shape=(1, 5000)), vi("i", TensorProto.INT64, (1, 5000))],
        [numpy_helper.from_array(np.array([5000], np.int64), "k")],
    )
    assert ("error", "topk", "topk") in found(topk)


# --- the command ---------------------------------------------------------------------------------


def test_cli_exit_codes_and_json(tmp_path, onnx_files):
    passed = run_cli("check", onnx_files["int8"], "--target", "tensorrt", "--trt-version", "10.3")
    assert passed.returncode == 0, passed.stderr
    assert "0 error(s)" in passed.stdout
    failed = invoke_cli("check", onnx_files["ort_uint8"], "--target", "tensorrt", "--json")
    assert failed.returncode == 1, failed.stderr
    doc = json.loads(failed.stdout)
    assert doc["would_build"] is False and doc["reports"][0]["errors"] > 0
    assert {"severity", "rule", "node", "message", "source"} <= set(doc["reports"][0]["findings"][0])
    onnx.save(qdq_model(add_without_dq=True), tmp_path / "slow.onnx")
    warned = invoke_cli("check", tmp_path / "slow.onnx", "--target", "tensorrt")
    assert warned.returncode == 0 and "warning: [qdq-residual-add] residual_add" in warned.stdout


def test_cli_checks_every_tensorrt_onnx_of_a_run_folder(run_folder):
    proc = invoke_cli("check", run_folder, "--target", "tensorrt", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [r["artifact"] for r in json.loads(proc.stdout)["reports"]] == ["model.onnx", "model.int8.onnx"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--target", "openvino"], "--target"), (["--trt-version", "ten"], "not a TensorRT version")],
)
def test_cli_user_errors(onnx_files, args, fragment):
    assert_user_error(run_cli("check", onnx_files["fp32"], *args), fragment)


def test_cli_not_onnx(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"garbage")
    assert_user_error_in_process("check", tmp_path / "x.onnx", fragments=("not a readable ONNX",))
    assert_user_error_in_process("check", tmp_path / "absent.onnx", fragments=("does not exist",))


# --- a file and its run folder read the same -----------------------------------------------------


def _run_with_float_add(tmp_path, onnx_files):
    """A run folder whose TensorRT-flavour Add was kept in float on purpose (the manifest says so)."""
    from .conftest import write_run_folder

    run = write_run_folder(tmp_path / "run", onnx_files)
    onnx.save(qdq_model(add_without_dq=True), run / "model.int8.onnx")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"]["int8"]["info"]["excluded"] = ["residual_add"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_a_file_and_its_run_folder_get_the_same_findings(tmp_path, onnx_files):
    run = _run_with_float_add(tmp_path, onnx_files)
    folder = json.loads(invoke_cli("check", run, "--json").stdout)["reports"]
    as_file = json.loads(invoke_cli("check", run / "model.int8.onnx", "--json").stdout)["reports"]
    by_name = {r["artifact"]: r["findings"] for r in folder}
    assert as_file[0]["findings"] == by_name["model.int8.onnx"]
    assert "qdq-residual-add" not in {f["rule"] for f in as_file[0]["findings"]}


def test_a_flavour_for_another_engine_says_so_first(tmp_path, onnx_files):
    import shutil

    run = _run_with_float_add(tmp_path, onnx_files)
    shutil.copy2(onnx_files["ort_uint8"], run / "model.int8.cpu.onnx")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["artifacts"].append(
        {
            "name": "onnx-int8-cpu",
            "path": "model.int8.cpu.onnx",
            "format": "onnx",
            "backend": "onnxruntime",
            "precision": "int8",
            "intended_for": "onnxruntime",
        }
    )
    (run / "manifest.json").write_text(json.dumps(manifest))
    proc = invoke_cli("check", run / "model.int8.cpu.onnx")
    assert proc.returncode == 1  # it still would not build
    first = proc.stdout.splitlines()[0]
    assert first.startswith("note:") and "onnxruntime" in first and str(run / "model.int8.onnx") in first
    assert "note:" not in invoke_cli("check", run / "model.int8.onnx").stdout


def test_the_note_comes_from_the_artifact_metadata_outside_a_run_folder(tmp_path, onnx_files):
    from edgecv.artifact_metadata import stamp_onnx

    path = tmp_path / "copied.onnx"
    onnx.save(onnx.load(str(onnx_files["ort_uint8"])), path)
    stamp_onnx(path, {"edgecv.precision": "int8", "edgecv.intended_for": "onnxruntime"})
    (note,) = check_target(path)[0].notes
    assert "model.int8.onnx" in note and "onnxruntime" in note


def test_a_graph_the_int8_stage_checked_is_not_checked_again(monkeypatch, tmp_path, onnx_files):
    """The INT8 stage holds the TensorRT flavour to the Q/DQ rules before writing it and records so;
    with the sha256 the manifest lists for the file, that record stands for a second check."""
    from edgecv.runfolder import sha256_file
    from edgecv.tensorrt import preflight

    from .conftest import write_run_folder

    run = write_run_folder(tmp_path / "run", onnx_files)
    int8 = run / "model.int8.onnx"
    onnx.save(qdq_model(), int8)
    checked = []
    rules = preflight.check_tensorrt_qdq
    monkeypatch.setattr(preflight, "check_tensorrt_qdq", lambda model, **kw: checked.append(1) or rules(model, **kw))
    before = check_target(int8)
    assert len(checked) == 1 and not [f for f in before[0].findings if f.rule.startswith("qdq-")]

    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"]["int8"]["info"]["flavours"] = {"tensorrt": {"tensorrt_rules": "passed"}}
    manifest["files"] = {"model.int8.onnx": {"sha256": sha256_file(int8)}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert [r.to_dict() for r in check_target(run)] == [r.to_dict() for r in check_target(run)]
    assert check_target(int8)[0].to_dict() == before[0].to_dict()
    assert len(checked) == 1

    edited = onnx.load(str(int8))
    edited.doc_string = "edited after the export"
    onnx.save(edited, int8)  # no longer the graph the INT8 stage checked
    check_target(int8)
    assert len(checked) == 2
