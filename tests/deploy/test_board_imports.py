"""On a Jetson board edgecv benchmarks engines with TensorRT, cuda-python and numpy only: here the
TensorRT runtime and `edgecv benchmark ENGINE` run in subprocesses where PyTorch, ONNX Runtime and
OpenVINO are absent (and TensorRT is the fake)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgecv.tensorrt import build as T
from tests.tensorrt_fake import SITE_DIR, install

from .conftest import SHAPE

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = "torch,onnxruntime,openvino"


@pytest.fixture
def engine(monkeypatch, tmp_path, onnx_files):
    install(monkeypatch, "10.3.0")
    path = tmp_path / "model.fp32.engine"
    info = T.build_engine(
        onnx_files["fp32"],
        path,
        precision="fp32",
        input_name="input",
        input_shape=SHAPE,
        dynamic_batch=True,
        max_batch=4,
    )
    T.write_sidecar(path, info)
    return path


def board_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "EDGECV_DEBUG"}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(SITE_DIR), str(ROOT)]),
            "EDGECV_FAKE_TRT": "10.3.0",
            "EDGECV_BLOCK_IMPORTS": BLOCKED,
            "PYTHONWARNINGS": "ignore",
            **extra,
        }
    )
    return env


def test_the_blocker_really_blocks():
    proc = subprocess.run([sys.executable, "-c", "import torch"], env=board_env(), capture_output=True, text=True)
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


def test_runtime_module_imports_none_of_them(engine):
    code = (
        "import sys, numpy as np\n"
        "import edgecv.runtime.tensorrt\n"
        "from edgecv.runtime import load\n"
        f"rt = load({str(engine)!r})\n"
        "print(rt(np.zeros((2, 3, 16, 16), np.float32))['logits'].shape)\n"
        f"heavy = [m for m in {BLOCKED.split(',')!r} if sys.modules.get(m) is not None]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=board_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "(2, 5)" in proc.stdout  # ONNX Runtime absent: the fake's stand-in network answered


@pytest.mark.parametrize("isolation", [[], ["--in-process"]])
def test_edgecv_benchmark_on_an_engine(engine, isolation):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgecv.cli",
            "benchmark",
            str(engine),
            "--json",
            "-n",
            "5",
            "--warmup",
            "1",
            *isolation,
        ],
        env=board_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (result,) = doc["results"]
    assert result["backend"] == "tensorrt" and result["latency"]["count"] == 5 and result["precision"] == "fp32"


def test_benchmark_refuses_an_engine_from_another_gpu(engine):
    proc = subprocess.run(
        [sys.executable, "-m", "edgecv.cli", "benchmark", str(engine), "-n", "2"],
        env=board_env(EDGECV_FAKE_GPU_CC="7.2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "compute capability 8.7" in proc.stderr and "7.2" in proc.stderr


@pytest.mark.parametrize("isolate", [True, False])
def test_benchmark_library_path_on_an_engine(engine, tmp_path, isolate):
    """benchmark_target + the report writers, as `edgecv benchmark ENGINE --report DIR` uses them."""
    code = (
        "import json, sys\n"
        "from edgecv.runtime.benchmark import benchmark_target\n"
        "from edgecv.report import write_report\n"
        "from edgecv.cli.tables import results_table\n"
        f"doc = benchmark_target({str(engine)!r}, iterations=5, warmup=1, isolate={isolate}).to_dict()\n"
        f"write_report(doc, {str(tmp_path / 'report')!r})\n"
        "results_table(doc)\n"
        f"heavy = [m for m in {BLOCKED.split(',')!r} if sys.modules.get(m) is not None]\n"
        "assert not heavy, heavy\n"
        "print(json.dumps(doc['results'][0]['latency']['count']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=board_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "5"
    assert (tmp_path / "report" / "results.json").is_file()
