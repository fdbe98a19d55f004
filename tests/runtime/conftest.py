from __future__ import annotations

import pytest

from tests.runtime.fake_run import make_run_folder


@pytest.fixture(scope="session")
def static_run(tmp_path_factory):
    """Static batch 1: ONNX FP32, OpenVINO FP32 and a calibrated INT8 Q/DQ ONNX with fidelity figures."""
    return make_run_folder(tmp_path_factory.mktemp("static-run"), int8=True)


@pytest.fixture(scope="session")
def dynamic_run(tmp_path_factory):
    """Dynamic batch: ONNX FP32 and OpenVINO FP32."""
    return make_run_folder(tmp_path_factory.mktemp("dynamic-run"), dynamic_batch=True)
