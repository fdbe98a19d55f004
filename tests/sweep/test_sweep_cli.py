"""`edgecv sweep` end to end with the local executor: real exports of a tiny MobileNetV2, a point
that fails while the others go on, resuming after an interrupt, and reuse on a rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT, assert_user_error_in_process, run_cli

pytestmark = pytest.mark.slow
FIXTURE = ROOT / "tests" / "fixtures" / "digits_mobilenetv2_a0.35_r32.pth"
TINY = ("mobilenetv2", "--resolution", "32", "--num-classes", "10", "-n", "5", "--warmup", "1")


def records(out):
    return {p.stem: json.loads(p.read_text()) for p in (out / "points").glob("*.json")}


def test_sweep_measures_records_a_failing_point_and_reuses_on_rerun(tmp_path):
    weights = tmp_path / "ckpt"
    weights.mkdir()
    (weights / "mobilenetv2_a0.35.pth").write_bytes(FIXTURE.read_bytes())
    (weights / "mobilenetv2_a0.5.pth").write_bytes(b"not a checkpoint")  # this point's export fails
    rng = np.random.default_rng(0)
    data = tmp_path / "val.npz"
    np.savez(data, inputs=rng.standard_normal((16, 3, 32, 32)).astype(np.float32), labels=np.arange(16) % 10)
    out = tmp_path / "sweep"
    args = (
        "sweep", *TINY, "--width-mult", "0.35,0.5", "--precision", "fp32,int8", "--calib-size", "4",
        "--weights", str(weights / "{model}_a{width_mult}.pth"), "--data", str(data),
        "--max-latency", "1s", "--out", str(out), "--json",
    )  # fmt: skip
    proc = run_cli(*args)
    assert proc.returncode == 1, proc.stderr  # a failed point: the sweep finished, and says so
    assert "2 of 4 points failed" in proc.stderr and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert {f["point"] for f in doc["failed"]} == {"mobilenetv2-w0.5-r32-fp32", "mobilenetv2-w0.5-r32-int8"}
    assert all(f["stage"] == "export" for f in doc["failed"])
    rows = {(r["point"], r["backend"]): r for r in doc["rows"]}
    assert set(rows) == {("mobilenetv2-w0.35-r32-fp32", "onnxruntime"), ("mobilenetv2-w0.35-r32-int8", "onnxruntime")}
    for r in rows.values():
        assert r["accuracy"]["label"] == "measured" and 0.0 <= r["accuracy"]["value"] <= 1.0
        assert r["accuracy"]["images"] == 16 and not r["timing_only"]
        assert r["p90_ms"] > 0 and r["macs"] > 0 and r["params"] > 0 and r["published"] is None
    assert rows[("mobilenetv2-w0.35-r32-int8", "onnxruntime")]["artifact"] == "onnx-int8-cpu"
    assert doc["recommendation"]["choice"] in {r["id"] for r in doc["rows"]}
    assert doc["recommendation"]["basis"] == "measured"
    md = (out / "sweep.md").read_text()
    assert "## Failed points" in md and "Recommended:" in md
    assert '<img src="data:image/png;base64,' in (out / "sweep.html").read_text()
    # Both precisions came from one export.
    assert [p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")] == ["mobilenetv2-w0.35-r32"]

    # Rerun: finished points are reused as they are, the failed ones run (and fail) again.
    before = records(out)
    proc = run_cli(*args)
    assert proc.returncode == 1, proc.stderr
    assert "2 of 4 points already finished: reused" in proc.stderr
    after = records(out)
    for key in ("mobilenetv2-w0.35-r32-fp32", "mobilenetv2-w0.35-r32-int8"):
        assert after[key] == before[key]
    assert after["mobilenetv2-w0.5-r32-fp32"]["finished"] > before["mobilenetv2-w0.5-r32-fp32"]["finished"]
    assert "Traceback" in after["mobilenetv2-w0.5-r32-fp32"]["error"]["traceback"]  # the whole story, on file
    assert json.loads(proc.stdout)["rows"] == doc["rows"]


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "sweep"
    args = ("sweep", *TINY, "--width-mult", "0.35,0.5", "--out", str(out))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecv.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: Ctrl-C reaches the workers as in a terminal
    )
    deadline = time.monotonic() + 300
    while not (out / "points").is_dir() or not any((out / "points").glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err.decode()
    assert not (out / "sweep.json").exists()  # nothing half-done looks finished
    first = records(out)
    assert first and all(r["status"] == "done" for r in first.values())
    assert len(first) == 1

    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "1 of 2 points already finished: reused" in proc.stderr
    final = records(out)
    assert len(final) == 2 and all(r["status"] == "done" for r in final.values())
    for key, rec in first.items():
        assert final[key] == rec
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert len(rows) == 2 and all(r["timing_only"] and r["accuracy"] is None for r in rows)  # no weights
    assert "timing only (no weights)" in (out / "sweep.md").read_text()


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((), "name the models"),
        (("mobilenetv9",), "unknown model"),
        (("mobilenetv2", "--precision", "int4"), "--precision"),
        (("mobilenetv2", "--jobs", "0"), "--jobs"),
        (("mobilenetv2", "--max-latency", "fast"), "--max-latency"),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, fragment):
    assert_user_error_in_process("sweep", *args, "--out", str(tmp_path / "s"), fragments=(fragment,))
    assert not (tmp_path / "s").exists()  # refused before anything is written
