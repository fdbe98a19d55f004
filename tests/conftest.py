from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `edgecv` command in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    env.pop("EDGECV_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "edgecv.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
    )


@pytest.fixture
def cli():
    return run_cli


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, one clear line on stderr, no traceback, nothing on stdout."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert lines, "no message on stderr"
    message = " ".join(lines)
    for frag in fragments:
        assert frag.lower() in message.lower(), (frag, message)
