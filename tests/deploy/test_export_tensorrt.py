"""`edgecv export --backend tensorrt` against the fake TensorRT: strongly typed engines from the FP16
copies, verified against PyTorch (the fake runs each plan's ONNX in ONNX Runtime), the timing cache
kept in the run folder, and the TensorRT preflight's findings in the manifest."""

from __future__ import annotations

import json

import pytest

import edgecv
from tests.tensorrt_fake import install


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("version", ["10.3.0", "11.1.0"])
def test_export_tensorrt_engines(monkeypatch, tmp_path, version):
    trt = install(monkeypatch, version)
    run = tmp_path / "run"
    result = edgecv.export("mobilenetv2", out=run, width_mult=0.35, resolution=64, dynamic_batch=True, fp16=True,
                           int8=True, calib_size=32, backends=("tensorrt",))
    manifest = json.loads((run / "manifest.json").read_text())
    artifacts = {a["name"]: a for a in manifest["artifacts"]}
    assert {"tensorrt-fp16", "tensorrt-int8"} <= set(artifacts)
    assert artifacts["tensorrt-fp16"]["verification"]["passed"] is True
    for precision, source in (("fp16", "model.fp16.onnx"), ("int8", "model.int8.fp16.onnx")):
        sidecar = json.loads((run / "tensorrt" / f"model.{precision}.json").read_text())
        assert sidecar["strongly_typed"] and sidecar["source_onnx"] == source and sidecar["builder_flags"] == []
        assert sidecar["profile"]["max"][0] == 32 and (run / source).is_file()
        assert sidecar["metadata"]["edgecv.task"] == "classification"  # the plan itself stays untouched
    assert (run / "tensorrt" / "timing.cache").is_file()
    assert trt._fake.calls.find("set_flag") == []
    preflight = manifest["stages"]["tensorrt-preflight"]["info"]
    assert preflight["trt_version"] == version
    assert set(preflight["reports"]) == {"model.onnx", "model.int8.onnx"}
    assert all(r["would_build"] for r in preflight["reports"].values())
    assert result.run_dir == run
