"""One progress protocol: a benchmark's jobs and an export's stages reach an observer as the same
start/advance/note/end events, and the CLI's bars render any of them."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from edgecv.progress import Observer
from edgecv.runtime.benchmark import BenchObserver
from edgecv.runtime.plan import BenchJob


class Recorder(Observer):
    def __init__(self):
        self.events = []

    def start(self, task, total=None, detail=""):
        self.events.append(("start", task, total, detail))

    def advance(self, task, completed, total=None, detail=""):
        self.events.append(("advance", task, completed, detail))

    def note(self, message):
        self.events.append(("note", message))

    def end(self, task, status="done"):
        self.events.append(("end", task, status))


def test_benchmark_jobs_are_tasks():
    class Bench(Recorder, BenchObserver):
        pass

    observer = Bench()
    job = BenchJob(label="onnx-fp32", source="m.onnx", backend="onnxruntime", batches=[1, None])
    observer.job_start(job)
    observer.progress(job, 1, 40, 0.5)
    observer.job_end(job, [])
    observer.skipped("engine", "no GPU")
    assert observer.events == [
        ("start", "onnx-fp32 (onnxruntime, batch 1)", 1.0, "0 calls"),
        ("start", "onnx-fp32 (onnxruntime, batch auto)", 1.0, "0 calls"),
        ("advance", "onnx-fp32 (onnxruntime, batch 1)", 0.5, "40 calls"),
        ("end", "onnx-fp32 (onnxruntime, batch 1)", "done"),
        ("end", "onnx-fp32 (onnxruntime, batch auto)", "done"),
        ("note", "skipped engine: no GPU"),
    ]


def test_export_stages_are_tasks():
    from types import SimpleNamespace

    from edgecv.export.pipeline import Reporter

    class Export(Recorder, Reporter):
        pass

    stage = SimpleNamespace(name="int8", title="calibrate and quantize")
    observer = Export()
    observer.stage_start(stage)
    observer.progress("checking calibration images", 3, 10)
    observer.stage_end(stage, "reused", 0.0, {})
    assert observer.events == [
        ("start", stage.name, None, stage.title),
        ("advance", stage.name, 3, "checking calibration images"),
        ("end", stage.name, "reused"),
    ]


def test_bars_render_any_task_and_print_notes():
    from edgecv.cli.progress import EVAL, RichBars

    buf = StringIO()
    with RichBars(Console(file=buf, width=100, force_terminal=False), **EVAL) as bars:
        bars.start("onnx-fp32 [int8]", 4)
        bars.advance("onnx-fp32 [int8]", 2)
        bars.note("skipped engine [tensorrt]: no GPU")
        bars.end("onnx-fp32 [int8]")
        assert bars.bars.tasks[0].completed == 4
    assert "skipped engine [tensorrt]: no GPU" in buf.getvalue()
