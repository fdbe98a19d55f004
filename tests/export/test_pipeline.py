"""The export pipeline through the library API with its real stages: every zoo model exports,
simplifies and verifies; manifest hashes, custom modules, refusals. Reuse, --force, tampering and
interrupted writes run on fake stages (test_pipeline_bookkeeping.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

import edgecv
from edgecv.errors import InvalidOptionError, OutputPathError, VerificationError
from edgecv.models import InputSpec
from edgecv.runtime import load

CONFIGS = [(0.5, 64), (1.0, 96)]


CLASSIFIERS = [n for n in edgecv.list_models() if edgecv.models.get_entry(n).task == "classification"]


@pytest.mark.parametrize("width,resolution", CONFIGS)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_zoo_model_exports_and_verifies(tmp_path, name, width, resolution):
    model = edgecv.create_model(name, width_mult=width, resolution=resolution)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    result = edgecv.export_model(
        name, out=tmp_path / "run", width_mult=width, resolution=resolution, weights=str(tmp_path / "w.pth")
    )
    m = result.manifest
    assert m["stages"]["export"]["status"] == "done"
    assert m["stages"]["simplify"]["info"]["nodes_after"] <= m["stages"]["simplify"]["info"]["nodes_before"]
    assert {a.name for a in result.artifacts} == {"onnx-fp32", "openvino-fp32"}
    for a in result.artifacts:
        v = a.verification
        assert v["passed"] and v["n_inputs"] >= 4, v
        out = v["outputs"][0]
        assert out["cosine"] > 0.99999 and out["top1_agreement"] == 1.0
    # Independently of the pipeline's own check: a fresh input through every artifact vs PyTorch.
    x = np.random.default_rng(1).standard_normal((1, 3, resolution, resolution)).astype(np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    for a in result.artifacts:
        with load(result.run_dir / a.path, backend=a.backend, precision="f32") as rt:
            np.testing.assert_allclose(rt.infer(x)["logits"], ref, atol=1e-4, rtol=1e-3)


def test_dynamic_batch_runs_at_1_and_4(tmp_path):
    result = edgecv.export_model("mobilenetv2", out=tmp_path, width_mult=0.35, resolution=64, dynamic_batch=True)
    assert result.manifest["stages"]["simplify"]["info"]["verification"]["inputs"].endswith("batch 1 and 4")
    x4 = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    for name in ("onnx-fp32", "openvino-fp32"):
        with load(result.path(name)) as rt:
            assert rt.infer(x4[:1])["logits"].shape == (1, 1000)
            out4 = rt.infer(x4)["logits"]
            assert out4.shape == (4, 1000)
            np.testing.assert_allclose(rt.infer(x4[2:3])["logits"][0], out4[2], atol=1e-4)


def test_static_batch(tmp_path):
    result = edgecv.export_model("shufflenetv2", out=tmp_path, width_mult=0.5, resolution=64, batch=2, backends=())
    with load(result.path("onnx-fp32")) as rt:
        assert list(rt.inputs[0].shape) == [2, 3, 64, 64]


def test_manifest_hashes_match_files(tmp_path):
    result = edgecv.export_model("shufflenetv1", out=tmp_path, width_mult=0.5, resolution=64, fp16=True)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["schema"] == "edgecv.manifest/1"
    assert {"python", "torch", "onnx", "onnxruntime", "openvino"} <= set(manifest["versions"])
    assert set(manifest["files"]) >= {
        "model.raw.onnx",
        "model.onnx",
        "openvino/model.xml",
        "openvino/model.bin",
        "openvino/model.fp16.xml",
    }
    for rel, rec in manifest["files"].items():
        data = (tmp_path / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rec["sha256"] and len(data) == rec["size_bytes"]
    for stage in manifest["stages"].values():
        assert stage["wall_s"] >= 0
    assert manifest["input_spec"]["shape"] == [1, 3, 64, 64]
    assert "openvino-fp16" in {a.name for a in result.artifacts}
    assert manifest["model"]["random_weights"] is True
    assert any("random weights" in w for w in manifest["warnings"])


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU6(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def test_custom_module_needs_and_uses_input_spec(tmp_path):
    with pytest.raises(InvalidOptionError, match="input_spec"):
        edgecv.export_model(TinyNet().eval(), out=tmp_path / "a")
    spec = InputSpec(height=48, width=64)
    result = edgecv.export_model(TinyNet().eval(), out=tmp_path / "b", input_spec=spec)
    assert result.manifest["model"]["custom"] is True
    with load(result.path("openvino-fp32")) as rt:
        assert rt.infer(np.zeros((1, 3, 48, 64), np.float32))["logits"].shape == (1, 5)


def test_verification_failure_names_the_stage(tmp_path):
    with pytest.raises(VerificationError) as err:
        edgecv.export_model("mobilenetv2", out=tmp_path, width_mult=0.35, resolution=64, atol=0.0, rtol=0.0)
    assert err.value.stage == "simplify" and "max abs" in str(err.value)
    assert not (tmp_path / "model.onnx").exists()


def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputPathError):
        edgecv.export_model("mobilenetv1", out=f)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="not empty"):
        edgecv.export_model("mobilenetv1", out=busy)


def test_default_run_folder_name(tmp_path, monkeypatch):
    from tests.export.fake_stages import fake_stages

    monkeypatch.chdir(tmp_path)
    result = edgecv.export_model("mobilenet_v2", width_mult=0.5, resolution=64, stages=[*fake_stages().values()])
    assert result.run_dir.as_posix() == "runs/mobilenetv2-w0.5-r64"


def test_unknown_option_is_refused():
    with pytest.raises(InvalidOptionError, match="unknown export option"):
        edgecv.export_model("mobilenetv2", widht_mult=0.5)


def test_a_refused_int8_export_leaves_an_existing_run_alone(tmp_path, monkeypatch):
    from edgecv.errors import CalibrationDataError
    from tests.export.fake_stages import fake_stages

    monkeypatch.setenv("HOME", str(tmp_path))  # "~/run" must be recognised as the existing folder
    edgecv.export_model("mobilenetv2", out="~/run", width_mult=0.35, resolution=64, stages=[*fake_stages().values()])
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(CalibrationDataError):
        edgecv.export_model(
            "mobilenetv2", out="~/run", width_mult=0.35, resolution=64, int8=True, calib=str(tmp_path / "missing")
        )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
