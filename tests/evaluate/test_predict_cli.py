"""`edgecv predict` on hand-built artifacts whose detections are fixed: which detections it shows
(--conf, --iou, --classes, the display threshold), with which names, for which pictures (files,
folders, globs), and its one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from edgecv.artifact_metadata import build_metadata, stamp_onnx
from edgecv.models.spec import InputSpec, detection_outputs
from tests.conftest import assert_user_error_in_process, invoke_cli

RES = 64
NAMES = ["rectangle", "circle", "triangle"]
# Input pixels of a 64×64 picture: the first two, of one class, overlap with IoU 32 / 51.2 = 0.625.
BOXES = np.array([[0, 0, 32, 32], [0, 0, 32, 51.2], [40, 40, 60, 60], [1, 1, 20, 20]], np.float32)
SCORES = np.array([0.9, 0.6, 0.3, 0.01], np.float32)
LABELS = np.array([0, 0, 2, 1], np.int32)
BAKED = {"conf_thres": 0.001, "iou_thres": 0.7, "max_det": 4, "nms": True, "agnostic": False}


def _spec(outputs) -> InputSpec:
    return InputSpec(
        height=RES,
        width=RES,
        task="detection",
        resize="resize",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        input_name="images",
        outputs=outputs,
    )


def _constant_model(path: Path, outputs: dict[str, np.ndarray], spec: InputSpec, model: dict) -> Path:
    """An ONNX file that returns ``outputs`` whatever the picture, stamped as edgecv export would."""
    nodes, values = [], []
    for name, array in outputs.items():
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name)))
        values.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape))
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, RES, RES])
    graph = helper.make_graph(nodes, "fixed", [image], values)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    stamp_onnx(path, build_metadata(spec, model=model, precision="fp32"))
    return path


def _record(post: dict, names: list[str] | None = NAMES) -> dict:
    record = {"name": "fixed", "task": "detection", "num_classes": 3, "postprocess": post, "background_class": None}
    return {**record, "class_names": names} if names else record


def _fixed_outputs() -> dict[str, np.ndarray]:
    return {"num_dets": np.array([4], np.int32), "boxes": BOXES[None], "scores": SCORES[None], "labels": LABELS[None]}


@pytest.fixture
def detector(tmp_path) -> Path:
    return _constant_model(tmp_path / "det.onnx", _fixed_outputs(), _spec(detection_outputs(True)), _record(BAKED))


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "pictures" / "street.png"
    path.parent.mkdir()
    Image.new("RGB", (2 * RES, 2 * RES), (90, 90, 90)).save(path)
    return path


def _predict(*args) -> list[dict]:
    result = invoke_cli("predict", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _scores(pred: dict) -> list[float]:
    return [round(d["score"], 2) for d in pred["detections"]]


def test_a_low_baked_threshold_is_raised_to_the_display_threshold(detector, photo):
    (pred,) = _predict(detector, photo)
    assert _scores(pred) == [0.9, 0.6, 0.3] and pred["conf"] == 0.25
    assert [d["name"] for d in pred["detections"]] == ["rectangle", "rectangle", "triangle"]
    assert pred["detections"][0]["box"] == [0.0, 0.0, 64.0, 64.0]  # mapped onto the 128×128 picture


def test_conf_shows_down_to_the_baked_threshold_and_no_lower(detector, photo):
    assert _scores(_predict(detector, photo, "--conf", "0.5")[0]) == [0.9, 0.6]
    assert _scores(_predict(detector, photo, "--conf", "0.001")[0]) == [0.9, 0.6, 0.3, 0.01]
    strict = _record({**BAKED, "conf_thres": 0.4})
    baked = _constant_model(detector.with_name("baked.onnx"), _fixed_outputs(), _spec(detection_outputs(True)), strict)
    assert_user_error_in_process("predict", baked, photo, "--conf", "0.1", fragments=("below", "0.4", "--conf-thres"))


def test_iou_adds_a_classwise_nms_up_to_the_baked_iou(detector, photo):
    assert _scores(_predict(detector, photo, "--iou", "0.5")[0]) == [0.9, 0.3]
    assert _scores(_predict(detector, photo, "--iou", "0.7")[0]) == [0.9, 0.6, 0.3]
    assert_user_error_in_process("predict", detector, photo, "--iou", "0.8", fragments=("above", "0.7"))
    assert_user_error_in_process("predict", detector, photo, "--iou", "1.5", fragments=("between 0 and 1",))


def test_classes_by_index_or_name(detector, photo):
    by_index = _predict(detector, photo, "--classes", "2")[0]
    by_name = _predict(detector, photo, "--classes", "triangle,circle", "--conf", "0.001")[0]
    assert [d["label"] for d in by_index["detections"]] == [2]
    assert [d["name"] for d in by_name["detections"]] == ["triangle", "circle"]
    assert_user_error_in_process("predict", detector, photo, "--classes", "dog", fragments=("dog", "rectangle"))
    assert_user_error_in_process("predict", detector, photo, "--classes", "3", fragments=("0 to 2",))


def test_folders_and_globs_expand_to_every_picture_once(detector, photo, tmp_path):
    nested = photo.parent / "more" / "street.png"
    nested.parent.mkdir()
    Image.new("RGB", (RES, RES)).save(nested)
    (photo.parent / "notes.txt").write_text("not a picture")
    out = photo.parent / "drawn"  # inside the folder predicted: its drawings are not fed back
    for _ in range(2):
        preds = _predict(detector, photo.parent, str(photo.parent / "*.png"), "--out", out)
    assert [Path(p["image"]) for p in preds] == [nested, photo]
    assert sorted(Path(p["drawn"]).name for p in preds) == ["street-2.pred.png", "street.pred.png"]
    assert_user_error_in_process("predict", detector, str(tmp_path / "*.jpg"), fragments=("no picture matches",))
    assert_user_error_in_process("predict", detector, tmp_path / "nope.png", fragments=("no such image",))


def test_a_table_says_which_threshold_nothing_passed(detector, photo):
    result = invoke_cli("predict", detector, photo, "--conf", "0.95")
    assert result.returncode == 0, result.stderr
    assert "no detection scored 0.95 or more" in result.stdout


def test_a_corrupt_onnx_file_is_called_unreadable(photo, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage that is no protobuf" * 10)
    assert_user_error_in_process("predict", broken, photo, fragments=("not a readable ONNX model",))


@pytest.fixture
def no_nms_detector(tmp_path) -> Path:
    class_scores = np.zeros((4, 3), np.float32)
    class_scores[np.arange(4), LABELS] = SCORES
    outputs = {"boxes": BOXES[None], "scores": class_scores[None]}
    post = {**BAKED, "conf_thres": 0.5, "iou_thres": 0.7, "nms": False}
    return _constant_model(tmp_path / "raw.onnx", outputs, _spec(detection_outputs(False)), _record(post))


def test_without_nms_in_the_graph_conf_and_iou_are_the_nms_thresholds(no_nms_detector, photo):
    assert _scores(_predict(no_nms_detector, photo)[0]) == [0.9, 0.6]  # the export's 0.5 is above 0.25
    assert _scores(_predict(no_nms_detector, photo, "--conf", "0.2")[0]) == [0.9, 0.6, 0.3]
    assert _scores(_predict(no_nms_detector, photo, "--conf", "0.2", "--iou", "0.5")[0]) == [0.9, 0.3]
    assert _scores(_predict(no_nms_detector, photo, "--conf", "0.001", "--classes", "circle")[0]) == [0.01]


def test_a_classifier_ranks_only_the_classes_asked_for(photo, tmp_path):
    spec = InputSpec(height=RES, width=RES, input_name="images")
    logits = {"logits": np.array([[4.0, 3.0, 2.0, 1.0]], np.float32)}
    model = {"name": "fixed", "task": "classification", "num_classes": 4, "class_names": ["a", "b", "c", "d"]}
    classifier = _constant_model(tmp_path / "cls.onnx", logits, spec, model)
    (pred,) = _predict(classifier, photo, "--classes", "d,b")
    assert [c["name"] for c in pred["top5"]] == ["b", "d"]
    assert_user_error_in_process("predict", classifier, photo, "--conf", "0.5", fragments=("apply to detectors",))
