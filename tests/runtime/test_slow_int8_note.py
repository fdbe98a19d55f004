"""An INT8 artifact that runs no faster than its backend's FP32 artifact says so in the report,
naming the fastest artifact; one that is faster gets no note."""

from __future__ import annotations

from edgecv.runtime.benchmark import note_slow_int8
from edgecv.runtime.stats import LatencyStats
from edgecv.runtime.timing import BenchResult


def _result(artifact: str, backend: str, precision: str, ms: float, intended_for: str | None = None) -> BenchResult:
    samples_ns = [int(ms * 1e6)] * 20
    return BenchResult(
        artifact=artifact,
        backend=backend,
        scenario="single-stream",
        batch=1,
        latency=LatencyStats.from_ns(samples_ns),
        throughput_ips=1000.0 / ms,
        samples_ms=[ms] * 20,
        warmup=5,
        device="cpu",
        artifact_precision=precision,
        intended_for=intended_for or backend,
    )


def test_a_slower_int8_artifact_is_named_with_the_fastest_one():
    results = [
        _result("pytorch", "torch", "fp32", 0.5),  # the eager baseline never counts as "the fastest artifact"
        _result("onnx-fp32", "onnxruntime", "fp32", 0.9),
        _result("onnx-int8", "onnxruntime", "int8", 3.0, intended_for="tensorrt"),
        _result("onnx-int8-cpu", "onnxruntime", "int8", 1.45),
        _result("openvino-fp32", "openvino", "fp32", 1.2),
        _result("openvino-int8", "openvino", "int8", 0.8),
    ]
    note_slow_int8(results)
    notes = {r.artifact: r.notes for r in results}
    [note] = notes["onnx-int8-cpu"]
    assert note.startswith("onnx-int8-cpu: INT8 no faster than onnx-fp32")
    assert "p90 1.45 ms against p90 0.90 ms" in note
    assert note.endswith("the fastest artifact here is openvino-int8 (p90 0.80 ms)")
    # Faster than its FP32: nothing to say. The TensorRT flavour on ONNX Runtime is a reference figure.
    assert notes["openvino-int8"] == [] and notes["onnx-int8"] == []


def test_a_tie_counts_as_no_faster():
    results = [
        _result("openvino-fp32", "openvino", "fp32", 0.74),
        _result("openvino-int8", "openvino", "int8", 0.74),
    ]
    note_slow_int8(results)
    assert results[0].notes == []
    assert results[1].notes == [
        "openvino-int8: INT8 no faster than openvino-fp32 on this machine (p90 0.74 ms against p90 0.74 ms); "
        "the fastest artifact here is openvino-fp32 (p90 0.74 ms)"
    ]
