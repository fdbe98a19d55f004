"""One resolver turns what a user names (a run folder, an artifact file, a zoo model) into the
artifacts to load, for the benchmark and for eval alike."""

from __future__ import annotations

import json

import pytest

from edgecv.errors import ArtifactError
from edgecv.runfolder import MANIFEST_NAME, SCHEMA
from edgecv.runtime.targets import resolve_target, wanted_backends


def _run_folder(tmp_path, artifacts):
    run = tmp_path / "run"
    run.mkdir()
    for a in artifacts:
        (run / a["path"]).write_bytes(b"x")
    manifest = {"schema": SCHEMA, "model": {"name": "mobilenetv2"}, "artifacts": artifacts}
    (run / MANIFEST_NAME).write_text(json.dumps(manifest))
    return run


ARTIFACTS = [
    {"name": "onnx-fp32", "path": "model.onnx", "backend": "onnxruntime"},
    {"name": "openvino-fp32", "path": "model.xml", "backend": "openvino"},
    {"name": "engine", "path": "model.plan", "backend": "mystery"},
]


def test_a_run_folder_lists_what_a_runtime_runs(tmp_path):
    run = _run_folder(tmp_path, ARTIFACTS)
    target = resolve_target(run, None)
    assert target.kind == "run-folder" and target.run_dir == run
    assert [(a.label, a.backend) for a in target.artifacts] == [
        ("onnx-fp32", "onnxruntime"),
        ("openvino-fp32", "openvino"),
    ]
    assert target.artifacts[0].source == str(run / "model.onnx")
    assert target.skipped == [{"artifact": "engine", "reason": "no edgecv runtime for backend 'mystery'"}]
    assert target.model == {"name": "mobilenetv2"}
    kept = resolve_target(run, wanted_backends(["openvino"])).artifacts
    assert [a.label for a in kept] == ["openvino-fp32"]


def test_a_missing_listed_file_is_an_error(tmp_path):
    run = _run_folder(tmp_path, ARTIFACTS[:1])
    (run / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        resolve_target(run, None)


def test_an_artifact_in_a_run_folder_carries_its_record(tmp_path):
    run = _run_folder(tmp_path, ARTIFACTS[:1])
    target = resolve_target(run / "model.onnx", None)
    assert target.kind == "artifact" and target.run_dir == run
    [artifact] = target.artifacts
    assert (artifact.label, artifact.backend, artifact.record["path"]) == ("onnx-fp32", "onnxruntime", "model.onnx")


def test_a_zoo_name_runs_in_pytorch():
    target = resolve_target("mobilenetv2", None)
    assert target.kind == "model" and target.manifest is None
    [artifact] = target.artifacts
    assert (artifact.label, artifact.source, artifact.backend) == ("mobilenetv2", "mobilenetv2", "torch")
