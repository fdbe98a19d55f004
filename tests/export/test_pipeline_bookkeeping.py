"""The pipeline's bookkeeping on fake stages (tests/export/fake_stages.py): reuse, --force, a changed
option or edgecv build, a tampered file, an interrupted write, the stages passed in."""

from __future__ import annotations

import json

import pytest

import edgecv
from tests.export.fake_stages import fake_stages

TINY = dict(width_mult=0.25, resolution=32)


def _export(run, stages, **options):
    return edgecv.export_model("mobilenetv1", out=run, stages=[*stages.values()], **TINY, **options)


def test_reuse_and_force(tmp_path):
    stages = fake_stages()
    first = _export(tmp_path, stages)
    mtime = (tmp_path / "model.onnx").stat().st_mtime_ns
    second = _export(tmp_path, stages)
    assert {s["status"] for s in second.manifest["stages"].values()} == {"reused"}
    assert (tmp_path / "model.onnx").stat().st_mtime_ns == mtime
    assert second.manifest["files"] == first.manifest["files"]
    assert second.manifest["artifacts"] == first.manifest["artifacts"]
    assert {name: s.runs for name, s in stages.items()} == {"export": 1, "simplify": 1, "openvino": 1, "int8": 0}
    # A changed option rebuilds what depends on it, and only that.
    third = _export(tmp_path, stages, atol=2e-4)
    assert third.manifest["stages"]["export"]["status"] == "reused"
    assert third.manifest["stages"]["simplify"]["status"] == "done"
    assert third.manifest["stages"]["openvino"]["status"] == "done"  # downstream of simplify
    forced = _export(tmp_path, stages, force=True)
    assert {s["status"] for s in forced.manifest["stages"].values()} == {"done"}


def test_a_different_edgecv_build_rebuilds(tmp_path, monkeypatch):
    # edgecv's version stays the same between commits of a branch: its source is part of the key.
    from edgecv.export import pipeline

    stages = fake_stages()
    _export(tmp_path, stages, backends=())
    build = pipeline._edgecv_build()
    assert len(build["source"]) == 64
    monkeypatch.setattr(pipeline, "_edgecv_build", lambda: {**build, "source": "changed"})
    again = _export(tmp_path, stages, backends=())
    assert {s["status"] for s in again.manifest["stages"].values()} == {"done"}


def test_tampered_file_is_rebuilt(tmp_path):
    stages = fake_stages()
    _export(tmp_path, stages, backends=())
    (tmp_path / "model.onnx").write_bytes(b"garbage")
    again = _export(tmp_path, stages, backends=())
    assert again.manifest["stages"]["simplify"]["status"] == "done"
    assert again.manifest["stages"]["export"]["status"] == "reused"
    assert again.manifest["files"]["model.onnx"]["size_bytes"] == (tmp_path / "model.onnx").stat().st_size


def test_interrupted_write_leaves_no_finished_file(tmp_path):
    stages = fake_stages()
    stages["simplify"].fail_while_writing = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        _export(tmp_path, stages, backends=())
    assert (tmp_path / "model.raw.onnx").exists()
    assert not (tmp_path / "model.onnx").exists()
    assert not [p for p in tmp_path.rglob("*") if ".partial-" in p.name]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "simplify" not in manifest["stages"]
    stages["simplify"].fail_while_writing = None
    resumed = _export(tmp_path, stages, backends=())
    assert resumed.manifest["stages"]["export"]["status"] == "reused"
    assert (tmp_path / "model.onnx").exists()


def test_stages_passed_in_are_run_in_dependency_order_and_recorded(tmp_path):
    stages = fake_stages()
    result = edgecv.export_model(
        "mobilenetv1", out=tmp_path, stages=list(reversed(stages.values())), int8=True, calib_size=8, **TINY
    )
    assert list(result.manifest["stages"]) == ["export", "simplify", "openvino", "int8"]
    assert [a.name for a in result.artifacts] == ["onnx-fp32", "openvino-fp32", "onnx-int8"]
    assert result.manifest["stages"]["simplify"]["info"] == {"wrote": ["model.onnx"], "warnings": []}
    assert result.manifest["caches"] == ["calibration/ranges.json"]
