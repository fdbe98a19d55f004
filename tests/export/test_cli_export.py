"""`edgecv export` through the command line: the happy path, --json and a refusal as real subprocesses;
every other bad input in this process (typer's test runner), which checks the same exit code and
message without starting torch again for each."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import edgecv
from tests.conftest import assert_user_error, assert_user_error_in_process, invoke_cli

# With TensorRT importable `--backend tensorrt` is no error (it builds, or fails later for want of a GPU).
TENSORRT_INSTALLED = importlib.util.find_spec("tensorrt") is not None


def test_export_json_summary(cli, tmp_path):
    proc = cli(
        "export",
        "MobileNet-V2",
        "--width-mult",
        "0.35",
        "--resolution",
        "64",
        "--fp16",
        "--out",
        tmp_path / "run",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert {a["name"] for a in summary["artifacts"]} == {"onnx-fp32", "openvino-fp32", "openvino-fp16"}
    assert all(a["verification"]["passed"] for a in summary["artifacts"])
    assert "random weights" in proc.stderr  # the warning reaches the user, not the JSON
    assert (tmp_path / "run" / "manifest.json").exists()


def test_export_human_output_shows_stages_and_table(cli, tmp_path):
    proc = cli("export", "shufflenetv2", "--width-mult", "0.5", "--resolution", "64", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    for stage in ("export", "simplify", "openvino"):
        assert stage in proc.stderr
    assert "onnx-fp32" in proc.stdout and "openvino-fp32" in proc.stdout
    again = invoke_cli("export", "shufflenetv2", "--width-mult", "0.5", "--resolution", "64", "--out", tmp_path)
    assert again.returncode == 0 and "reused" in again.stderr


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["mobilenetv9"], ["unknown model", "mobilenetv"]),
        (["shufflenet"], ["ambiguous", "shufflenetv1", "shufflenetv2"]),
        (["shufflenet_v2_x0_5", "--width-mult", "1.0"], ["α=0.5"]),
        (["mobilenetv2", "--width-mult", "-1"], ["width_mult"]),
        (["mobilenetv2", "--width-mult", "nan"], ["width_mult"]),
        (["mobilenetv2", "--resolution", "100"], ["multiple of 32"]),
        (["mobilenetv2", "--num-classes", "0"], ["num_classes"]),
        (["shufflenetv1", "--groups", "5"], ["groups"]),
        (["mobilenetv2", "--batch", "0"], ["batch"]),
        (["mobilenetv2", "--opset", "9"], ["opset"]),
        (["mobilenetv2", "--backend", "coreml"], ["unknown backend"]),
        pytest.param(
            ["mobilenetv2", "--backend", "tensorrt"],
            ["tensorrt"],
            marks=pytest.mark.skipif(TENSORRT_INSTALLED, reason="TensorRT is installed"),
        ),
        (["mobilenetv2", "--exporter", "magic"], ["exporter"]),
        (["mobilenetv2", "--calib-method", "median"], ["calib-method"]),
        (["mobilenetv2", "--int8", "--calib-size", "0"], ["calib-size"]),
        (["mobilenetv2", "--calib", "x"], ["--int8"]),
        (["mobilenetv2", "--weights", "/nonexistent/w.pth"], ["does not exist"]),
        (["mobilenetv2", "--batch", "2", "--dynamic-batch"], ["exclude"]),
        (["mobilenetv2", "--int8", "--target-cpu", "riscv"], ["--target-cpu must be one of auto, x86-vnni"]),
        (["mobilenetv2", "--target-cpu", "x86-avx2"], ["only apply with --int8"]),
        (["mobilenetv2", "--threads", "2"], ["only apply with --int8"]),
        (["mobilenetv2", "--int8", "--threads", "0"], ["--threads must be ≥ 1"]),
        (["mobilenetv2", "--int8", "--no-int8-speed", "--threads", "2"], ["--no-int8-speed"]),
    ],
)
def test_bad_input_exits_2(tmp_path, args, fragments):
    out = tmp_path / "run"
    assert_user_error_in_process("export", *args, "--out", out, fragments=fragments)
    assert not out.exists() or not any(out.iterdir()), "a refused export must not write anything"


def test_bad_input_exits_2_from_the_real_command(cli, tmp_path):
    out = tmp_path / "run"
    assert_user_error(cli("export", "mobilenetv9", "--out", out), "unknown model")
    assert not out.exists()


def test_weights_that_do_not_fit(tmp_path):
    torch.save(edgecv.create_model("mobilenetv1").state_dict(), tmp_path / "v1.pth")
    assert_user_error_in_process(
        "export", "mobilenetv2", "--weights", tmp_path / "v1.pth", "--out", tmp_path / "run", fragments=("missing",)
    )
    assert not (tmp_path / "run").exists()


def test_corrupt_weights(tmp_path):
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint at all")
    assert_user_error_in_process("export", "mobilenetv2", "--weights", tmp_path / "bad.pth", "--out", tmp_path / "run")


def test_out_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert_user_error_in_process("export", "mobilenetv2", "--out", tmp_path / "f", fragments=("not a folder",))


def test_verification_failure_exits_1(cli, tmp_path):
    proc = cli(
        "export",
        "mobilenetv2",
        "--width-mult",
        "0.35",
        "--resolution",
        "64",
        "--atol",
        "0",
        "--rtol",
        "0",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "simplify" in proc.stderr and "max abs" in proc.stderr and "Traceback" not in proc.stderr


def _calib_source(kind: str, tmp_path):
    import numpy as np

    if kind == "missing":
        return tmp_path / "no-such-folder"
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "no-images":
        (folder / "notes.txt").write_text("not a picture")
        (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    if kind == "wrong-shape":
        np.save(folder / "x.npy", np.zeros((4, 3, 32, 32), np.float32))
        return folder / "x.npy"
    return folder


@pytest.mark.parametrize(
    "kind,fragment",
    [("missing", "not found"), ("empty", "no image"), ("no-images", "could be read"), ("wrong-shape", "shape")],
)
def test_bad_calibration_data_exits_2_before_writing(tmp_path, kind, fragment):
    out = tmp_path / "run"
    assert_user_error_in_process(
        "export",
        "mobilenetv2",
        "--width-mult",
        "0.35",
        "--resolution",
        "64",
        "--int8",
        "--calib",
        _calib_source(kind, tmp_path),
        "--out",
        out,
        fragments=(fragment,),
    )
    assert not out.exists(), "a refused export must not write anything"
