"""The INT8 stage line counts the layers kept in float apart from a detector's decode/NMS tail,
which is float by design and mostly not layers (yolov3-tiny's tail alone is 80-odd nodes)."""

from __future__ import annotations

import shutil

from edgecv.calibration import quantize_run
from edgecv.calibration.float_scopes import float_summary
from edgecv.cli.export_tables import int8_note


def test_summary_counts_layers_and_the_tail_apart():
    op_types = {"conv1": "Conv", "add": "Add", "pred": "Conv", "sig": "Sigmoid", "nms": "NonMaxSuppression"}
    summary = float_summary(op_types, ["conv1", "add", "pred", "sig", "nms"], ["pred", "sig", "nms"])
    assert summary == {"layers": ["conv1"], "other_nodes": 1, "by_design_nodes": 3, "by_design_layers": 1}


def _info(kept_float):
    return {
        "calibration": {"calibration": 300, "holdout": 100},
        "method": "percentile",
        "timings_s": {"ranges": 12.0},
        "excluded": [f"n{i}" for i in range(84)],
        "kept_float": kept_float,
    }


def test_stage_line_says_the_tail_is_float_by_design():
    note = int8_note(_info({"layers": [], "other_nodes": 0, "by_design_nodes": 84, "by_design_layers": 2}))
    assert "84 layer(s)" not in note and "layer(s) kept in float" not in note
    assert "decode/NMS kept in float by design (84 nodes, with 2 prediction layer(s))" in note
    chosen = int8_note(_info({"layers": ["a", "b"], "other_nodes": 0, "by_design_nodes": 0, "by_design_layers": 0}))
    assert "2 layer(s) kept in float" in chosen and "by design" not in chosen


def test_quantize_run_records_the_split(tiny_onnx, tiny_calib, tmp_path):
    shutil.copy(tiny_onnx, tmp_path / "model.onnx")
    result = quantize_run(
        tmp_path / "model.onnx", tmp_path, tiny_calib, flavours=("cpu",), float_scopes=("classifier",)
    )
    kept = result.to_dict()["kept_float"]
    assert kept["layers"] == [] and kept["by_design_layers"] == 1 and kept["by_design_nodes"] >= 1
