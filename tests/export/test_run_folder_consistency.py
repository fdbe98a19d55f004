"""A run folder holds exactly what its manifest lists. A re-export that would drop files of an
earlier export (fewer backends, no --int8) refuses unless --force; a re-export that fails at any
stage, is interrupted or is killed leaves no file its manifest does not answer for; eval figures
count only for the bytes they scored; temporary files of a killed writer do not pile up. The
exports run on fake stages (tests/export/fake_stages.py), except the TensorRT timing cache's."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import edgecv
from edgecv.errors import OutputPathError, StageError, VerificationError
from edgecv.runfolder import EVAL_FILE, MANIFEST_NAME
from tests.conftest import ROOT, assert_user_error_in_process
from tests.export.fake_stages import fake_stages

TINY = dict(width_mult=0.25, resolution=32)
TINY_ARGS = ("mobilenetv1", "--width-mult", "0.25", "--resolution", "32")


def _tree(run) -> set[str]:
    skip = {MANIFEST_NAME, EVAL_FILE}
    return {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and p.name not in skip}


def _manifest(run) -> dict:
    return json.loads((run / MANIFEST_NAME).read_text())


def assert_holds_what_it_lists(run) -> dict:
    """Every file is listed with its hash, every artifact's file is listed, nothing is pending."""
    m = _manifest(run)
    assert _tree(run) == set(m["files"]) | set(m["caches"]), (_tree(run), m["files"], m["caches"])
    for rel, rec in m["files"].items():
        assert hashlib.sha256((run / rel).read_bytes()).hexdigest() == rec["sha256"], rel
    assert {a["path"] for a in m["artifacts"]} <= set(m["files"])
    assert m["stale_files"] == []
    return m


def _export(run, stages=None, **options):
    stages = stages or fake_stages()
    return edgecv.export_model("mobilenetv1", out=run, stages=[*stages.values()], **TINY, **options)


def _snapshot(run) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_reexport_with_fewer_backends_refuses_then_force_replaces(tmp_path):
    run = tmp_path / "run"
    _export(run)
    before = _snapshot(run)
    assert "openvino/model.xml" in before
    assert_user_error_in_process(
        "export", *TINY_ARGS, "--backend", "onnxruntime", "--out", run, fragments=("openvino/model.xml", "--force")
    )
    assert _snapshot(run) == before
    forced = _export(run, backends=(), force=True)
    assert [a.name for a in forced.artifacts] == ["onnx-fp32"]
    assert not (run / "openvino").exists()
    assert_holds_what_it_lists(run)


def test_reexport_without_int8_refuses_then_force_removes_calibration(tmp_path):
    run = tmp_path / "run"
    first = _export(run, backends=(), int8=True, calib_size=8)
    assert "calibration/ranges.json" in first.manifest["caches"]
    before = _snapshot(run)
    with pytest.raises(OutputPathError, match=r"model\.int8\.onnx.*--force") as refused:
        _export(run, backends=())
    assert "calibration/ranges.json" in str(refused.value)
    assert _snapshot(run) == before
    _export(run, backends=(), force=True)
    m = assert_holds_what_it_lists(run)
    assert set(m["files"]) == {"model.raw.onnx", "model.onnx"} and m["caches"] == []
    assert not (run / "calibration").exists()


@pytest.mark.parametrize("where", ["simplify", "openvino", "ctrl-c"])
def test_failed_reexport_leaves_only_what_its_manifest_lists(tmp_path, where):
    run = tmp_path / "run"
    stages = fake_stages()
    _export(run, stages)
    if where == "simplify":
        stages["simplify"].fail = VerificationError("simplify", "differs from PyTorch")
        with pytest.raises(VerificationError):
            _export(run, stages, atol=0.0, rtol=0.0)
        listed = {"model.raw.onnx"}
    else:
        failing = stages["openvino"]
        failing.fail_while_writing = StageError("openvino", "broken") if where == "openvino" else KeyboardInterrupt()
        with pytest.raises(StageError if where == "openvino" else KeyboardInterrupt):
            _export(run, stages, force=True)
        listed = {"model.raw.onnx", "model.onnx"}
    m = assert_holds_what_it_lists(run)
    assert set(m["files"]) == listed
    assert not (run / "openvino").exists(), "the earlier export's IR must not outlive its manifest entry"
    assert m["stages"].get(where, {}).get("status") == ("failed" if where != "ctrl-c" else None)
    again = _export(run)
    assert {a.name for a in again.artifacts} == {"onnx-fp32", "openvino-fp32"}
    assert_holds_what_it_lists(run)


def test_int8_stage_that_fails_half_way_leaves_none_of_its_files(tmp_path):
    from edgecv.runfolder import INT8_ONNX, RANGES_FILE

    run = tmp_path / "run"
    stages = fake_stages()
    _export(run, stages, backends=())
    # It writes its ranges cache (which vouches for itself: it may stay) and its INT8 ONNX, then fails.
    stages["int8"].fail = StageError("int8", "quantizer crashed")
    with pytest.raises(StageError, match="quantizer crashed"):
        _export(run, stages, backends=(), int8=True, calib_size=8)
    m = assert_holds_what_it_lists(run)
    assert not (run / INT8_ONNX).exists()
    assert m["stages"]["int8"]["status"] == "failed"
    assert m["caches"] == [RANGES_FILE]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_killed_reexport_leaves_its_new_file_listed_as_stale(tmp_path):
    run = tmp_path / "run"
    _export(run, backends=())
    # Killed right after the rebuilt model.onnx is renamed into place, before the manifest records it.
    script = f"""
import os, signal, edgecv
from tests.export.fake_stages import fake_stages
stages = fake_stages()
stages["simplify"].after_write = lambda: os.kill(os.getpid(), signal.SIGKILL)
edgecv.export_model("mobilenetv1", out={str(run)!r}, stages=[*stages.values()], backends=(), atol=2e-4,
                    width_mult=0.25, resolution=32)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    m = _manifest(run)
    assert "model.onnx" in m["stale_files"] and "model.onnx" not in m["files"]
    assert m["artifacts"] == []
    assert _tree(run) <= set(m["files"]) | set(m["stale_files"])
    _export(run, backends=())
    assert_holds_what_it_lists(run)


def _eval_report(result):
    from edgecv.evaluate.records import EvalReport, EvalResult

    rows = [
        EvalResult(
            artifact=a.name,
            backend=a.backend,
            path=str(result.run_dir / a.path),
            artifact_precision=a.precision,
            precision=a.precision,
            intended_for=a.intended_for,
            task="classification",
            metrics={"top1": 0.5, "images": 10},
            batch=1,
            samples_ms=[],
            load_s=None,
            size_bytes=None,
            record=a.to_dict(),
        )
        for a in result.artifacts
    ]
    return EvalReport(target={}, data={"path": "digits"}, task="classification", input_spec={}, results=rows)


def test_eval_rows_go_with_the_artifacts_they_scored(tmp_path):
    from edgecv.evaluate.records import attach_accuracy, record_eval
    from edgecv.runfolder import scored_accuracy

    run = tmp_path / "run"
    stages = fake_stages()
    first = _export(run, stages)
    record_eval(run, _eval_report(first))
    both = {"onnx-fp32", "openvino-fp32"}
    assert set(scored_accuracy(run)) == both
    _export(run, stages)  # everything reused: the figures still hold
    assert set(scored_accuracy(run)) == both
    doc = attach_accuracy({"target": {"path": str(run)}, "results": [{"artifact": n} for n in sorted(both)]})
    assert all(row["accuracy"]["value"] == 0.5 for row in doc["results"])

    model = edgecv.create_model("mobilenetv1", **TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.save(model.state_dict(), tmp_path / "other.pth")
    _export(run, stages, backends=(), force=True, weights=str(tmp_path / "other.pth"))
    recorded = json.loads((run / EVAL_FILE).read_text())
    assert recorded["accuracy"] == {} and recorded["scored"] == {}
    doc = attach_accuracy({"target": {"path": str(run)}, "results": [{"artifact": "onnx-fp32"}]})
    assert "accuracy" not in doc["results"][0]


def test_eval_row_of_changed_bytes_is_not_attached(tmp_path):
    from edgecv.evaluate.records import attach_accuracy, record_eval

    run = tmp_path / "run"
    result = _export(run, backends=())
    record_eval(run, _eval_report(result))
    recorded = json.loads((run / EVAL_FILE).read_text())
    recorded["scored"]["onnx-fp32"]["digest"] = "0" * 64  # scored some other file
    (run / EVAL_FILE).write_text(json.dumps(recorded))
    doc = attach_accuracy({"target": {"path": str(run)}, "results": [{"artifact": "onnx-fp32"}]})
    assert "accuracy" not in doc["results"][0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(os.name != "posix", reason="process ids")
def test_stamping_uses_the_run_folders_temporary_files_and_clears_dead_ones(tmp_path, monkeypatch):
    import onnx

    from edgecv.artifact_metadata import read_metadata, stamp
    from tests.conftest import export_conv_onnx

    model = export_conv_onnx(tmp_path / "model.onnx")
    dead = tmp_path / f".partial-{_dead_pid()}-model.onnx"
    alive = tmp_path / f".partial-{os.getppid()}-model.onnx"
    dead.write_bytes(b"half")
    alive.write_bytes(b"being written")
    stamp(model, {"edgecv.task": "classification"})
    assert read_metadata(model)["edgecv.task"] == "classification"
    assert not dead.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.onnx", alive.name])

    def crashes(*args, **kwargs):
        raise OSError("disk full")

    before = model.read_bytes()
    monkeypatch.setattr(onnx, "save", crashes)
    with pytest.raises(OSError, match="disk full"):
        stamp(model, {"edgecv.task": "detection"})
    assert model.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.onnx", alive.name])


def test_tensorrt_timing_cache_is_listed_and_dropping_tensorrt_needs_force(tmp_path, monkeypatch):
    from tests.tensorrt_fake import install

    install(monkeypatch, "10.3.0")
    run = tmp_path / "run"
    edgecv.export_model("mobilenetv1", out=run, fp16=True, backends=("tensorrt",), **TINY)
    m = assert_holds_what_it_lists(run)
    assert "tensorrt/timing.cache" in m["caches"]
    with pytest.raises(OutputPathError, match="timing.cache"):
        edgecv.export_model("mobilenetv1", out=run, fp16=True, backends=(), **TINY)
    edgecv.export_model("mobilenetv1", out=run, fp16=True, backends=(), force=True, **TINY)
    assert not (run / "tensorrt").exists()
    assert_holds_what_it_lists(run)
