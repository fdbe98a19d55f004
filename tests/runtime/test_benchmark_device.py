"""`edgecv benchmark --device`: one device for every backend or one per backend, checked against what
each backend takes, carried to each artifact's load and recorded in results.json; and the plan of a
`--threads` sweep."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from edgecv.errors import BackendUnavailableError, InvalidOptionError
from edgecv.runtime.benchmark import benchmark_target
from edgecv.runtime.plan import PlanOptions, plan_jobs
from edgecv.runtime.registry import canonical_device
from tests.conftest import assert_user_error_in_process

QUICK = ("--warmup", "1", "--iterations", "2")


def _ort_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _openvino_has_gpu() -> bool:
    import openvino

    return any(d.startswith("GPU") for d in openvino.Core().available_devices)


def _jobs(target, device):
    return plan_jobs(
        target, batches=None, backends=None, threads=None, precision=None, scenario="single-stream", device=device
    )[1]


@pytest.mark.parametrize(
    "backend, given, canonical",
    [
        ("torch", "CUDA:1", "cuda:1"),
        ("pytorch", "cpu", "cpu"),
        ("ort", "cuda", "cuda"),
        ("onnxruntime", "TensorRT", "tensorrt"),
        ("ov", "gpu", "GPU"),
        ("openvino", "gpu.1", "GPU.1"),
        ("trt", "cuda:0", "cuda:0"),
    ],
)
def test_device_names_per_backend(backend, given, canonical):
    assert canonical_device(backend, given) == canonical


@pytest.mark.parametrize(
    "backend, device", [("torch", "GPU"), ("openvino", "cuda"), ("onnxruntime", "npu"), ("tensorrt", "cpu")]
)
def test_device_a_backend_cannot_use_is_refused(backend, device):
    with pytest.raises(InvalidOptionError, match=f"{backend} cannot run on device"):
        canonical_device(backend, device)


def test_one_device_per_backend_reaches_each_job(dynamic_run):
    jobs = _jobs(dynamic_run, "torch=cuda:1,ov=gpu")
    devices = {j.backend: j.device for j in jobs}
    assert devices == {"torch": "cuda:1", "onnxruntime": None, "openvino": "GPU"}


def test_one_device_for_all_is_spelled_per_backend(dynamic_run):
    devices = {j.backend: j.device for j in _jobs(dynamic_run, "cpu")}
    assert devices == {"torch": "cpu", "onnxruntime": "cpu", "openvino": "CPU"}


def test_device_is_recorded_in_results(dynamic_run):
    report = benchmark_target(
        dynamic_run, warmup=1, iterations=2, isolate=False, device="cpu", backends=["torch", "onnxruntime"]
    )
    doc = report.to_dict()
    assert doc["settings"]["device"] == "cpu"
    assert {(r["backend"], r["device"]) for r in doc["results"]} == {("torch", "cpu"), ("onnxruntime", "cpu")}
    json.dumps(doc)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_missing_cuda_for_a_named_backend_is_an_error_not_a_skip(dynamic_run):
    plan = PlanOptions(device="torch=cuda", isolate=False)
    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        benchmark_target(dynamic_run, plan=plan, warmup=1, iterations=2)


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("--device", "tpu"), ("cannot run on device 'tpu'",)),
        (("--device", "cuda"), ("openvino cannot run on device 'cuda'", "--backend")),
        (("--device", "torch=GPU"), ("torch cannot run on device 'GPU'", "cpu, cuda[:N]")),
        (("--device", "tflite=cpu"), ("unknown backend 'tflite'",)),
        (("--device", "torch="), ("BACKEND=DEVICE",)),
    ],
)
def test_bad_device_exits_2_with_one_line(dynamic_run, args, fragments):
    assert_user_error_in_process("benchmark", str(dynamic_run), *QUICK, *args, fragments=fragments)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_torch_on_cuda_without_cuda_exits_2(dynamic_run):
    assert_user_error_in_process(
        "benchmark", str(dynamic_run), *QUICK, "--backend", "torch", "--device", "cuda", fragments=("no CUDA device",)
    )


def test_onnxruntime_on_cuda_without_its_provider_exits_2(dynamic_run):
    if _ort_has_cuda():
        pytest.skip("this onnxruntime build has the CUDA provider")
    assert_user_error_in_process(
        "benchmark",
        str(dynamic_run / "model.onnx"),
        *QUICK,
        "--device",
        "cuda",
        fragments=("onnxruntime on cuda", "onnxruntime-gpu"),
    )


def test_openvino_on_a_missing_gpu_exits_2(dynamic_run):
    if _openvino_has_gpu():
        pytest.skip("OpenVINO sees a GPU here")
    assert_user_error_in_process(
        "benchmark",
        str(dynamic_run / "openvino" / "model.xml"),
        *QUICK,
        "--device",
        "GPU",
        fragments=("openvino on GPU", "sees no GPU device"),
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_detector_baseline_benchmarks_on_cuda_from_the_cli(tmp_path):
    from tests.conftest import run_cli

    proc = run_cli("benchmark", "yolox", *QUICK, "--device", "cuda", "--json")
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["results"]
    assert row["device"].startswith("cuda") and row["inputs"]["kind"] == "photographs"


def test_onnxruntime_falling_back_to_the_cpu_is_an_error_when_a_device_was_asked_for():
    from types import SimpleNamespace

    from edgecv.runtime.onnxruntime import OnnxRuntimeRuntime

    asked = SimpleNamespace(device="cuda")
    with pytest.raises(BackendUnavailableError, match="fell back to CPUExecutionProvider"):
        OnnxRuntimeRuntime._check_provider(asked, "CUDAExecutionProvider", "CPUExecutionProvider")
    OnnxRuntimeRuntime._check_provider(SimpleNamespace(device=None), "CUDAExecutionProvider", "CPUExecutionProvider")


def test_a_thread_sweep_plans_every_cpu_artifact_at_each_count_and_an_engine_once(static_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(static_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "tensorrt").mkdir()
    (run / "tensorrt" / "model.fp16.engine").write_bytes(b"\0" * 8)
    manifest["artifacts"].append(
        {
            "name": "tensorrt-fp16",
            "path": "tensorrt/model.fp16.engine",
            "format": "tensorrt",
            "backend": "tensorrt",
            "precision": "fp16",
            "batch": 1,
        }
    )
    (run / "manifest.json").write_text(json.dumps(manifest))
    _, jobs, _ = plan_jobs(run, batches=None, backends=None, threads=(4, 1), precision=None, scenario="single-stream")
    assert [(j.label, j.threads) for j in jobs] == [
        ("pytorch", 4), ("onnx-fp32", 4), ("openvino-fp32", 4), ("onnx-int8-cpu", 4), ("tensorrt-fp16", None),
        ("pytorch", 1), ("onnx-fp32", 1), ("openvino-fp32", 1), ("onnx-int8-cpu", 1),
    ]  # fmt: skip
    assert PlanOptions(threads=[2, 2]).threads == (2,) and PlanOptions(threads=3).threads == 3
    for bad in ([1, 0], [], ["2"]):
        with pytest.raises(InvalidOptionError, match="threads"):
            PlanOptions(threads=bad)


def test_a_sweep_compares_each_row_with_pytorch_at_its_own_thread_count():
    from edgecv.runtime.benchmark import BenchResult, add_speedups
    from edgecv.runtime.stats import LatencyStats

    def timed(artifact, backend, ms, threads):
        stats = LatencyStats.from_ns([int(ms * 1e6)] * 5)
        return BenchResult(artifact, backend, "single-stream", 1, stats, 1000 / ms, [ms] * 5, 1, threads=threads)

    rows = [timed("pytorch", "torch", 8.0, 1), timed("pytorch", "torch", 4.0, 2)]
    rows += [timed("onnx-fp32", "onnxruntime", 2.0, 1), timed("onnx-fp32", "onnxruntime", 2.0, 2)]
    rows += [timed("tensorrt-fp16", "tensorrt", 0.5, None)]
    add_speedups(rows, by_threads=True)
    assert [r.speedup_vs_torch for r in rows] == [1.0, 1.0, 4.0, 2.0, None]  # no one baseline for the engine
    # Without a sweep each backend's default count is whatever it read back: one baseline for all.
    rows = [timed("pytorch", "torch", 8.0, 16), timed("onnx-fp32", "onnxruntime", 2.0, 2), rows[-1]]
    add_speedups(rows)
    assert [r.speedup_vs_torch for r in rows] == [1.0, 4.0, 16.0]
