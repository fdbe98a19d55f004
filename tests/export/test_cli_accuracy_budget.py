"""`edgecv export --int8 --max-accuracy-drop D --eval-data DATA` through the command line: the
budget's record in the table, `--json`, the manifest's artifacts and calibration/report.json; a
rerun reuses the stage and a changed budget or changed data re-runs it; and the user errors (no
--eval-data, no --int8, a negative drop, data of another task) exit 2 before anything is written.
What the budget does to the artifacts is tested on a network built for it
(tests/calibration/test_accuracy_budget.py); here a random-weight MobileNetV2 only carries it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgecv.errors import InvalidOptionError
from edgecv.export.options import ExportOptions
from tests.conftest import assert_user_error_in_process, invoke_cli

SIDE = 32
# ONNX Runtime only and no speed plan: NNCF's path and the budget's start from a plan are tested in
# tests/calibration, and they are the slow part here.
ARGS = ("mobilenetv2", "--width-mult", "0.35", "--resolution", str(SIDE), "--num-classes", "10", "--int8")
ARGS += ("--backend", "onnxruntime", "--no-int8-speed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget-data")
    rng = np.random.default_rng(0)
    np.save(root / "calib.npy", rng.normal(0, 1, (40, 3, SIDE, SIDE)).astype(np.float32))
    np.savez(
        root / "eval.npz",
        inputs=rng.normal(0, 1, (48, 3, SIDE, SIDE)).astype(np.float32),
        labels=rng.integers(0, 10, 48),
    )
    return root


@pytest.fixture(scope="module")
def budget_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("budget") / "run"
    # 100 points: a budget every artifact holds, whatever random weights make of random data.
    flags = ("--calib", data / "calib.npy", "--max-accuracy-drop", "100", "--eval-data", data / "eval.npz")
    result = invoke_cli("export", *ARGS, *flags, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    return out, flags, json.loads(result.stdout)


def test_the_budget_is_recorded_per_artifact(budget_run):
    out, _, summary = budget_run
    budget = summary["int8"]["accuracy_budget"]
    assert budget["max_drop"] == 100 and budget["data"]["metric"] == "top1" and budget["data"]["images"] == 48
    assert set(budget["artifacts"]) == {"onnx-int8", "onnx-int8-cpu"}
    for outcome in budget["artifacts"].values():
        assert outcome["reached"] is True and outcome["reverted"] == []
        assert outcome["drop_before"] == pytest.approx(outcome["fp32"] - outcome["int8_before"], abs=1e-3)
    manifest = json.loads((out / "manifest.json").read_text())
    records = {a["name"]: a for a in manifest["artifacts"]}
    assert records["onnx-int8-cpu"]["extra"]["accuracy_budget"] == budget["artifacts"]["onnx-int8-cpu"]
    report = json.loads((out / "calibration" / "report.json").read_text())
    assert report["accuracy_budget"] == budget
    assert report["sensitivity"] is None  # every artifact held the budget as it was: nothing to rank


def test_the_table_shows_the_trade_and_a_rerun_reuses_the_stage(budget_run, data, tmp_path):
    import shutil

    out, flags, _ = budget_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    again = invoke_cli("export", *ARGS, *flags, "--out", copy)
    assert again.returncode == 0, again.stderr
    assert "INT8 accuracy budget: at most 100 top-1 points below FP32 on 48 images" in again.stdout
    stages = json.loads((copy / "manifest.json").read_text())["stages"]
    assert stages["int8"]["status"] == "reused"
    tighter = [*flags[:3], "50", *flags[4:]]
    changed = invoke_cli("export", *ARGS, *tighter, "--out", copy, "--json")
    assert changed.returncode == 0, changed.stderr
    info = json.loads((copy / "manifest.json").read_text())["stages"]["int8"]
    assert info["status"] == "done" and info["info"]["accuracy_budget"]["max_drop"] == 50


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"int8": True, "max_accuracy_drop": 0.5}, "needs --eval-data"),
        ({"max_accuracy_drop": 0.5, "eval_data": "val.npz"}, "only apply with --int8"),
        ({"int8": True, "max_accuracy_drop": -1.0, "eval_data": "val.npz"}, "≥ 0"),
        ({"int8": True, "max_accuracy_drop": float("nan"), "eval_data": "val.npz"}, "≥ 0"),
        ({"int8": True, "eval_data": "val.npz"}, "goes with --max-accuracy-drop"),
    ],
)
def test_inconsistent_budget_flags_are_refused(options, fragment):
    with pytest.raises(InvalidOptionError, match=fragment):
        ExportOptions(**options).validate()


def test_missing_eval_data_is_one_line_exit_2(data, tmp_path):
    assert_user_error_in_process(
        "export", *ARGS, "--calib", data / "calib.npy", "--max-accuracy-drop", "0.5", "--out", tmp_path / "run",
        fragments=("--eval-data",),
    )  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_detection_data_for_a_classifier_is_refused_before_anything_is_written(data, tmp_path):
    coco = tmp_path / "coco"
    (coco / "images").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(coco / "images" / "a.jpg")
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
        "categories": [{"id": 1, "name": "box"}],
    }
    (coco / "annotations.json").write_text(json.dumps(doc))
    flags = ("--calib", data / "calib.npy", "--max-accuracy-drop", "0.5", "--eval-data", coco)
    assert_user_error_in_process("export", *ARGS, *flags, "--out", tmp_path / "run", fragments=("classifier",))
    assert not (tmp_path / "run").exists()
