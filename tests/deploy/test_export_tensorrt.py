"""`edgecv export --backend tensorrt` against the fake TensorRT: strongly typed engines from the FP16
copies, verified against PyTorch (the fake runs each plan's ONNX in ONNX Runtime), the timing cache
kept in the run folder, and the TensorRT preflight's findings in the manifest."""

from __future__ import annotations

import json

import pytest

import edgecv
from edgecv.deploy.bundle import make_bundle
from tests.tensorrt_fake import install


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("version", ["10.3.0", "11.1.0"])
def test_export_tensorrt_engines(monkeypatch, tmp_path, version):
    trt = install(monkeypatch, version)
    checked = _count_qdq_rule_checks(monkeypatch)
    run = tmp_path / "run"
    result = edgecv.export_model(
        "mobilenetv2",
        out=run,
        width_mult=0.35,
        resolution=64,
        dynamic_batch=True,
        fp16=True,
        int8=True,
        calib_size=32,
        backends=("tensorrt",),
    )
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
    # The INT8 stage checked model.int8.onnx; the preflight stage took its record instead.
    assert len(checked) == 1
    make_bundle(run, tmp_path / "bundle")
    # The bundle checks model.int8.fp16.onnx, which nothing had checked, and reuses the record too.
    assert len(checked) == 2


def _count_qdq_rule_checks(monkeypatch) -> list[int]:
    from edgecv.calibration import run as calibration_run
    from edgecv.tensorrt import preflight

    checked: list[int] = []
    for module in (calibration_run, preflight):
        rules = module.check_tensorrt_qdq
        monkeypatch.setattr(
            module, "check_tensorrt_qdq", lambda model, _rules=rules, **kw: checked.append(1) or _rules(model, **kw)
        )
    return checked


def test_export_flags_reach_the_builder(monkeypatch, tmp_path):
    install(monkeypatch, "10.3.0", gpu={"name": "Orin (fake)", "major": 8, "minor": 7, "count": 1, "dla_cores": 2})
    run = tmp_path / "run"
    edgecv.export_model(
        "mobilenetv2",
        out=run,
        width_mult=0.35,
        resolution=64,
        dynamic_batch=True,
        fp16=True,
        backends=("tensorrt",),
        max_batch=8,
        dla_core=0,
        workspace_bytes=256 << 20,
    )
    sidecar = json.loads((run / "tensorrt" / "model.fp16.json").read_text())
    assert sidecar["profile"]["max"][0] == 8
    assert "GPU_FALLBACK" in sidecar["builder_flags"] and sidecar.get("dla_core") == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--max-batch", "8"], "apply with --backend tensorrt"),
        (["--backend", "tensorrt", "--max-batch", "8"], "needs --dynamic-batch"),
        (["--dla-core", "-1", "--backend", "tensorrt"], "--dla-core must be"),
    ],
)
def test_tensorrt_flags_refused_with_one_line(monkeypatch, tmp_path, args, fragment):
    from typer.testing import CliRunner

    from edgecv.cli import app

    install(monkeypatch, "10.3.0")
    res = CliRunner().invoke(
        app, ["export", "mobilenetv2", "-a", "0.35", "-r", "64", *args, "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 2 and fragment in res.output, res.output
    assert not (tmp_path / "r").exists()
