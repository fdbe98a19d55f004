"""The wrapper's overhead targets (`make benchmark`; timings, so not in the gated suite)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "wrapper_overhead.py"


@pytest.mark.benchmark
def test_wrapper_overhead_within_targets():
    spec = importlib.util.spec_from_file_location("wrapper_overhead", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    figures = script.run(rounds=9, iterations=150)
    ort, ov = figures["onnxruntime"], figures["openvino"]
    assert abs(ort["overhead"]) <= script.ORT_TARGET, ort
    assert abs(ov["overhead"]) <= script.OPENVINO_TARGET, ov
