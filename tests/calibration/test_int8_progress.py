"""The INT8 stage says which step runs and how far it is: ranges input by input, each flavour,
the fidelity of each artifact; the terminal shows each step under the stage's name."""

from __future__ import annotations

import shutil
from io import StringIO

from rich.console import Console

from edgecv.calibration import quantize_run
from edgecv.cli.progress import RichReporter
from edgecv.export.stages import STAGES


def test_every_step_of_quantize_run_is_announced(tiny_onnx, tiny_calib, tmp_path):
    shutil.copy(tiny_onnx, tmp_path / "model.onnx")
    calls = []
    quantize_run(
        tmp_path / "model.onnx",
        tmp_path,
        tiny_calib,
        flavours=("tensorrt", "cpu"),
        progress=lambda description, done, total: calls.append((description, done, total)),
    )
    steps = list(dict.fromkeys(d for d, _, _ in calls))
    assert steps == [
        "preparing the graph (ONNX Runtime pre-processing)",
        "collecting activation ranges, calibration inputs",
        "FP32 reference outputs on held-out inputs",
        "quantizing the tensorrt flavour",
        "quantizing the cpu flavour",
        "fidelity of onnx-int8 against FP32",
        "fidelity of onnx-int8-cpu against FP32",
    ]
    ranges = [(done, total) for d, done, total in calls if d.startswith("collecting")]
    n = len(tiny_calib.calibration)
    assert ranges[-1] == (n, n) and len(ranges) > 1
    assert ("quantizing the cpu flavour", 2, 2) in calls


def test_the_terminal_shows_the_step_under_the_stage_name():
    reporter = RichReporter(Console(file=StringIO(), width=80))
    int8 = next(s for s in STAGES if s.name == "int8")
    reporter.stage_start(int8)
    try:
        reporter.progress("collecting activation ranges, calibration inputs", 12, 300)
        assert str(reporter._status.status) == "int8 · collecting activation ranges, calibration inputs 12/300 …"
        reporter.progress("FP32 reference outputs on held-out inputs", 0, None)
        assert str(reporter._status.status) == "int8 · FP32 reference outputs on held-out inputs …"
    finally:
        reporter._status.stop()
