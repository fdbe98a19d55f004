"""Every backend of one benchmark is timed on the same inputs: a detector's PyTorch baseline gets the
same photographs as its ONNX artifact, and the results record what each row was fed."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict

import pytest
from torch import nn

import edgecv
from edgecv.runtime.benchmark import BenchJob, benchmark_target
from edgecv.runtime.plan import plan_jobs


@pytest.fixture(scope="module")
def detector_run(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: fine for timing
        result = edgecv.export_model(
            "ssdlite", out=tmp_path_factory.mktemp("ssdlite") / "run", resolution=128, backends=("onnxruntime",)
        )
    return result.run_dir


def test_detector_baseline_and_artifact_get_the_same_photographs(detector_run):
    report = benchmark_target(detector_run, warmup=1, iterations=2, isolate=False)
    rows = {r.backend: r for r in report.results}
    assert set(rows) == {"torch", "onnxruntime"}
    assert {r.inputs["kind"] for r in rows.values()} == {"photographs"}
    assert rows["torch"].inputs["sha256"] == rows["onnxruntime"].inputs["sha256"]
    assert all(any(n.startswith("inputs: sample photographs") for n in r.notes) for r in rows.values())


def test_every_job_of_a_run_folder_carries_its_input_spec(detector_run):
    _, jobs, _ = plan_jobs(detector_run, batches=None, backends=None, threads=None, precision=None, scenario="offline")
    manifest = json.loads((detector_run / "manifest.json").read_text())
    assert [j.backend for j in jobs] == ["torch", "onnxruntime"]
    assert all(j.input_spec == manifest["input_spec"] for j in jobs)
    # The worker process rebuilds the job from JSON.
    assert BenchJob(**json.loads(json.dumps(asdict(jobs[0])))) == jobs[0]


def test_torch_runtime_exposes_its_module_read_only():
    with edgecv.runtime.load("ssdlite", backend="torch", resolution=128) as rt:
        assert isinstance(rt.model, nn.Module) and rt.model.background_class == 0
        assert rt.input_spec.task == "detection"
        with pytest.raises(AttributeError):
            rt.model = nn.Identity()
    assert getattr(rt, "model", None) is None  # released on close


def test_zoo_detector_alone_is_timed_on_photographs():
    with edgecv.runtime.load("ssdlite", backend="torch", resolution=128) as rt:
        result = edgecv.runtime.benchmark.benchmark(rt, warmup=1, iterations=1)
    assert result.inputs["kind"] == "photographs"
