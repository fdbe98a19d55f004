"""Terminal tables never cut a figure: at 80, 100 and 120 columns every word of every cell is printed
whole (cells wrap between words; columns that do not fit move to a second table)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from rich.console import Console

from edgecv.cli.tables import results_table
from edgecv.report.format import metric_percent, results_columns

WIDTHS = (80, 100, 120)


def words_printed(renderable, width: int) -> set[str]:
    console = Console(width=width, file=StringIO(), color_system=None, legacy_windows=False)
    console.print(renderable)
    text = console.file.getvalue()
    assert "…" not in text, text
    return set(re.split(r"[\s│┃┡┩━─┏┓┗┛└┘┌┐╇╈┼╋┳┻┯┷]+", text))


def cells_words(rows) -> set[str]:
    return {word for row in rows for cell in row.values() for word in cell.split()}


def _row(artifact, backend, precision, median, p90, acc=None, delta=None, **extra):
    std = (p90 - median) / 2
    row = {
        "artifact": artifact,
        "backend": backend,
        "scenario": "single-stream",
        "batch": 1,
        "precision": precision,
        "artifact_precision": precision,
        "intended_for": "tensorrt" if artifact == "onnx-int8" else backend,
        "size_bytes": 3_456_789,
        "latency": {
            "count": 100,
            "median_ms": median,
            "p90_ms": p90,
            "mean_ms": median,
            "std_ms": std,
            "p90_over_median": p90 / median,
            "cv": std / median,
            "unstable": p90 / median > 1.5,
        },
        "throughput_ips": 1000 / median,
        "speedup_vs_torch": 2.3456,
        "fidelity": {"kind": "detection", "map": 0.7271, "reproduced": 0.93} if "int8" in artifact else {},
        **extra,
    }
    if acc is not None:
        row["accuracy"] = {"metric": "map", "value": acc, "delta": delta, "conf_thres": 0.001}
    return row


@pytest.fixture
def detector_doc():
    return {
        "target": {"path": "runs/ssdlite-mobilenetv3-w1.0-r320"},
        "settings": {"scenario": "single-stream"},
        "machine": {"cpu": "AMD EPYC 7763 64-Core Processor", "arch": "x86_64", "cores": {"usable": 2}},
        "results": [
            _row("pytorch", "torch", "fp32", 41.2345, 45.6789),
            _row("onnx-fp32", "onnxruntime", "fp32", 12.3456, 13.5791, acc=0.7444, delta=None),
            _row("onnx-int8", "onnxruntime", "int8", 220.1234, 826.5432, acc=0.7258, delta=-0.0186),
            _row(
                "openvino-int8",
                "openvino",
                "int8",
                5.4321,
                6.1234,
                acc=0.7399,
                delta=-0.0045,
                concurrency={"items_per_s": 512.25, "requests": 4},
                float_precision="bf16",
            ),
        ],
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_results_table_prints_every_figure_whole(detector_doc, width):
    printed = words_printed(results_table(detector_doc), width)
    _, rows = results_columns(detector_doc["results"])
    missing = cells_words(rows) - printed
    assert not missing, missing
    for needed in ("826.543", "74.44%", "-1.86", "Δ", "(unstable)"):
        assert needed in printed


def test_unstable_row_is_marked_and_explained(detector_doc):
    console = Console(width=250, file=StringIO())
    console.print(results_table(detector_doc))
    text = " ".join(console.file.getvalue().split())
    assert "826.543 (unstable)" in text
    assert "onnx-int8 (batch 1): unstable timing" in text and "3.8× the median" in text
    assert "12.346 (unstable)" not in text


def test_wide_console_keeps_one_table(detector_doc):
    console = Console(width=250, file=StringIO())
    console.print(results_table(detector_doc))
    assert "(continued)" not in console.file.getvalue()


def test_map_and_top1_share_one_format():
    assert metric_percent(0.72512) == "72.51%" and metric_percent(None) == "—"


def _export_result(tmp_path):
    from edgecv.export.pipeline import ExportResult

    names = [
        ("onnx-fp32", "model.onnx", {}),
        ("openvino-fp16", "openvino/model.fp16.xml", {}),
        ("onnx-int8", "model.int8.onnx", {"kind": "detection", "map": 0.7271, "reproduced": 0.934}),
        ("onnx-int8-cpu", "model.int8.cpu.onnx", {"kind": "detection", "map": 0.7012, "reproduced": 0.9}),
        ("openvino-int8", "openvino/model.int8.xml", {"kind": "detection", "map": 0.6987, "reproduced": 0.88}),
    ]
    artifacts = [
        {
            "name": n,
            "path": p,
            "backend": "openvino" if "openvino" in n else "onnxruntime",
            "precision": "int8" if "int8" in n else "fp32",
            "intended_for": "tensorrt" if n == "onnx-int8" else ("openvino" if "openvino" in n else "onnxruntime"),
            "verification": {"passed": True, "outputs": [{"max_abs": 1.2345e-5, "matched_share": 0.987}]},
            "fidelity": fid,
        }
        for n, p, fid in names
    ]
    manifest = {
        "model": {},
        "input_spec": {"task": "detection"},
        "stages": {},
        "artifacts": artifacts,
        "files": {p: {"size_bytes": 12_345_678} for _, p, _ in names},
    }
    return ExportResult(tmp_path / "runs" / "ssdlite-mobilenetv3-w1.0-r320", manifest)


@pytest.mark.parametrize("width", WIDTHS)
def test_export_artifact_table_prints_every_figure_whole(tmp_path, width):
    from edgecv.cli.export_tables import _artifact_row, artifact_table

    result = _export_result(tmp_path)
    printed = words_printed(artifact_table(result), width)
    rows = [_artifact_row(a, result.run_dir) for a in result.summary()["artifacts"]]
    missing = cells_words(rows) - printed
    assert not missing, missing
    assert {"openvino/model.int8.xml", "72.71%", "93%", "1.23e-05"} <= printed


def _eval_doc():
    def result(artifact, precision, m, delta=None):
        metrics = {"map": m, "map50": m + 0.2, "map75": m - 0.1, "ar100": m + 0.05}
        return {
            "artifact": artifact,
            "backend": "openvino" if "openvino" in artifact else "onnxruntime",
            "precision": precision,
            "metrics": metrics,
            "accuracy": {"metric": "map", "value": m, "delta": delta},
            "reference": "onnx-fp32" if delta is not None else None,
            "median_ms": 826.5432,
        }

    return {
        "task": "detection",
        "target": {"path": "runs/ssdlite-mobilenetv3-w1.0-r320"},
        "data": {"path": "data/shapes/val/annotations.json", "images": 500},
        "conf_thres": 0.001,
        "results": [
            result("onnx-fp32", "fp32", 0.7444),
            result("onnx-int8-cpu", "int8", 0.7258, -0.0186),
            result("openvino-int8", "int8", 0.7399, -0.0045),
        ],
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_eval_table_prints_every_figure_whole(width):
    from edgecv.cli.evaluate import _eval_table

    table = _eval_table(_eval_doc())
    printed = words_printed(table, width)
    missing = cells_words(table.rows) - printed
    assert not missing, missing
    # mAP reads as in the results table and the reports: percent, two decimals
    assert {"74.44%", "-1.86", "Δ", "826.54"} <= printed


def test_map_reads_the_same_in_every_report(detector_doc, tmp_path):
    from edgecv.cli.export_tables import sensitivity_table
    from edgecv.report.html import render_html
    from edgecv.report.markdown import render_markdown

    doc = {**detector_doc, "created": "", "edgecv_version": "0"}
    for text in (render_markdown(doc), render_html(doc)):
        assert "mAP 74.44%" in text and "mAP vs FP32 72.71%" in text and "-1.86 pt" in text
        assert "0.727" not in text and "74.44 " not in text
    result = _export_result(tmp_path)
    result.manifest["stages"] = {
        "int8": {
            "info": {
                "sensitivity": {
                    "metric": "map",
                    "baseline_map": 0.7271,
                    "inputs": 16,
                    "layers": [{"node": "/head/Conv", "op_type": "Conv", "gain_map": 0.0123, "map": 0.7394}],
                }
            }
        }
    }
    printed = words_printed(sensitivity_table(result), 120)
    assert {"72.71%", "+1.23", "73.94%"} <= printed
