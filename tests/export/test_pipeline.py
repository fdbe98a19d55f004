"""The export pipeline through the library API: every zoo model exports, simplifies and verifies;
reuse, --force, manifest hashes, atomic writes, custom modules."""

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
    result = edgecv.export(
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
    result = edgecv.export("mobilenetv2", out=tmp_path, width_mult=0.35, resolution=64, dynamic_batch=True)
    assert result.manifest["stages"]["simplify"]["info"]["verification"]["inputs"].endswith("batch 1 and 4")
    x4 = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    for name in ("onnx-fp32", "openvino-fp32"):
        with load(result.path(name)) as rt:
            assert rt.infer(x4[:1])["logits"].shape == (1, 1000)
            out4 = rt.infer(x4)["logits"]
            assert out4.shape == (4, 1000)
            np.testing.assert_allclose(rt.infer(x4[2:3])["logits"][0], out4[2], atol=1e-4)


def test_static_batch(tmp_path):
    result = edgecv.export("shufflenetv2", out=tmp_path, width_mult=0.5, resolution=64, batch=2, backends=())
    with load(result.path("onnx-fp32")) as rt:
        assert list(rt.inputs[0].shape) == [2, 3, 64, 64]


def test_reuse_and_force(tmp_path):
    kw = dict(out=tmp_path, width_mult=0.5, resolution=64)
    first = edgecv.export("mobilenetv1", **kw)
    mtime = (tmp_path / "model.onnx").stat().st_mtime_ns
    second = edgecv.export("mobilenetv1", **kw)
    assert {s["status"] for s in second.manifest["stages"].values()} == {"reused"}
    assert (tmp_path / "model.onnx").stat().st_mtime_ns == mtime
    assert second.manifest["files"] == first.manifest["files"]
    # A changed option rebuilds what depends on it, and only that.
    third = edgecv.export("mobilenetv1", **kw, atol=2e-4)
    assert third.manifest["stages"]["export"]["status"] == "reused"
    assert third.manifest["stages"]["simplify"]["status"] == "done"
    forced = edgecv.export("mobilenetv1", **kw, force=True)
    assert {s["status"] for s in forced.manifest["stages"].values()} == {"done"}


def test_a_different_edgecv_build_rebuilds(tmp_path, monkeypatch):
    # edgecv's version stays the same between commits of a branch: its source is part of the key.
    from edgecv.export import pipeline

    kw = dict(out=tmp_path, width_mult=0.5, resolution=64, backends=())
    edgecv.export("mobilenetv1", **kw)
    build = pipeline._edgecv_build()
    assert len(build["source"]) == 64
    monkeypatch.setattr(pipeline, "_edgecv_build", lambda: {**build, "source": "changed"})
    again = edgecv.export("mobilenetv1", **kw)
    assert {s["status"] for s in again.manifest["stages"].values()} == {"done"}


def test_tampered_file_is_rebuilt(tmp_path):
    kw = dict(out=tmp_path, width_mult=0.5, resolution=64, backends=())
    edgecv.export("mobilenetv1", **kw)
    (tmp_path / "model.onnx").write_bytes(b"garbage")
    again = edgecv.export("mobilenetv1", **kw)
    assert again.manifest["stages"]["simplify"]["status"] == "done"
    assert again.manifest["stages"]["export"]["status"] == "reused"


def test_manifest_hashes_match_files(tmp_path):
    result = edgecv.export("shufflenetv1", out=tmp_path, width_mult=0.5, resolution=64, fp16=True)
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


def test_interrupted_write_leaves_no_finished_file(tmp_path, monkeypatch):
    from edgecv.export import simplify as simplify_mod

    real = simplify_mod.simplify_onnx

    def dies_half_way(raw, out):
        real(raw, out)
        out.write_bytes(out.read_bytes()[:100])  # half a file on disk, as a crash would leave
        raise KeyboardInterrupt

    monkeypatch.setattr(simplify_mod, "simplify_onnx", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        edgecv.export("mobilenetv1", out=tmp_path, width_mult=0.25, resolution=32, backends=())
    assert (tmp_path / "model.raw.onnx").exists()
    assert not (tmp_path / "model.onnx").exists()
    assert not [p for p in tmp_path.rglob("*") if ".partial-" in p.name]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "simplify" not in manifest["stages"]
    monkeypatch.undo()
    resumed = edgecv.export("mobilenetv1", out=tmp_path, width_mult=0.25, resolution=32, backends=())
    assert resumed.manifest["stages"]["export"]["status"] == "reused"
    assert (tmp_path / "model.onnx").exists()


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU6(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


def test_custom_module_needs_and_uses_input_spec(tmp_path):
    with pytest.raises(InvalidOptionError, match="input_spec"):
        edgecv.export(TinyNet().eval(), out=tmp_path / "a")
    spec = InputSpec(height=48, width=64)
    result = edgecv.export(TinyNet().eval(), out=tmp_path / "b", input_spec=spec)
    assert result.manifest["model"]["custom"] is True
    with load(result.path("openvino-fp32")) as rt:
        assert rt.infer(np.zeros((1, 3, 48, 64), np.float32))["logits"].shape == (1, 5)


def test_verification_failure_names_the_stage(tmp_path):
    with pytest.raises(VerificationError) as err:
        edgecv.export("mobilenetv2", out=tmp_path, width_mult=0.35, resolution=64, atol=0.0, rtol=0.0)
    assert err.value.stage == "simplify" and "max abs" in str(err.value)
    assert not (tmp_path / "model.onnx").exists()


def test_output_path_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputPathError):
        edgecv.export("mobilenetv1", out=f)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="not empty"):
        edgecv.export("mobilenetv1", out=busy)


def test_default_run_folder_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = edgecv.export("mobilenet_v2", width_mult=0.5, resolution=64, backends=())
    assert result.run_dir.as_posix() == "runs/mobilenetv2-w0.5-r64"


def test_unknown_option_is_refused():
    with pytest.raises(InvalidOptionError, match="unknown export option"):
        edgecv.export("mobilenetv2", widht_mult=0.5)


def test_a_refused_int8_export_leaves_an_existing_run_alone(tmp_path, monkeypatch):
    from edgecv.errors import CalibrationDataError

    monkeypatch.setenv("HOME", str(tmp_path))  # "~/run" must be recognised as the existing folder
    edgecv.export("mobilenetv2", out="~/run", width_mult=0.35, resolution=64)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(CalibrationDataError):
        edgecv.export(
            "mobilenetv2", out="~/run", width_mult=0.35, resolution=64, int8=True, calib=str(tmp_path / "missing")
        )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before
