from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs one worker per core) each worker and the commands it
    starts run PyTorch on one thread, so that the workers do not run twice as many PyTorch threads
    as there are cores. ONNX Runtime and OpenVINO sessions keep their defaults."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the files that hold a test marked slow go first (in their collected order,
    as do the rest): ``make test`` hands whole files to the workers in collection order, and a long
    file started last would leave one core idle while it finishes."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        slow_files = {item.path for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.path not in slow_files)


def run_cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `edgecv` command in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    env.pop("EDGECV_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "edgecv.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


@pytest.fixture
def cli():
    return run_cli


@dataclass
class InProcessResult:
    """What :func:`invoke_cli` returns: the fields of a ``CompletedProcess`` the tests read."""

    returncode: int
    stdout: str
    stderr: str


def invoke_cli(*args: str) -> InProcessResult:
    """Run the `edgecv` command in this process with typer's test runner: the same command code
    without the ~2 s start of a fresh interpreter importing torch. Option-parsing errors print
    click's usage block here (``edgecv.cli.main`` turns them into one line): test those with
    :func:`run_cli`. An exception other than the command's exit is a crash and is raised, so the
    "no traceback" half of the user-error contract holds by construction."""
    from typer.testing import CliRunner

    from edgecv.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env={"EDGECV_DEBUG": None, "COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return InProcessResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli_in_process():
    return invoke_cli


def assert_user_error_in_process(*args: str, fragments: tuple[str, ...] = ()) -> InProcessResult:
    """:func:`assert_user_error` for ``edgecv *args`` run in this process, and strictly: exactly one
    ``error:`` line on stderr, the last (a soft-wrapped message stays one line; warnings and
    progress before it may show) and nothing on stdout."""
    result = invoke_cli(*args)
    assert_user_error(result, *fragments)
    lines = result.stderr.strip().splitlines()
    assert [ln.startswith("error:") for ln in lines].count(True) == 1, result.stderr
    assert lines[-1].startswith("error:"), result.stderr
    assert result.stdout == "", result.stdout
    return result


def assert_user_error(proc: subprocess.CompletedProcess | InProcessResult, *fragments: str) -> None:
    """Exit code 2, one clear line on stderr, no traceback, nothing on stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert lines, "no message on stderr"
    message = " ".join(lines)
    for frag in fragments:
        assert frag.lower() in message.lower(), (frag, message)


def export_conv_onnx(path: Path, *, any_size: bool = False) -> Path:
    """A one-layer ONNX file (3→4 channel 3×3 Conv, input ``input`` 1×3×32×32, output ``out``);
    ``any_size``: batch, height and width left open."""
    import torch

    dynamic = {"input": {0: "n", 2: "h", 3: "w"}, "out": {0: "n", 2: "h", 3: "w"}} if any_size else None
    torch.onnx.export(
        torch.nn.Conv2d(3, 4, 3),
        (torch.zeros(1, 3, 32, 32),),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["out"],
        dynamic_axes=dynamic,
    )
    return path


def run_graph_as_written(model, x):
    """Output 0 of ``model`` on input ``x`` with ONNX Runtime's graph optimisations off, so a rewrite
    is compared with its original and not with what ORT makes of either."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]
