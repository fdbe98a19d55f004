"""A report without accuracy says why: random weights have none to show, a trained model's run
just has not been evaluated; with accuracy figures the note goes."""

from __future__ import annotations

from edgecv.report.format import accuracy_note
from edgecv.report.html import render_html
from edgecv.report.markdown import render_markdown


def _doc(model, accuracy=None):
    row = {
        "artifact": "onnx-fp32",
        "backend": "onnxruntime",
        "scenario": "single-stream",
        "batch": 1,
        "latency": {"count": 3, "median_ms": 1.0, "p90_ms": 1.1, "min_ms": 0.9, "max_ms": 1.2, "mean_ms": 1.0},
        "throughput_ips": 1000.0,
        "samples_ms": [0.9, 1.0, 1.2],
    }
    if accuracy:
        row["accuracy"] = accuracy
    return {
        "schema": "edgecv.results/1",
        "target": {"path": "runs/x", "model": model},
        "results": [row],
        "settings": {},
        "created": "",
        "edgecv_version": "0",
    }


def test_random_weights_say_there_is_no_accuracy_to_show():
    doc = _doc({"name": "mobilenetv2", "random_weights": True})
    assert "random weights" in accuracy_note(doc)
    assert "random weights" in render_markdown(doc) and "random weights" in render_html(doc)


def test_trained_model_points_at_edgecv_eval_and_measured_accuracy_removes_the_note():
    assert "edgecv eval" in accuracy_note(_doc({"name": "m", "random_weights": False}))
    assert accuracy_note(_doc({"name": "m"}, accuracy={"top1": 0.9})) is None
