"""``benchmark_target`` over a run folder: every artifact plus the PyTorch baseline, the manifest's
fidelity figures, batch sweeps, backend filters, skipped artifacts, isolation."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from edgecv.errors import BackendUnavailableError, InputMismatchError, InvalidOptionError
from edgecv.report import validate_results
from edgecv.runtime.benchmark import BenchObserver, benchmark_target

QUICK = {"warmup": 1, "iterations": 5}


class Recorder(BenchObserver):
    def __init__(self):
        self.events = []

    def job_start(self, job):
        self.events.append(("start", job.label))

    def progress(self, job, batch, done, fraction):
        self.events.append(("progress", job.label, fraction))

    def job_end(self, job, results):
        self.events.append(("end", job.label, len(results)))

    def skipped(self, label, reason):
        self.events.append(("skipped", label, reason))


def by_artifact(report):
    return {(r.artifact, r.batch): r for r in report.results}


def test_run_folder_in_process(static_run):
    observer = Recorder()
    report = benchmark_target(static_run, isolate=False, observer=observer, **QUICK)
    results = by_artifact(report)
    assert set(results) == {("pytorch", 1), ("onnx-fp32", 1), ("openvino-fp32", 1), ("onnx-int8-cpu", 1)}
    manifest = json.loads((static_run / "manifest.json").read_text())
    int8_record = next(a for a in manifest["artifacts"] if a["name"] == "onnx-int8-cpu")
    int8 = results[("onnx-int8-cpu", 1)]
    assert int8.fidelity == int8_record["fidelity"] and int8.precision == "int8" and int8.artifact_precision == "int8"
    assert int8.intended_for == "onnxruntime"  # labelled with the engine it was made for
    # Each ONNX row names its file by sha256, so `edgecv report` can line an engine built from it up
    # with it after the run folder has gone.
    for label in ("onnx-fp32", "onnx-int8-cpu"):
        record = next(a for a in manifest["artifacts"] if a["name"] == label)
        assert results[(label, 1)].source_sha256 == manifest["files"][record["path"]]["sha256"]
    assert results[("pytorch", 1)].source_sha256 is None
    torch_median = results[("pytorch", 1)].latency.median_ms
    for r in report.results:
        assert r.latency.count == 5 and r.load_s > 0 and r.size_bytes > 0
        assert r.speedup_vs_torch == pytest.approx(torch_median / r.latency.median_ms)
        assert r.memory["scope"] == "in-process" and r.memory["peak_rss_mb"] is None
    assert ("end", "onnx-fp32", 1) in observer.events
    assert [e for e in observer.events if e[0] == "progress"][-1][2] == 1.0
    doc = validate_results(json.loads(json.dumps(report.to_dict())))
    assert doc["machine"]["cpu"] and doc["versions"]["onnxruntime"] and doc["settings"]["iterations"] == 5


def test_isolated_run_reports_each_artifacts_own_peak(dynamic_run):
    import torch  # noqa: F401  (this process holds torch, the workers do not)

    from edgecv.runtime.memory import current_rss_mb

    report = benchmark_target(dynamic_run, backends=["onnxruntime", "openvino"], **QUICK)
    parent = current_rss_mb()
    assert {r.artifact for r in report.results} == {"onnx-fp32", "openvino-fp32"}
    for r in report.results:
        memory = r.memory
        assert memory["scope"] == "subprocess"
        # A fresh interpreter with one backend stays below this process, which has torch and both
        # backends loaded; a peak inherited from the parent (getrusage across exec) would not. Relative,
        # because absolute sizes differ between library versions and machines.
        assert memory["rss_before_load_mb"] < memory["rss_loaded_mb"] <= memory["peak_rss_mb"] < parent, (
            memory,
            parent,
        )


def test_batch_sweep_on_dynamic_artifacts(dynamic_run):
    report = benchmark_target(dynamic_run, batches=[1, 4], backends=["ort", "torch"], isolate=False, **QUICK)
    assert set(by_artifact(report)) == {(name, b) for name in ("pytorch", "onnx-fp32") for b in (1, 4)}
    for r in report.results:
        assert r.speedup_vs_torch is not None  # each compared with PyTorch at its own batch


def test_static_artifact_refuses_a_sweep(static_run):
    with pytest.raises(InputMismatchError, match="onnx-fp32 has a static batch of 1, asked for batch 4"):
        benchmark_target(static_run, batches=[1, 4], isolate=False, **QUICK)


def test_offline_scenario_uses_the_largest_batch(dynamic_run, static_run):
    dynamic = benchmark_target(dynamic_run, scenario="offline", backends=["ort"], isolate=False, **QUICK)
    assert {r.batch for r in dynamic.results} == {32}
    assert all(r.headline[0] == "throughput" for r in dynamic.results)
    static = benchmark_target(static_run, scenario="offline", backends=["ort"], isolate=False, baseline=False, **QUICK)
    assert {r.batch for r in static.results} == {1}


def test_precision_hint_goes_to_openvino_only(static_run):
    report = benchmark_target(static_run, precision="f32", isolate=False, **QUICK)
    precisions = {r.artifact: r.precision for r in report.results}
    assert precisions == {"pytorch": "fp32", "onnx-fp32": "fp32", "openvino-fp32": "fp32", "onnx-int8-cpu": "int8"}
    assert report.settings["precision_hint"] == "fp32"


def with_extra_artifact(run_dir, tmp_path, **record):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["artifacts"].append({**manifest["artifacts"][0], **record})
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_unknown_backend_in_manifest_is_skipped(tmp_path, static_run):
    run = with_extra_artifact(static_run, tmp_path, name="tflite-fp32", backend="tflite")
    report = benchmark_target(run, backends=["ort"], isolate=False, **QUICK)
    assert {"artifact": "tflite-fp32", "reason": "no edgecv runtime for backend 'tflite'"} in report.skipped


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_engine_in_a_run_folder_is_skipped_without_tensorrt(tmp_path, static_run):
    run = with_extra_artifact(
        static_run,
        tmp_path,
        name="tensorrt-fp16",
        backend="tensorrt",
        path="tensorrt/model.fp16.engine",
        format="tensorrt",
    )
    (run / "tensorrt").mkdir()
    (run / "tensorrt" / "model.fp16.engine").write_bytes(b"\0")
    report = benchmark_target(run, isolate=False, **QUICK)
    assert {"artifact": "tensorrt-fp16", "reason": "tensorrt is not installed"} in report.skipped
    assert "tensorrt-fp16" not in {r.artifact for r in report.results}
    with pytest.raises(BackendUnavailableError, match="pip install"):  # asked for by name: an error
        benchmark_target(run, backends=["tensorrt"], isolate=False, **QUICK)


def test_single_artifact_inside_a_run_folder_keeps_its_record(static_run):
    report = benchmark_target(static_run / "model.int8.cpu.onnx", isolate=False, **QUICK)
    (result,) = report.results
    assert result.artifact == "onnx-int8-cpu" and result.fidelity["top1_agreement"] is not None
    assert report.target["kind"] == "artifact"


def test_filters_and_bad_options(static_run):
    with pytest.raises(InvalidOptionError, match="unknown backend"):
        benchmark_target(static_run, backends=["tflite"], isolate=False, **QUICK)
    with pytest.raises(InvalidOptionError, match="threads"):
        benchmark_target(static_run, threads=0, isolate=False, **QUICK)
    with pytest.raises(InvalidOptionError, match="nothing to benchmark"):
        benchmark_target(static_run, backends=["tensorrt"], isolate=False, **QUICK)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_tensorrt_engine_without_tensorrt(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0")
    with pytest.raises(BackendUnavailableError, match="pip install"):
        benchmark_target(engine, **QUICK)


def test_fp16_weights_computed_in_fp32_are_explained(tmp_path, static_run):
    import openvino as ov

    run = with_extra_artifact(
        static_run,
        tmp_path,
        name="openvino-fp16",
        backend="openvino",
        format="openvino",
        precision="fp16",
        path="openvino/model.fp16.xml",
    )
    model = ov.Core().read_model(str(run / "openvino" / "model.xml"))
    ov.save_model(model, str(run / "openvino" / "model.fp16.xml"), compress_to_fp16=True)
    report = benchmark_target(run, backends=["openvino"], precision="f32", isolate=False, **QUICK)
    fp16 = by_artifact(report)[("openvino-fp16", 1)]
    assert fp16.artifact_precision == "fp16" and fp16.precision == "fp32"
    assert any("FP16-compressed weights" in n for n in fp16.notes)


def test_an_engine_names_the_onnx_its_sidecar_says_it_was_built_from(tmp_path):
    from edgecv.runtime.plan import _source_sha256
    from edgecv.runtime.targets import Artifact

    engine = tmp_path / "model.int8.engine"
    engine.write_bytes(b"plan")
    engine.with_suffix(".json").write_text(json.dumps({"source_onnx": "model.int8.onnx", "onnx_sha256": "ab" * 32}))
    assert _source_sha256(Artifact("tensorrt-int8", str(engine), "tensorrt"), {}) == "ab" * 32
    engine.with_suffix(".json").write_text("not json")
    assert _source_sha256(Artifact("tensorrt-int8", str(engine), "tensorrt"), {}) is None
