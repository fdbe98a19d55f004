"""Class names from the data into the artifacts: `export --labels` (a labels.txt or a COCO
annotation file), names found with the calibration data, and what reads them back (the artifact's
metadata, predict, the bundle's labels.json)."""

from __future__ import annotations

import json
import warnings

import pytest

from edgecv.errors import InvalidOptionError
from edgecv.evaluate.shapes import CLASSES, generate_shapes
from edgecv.export.labels import class_names_for_export, fit_to_model, read_labels_file
from edgecv.export.options import ExportOptions
from tests.conftest import assert_user_error_in_process

COCO = {
    "images": [],
    "annotations": [],
    "categories": [{"id": 7, "name": "ellipse"}, {"id": 1, "name": "rectangle"}, {"id": 3, "name": "circle"}],
}


def test_a_coco_file_gives_its_categories_in_id_order(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(COCO))
    assert read_labels_file(path) == ["rectangle", "circle", "ellipse"]


def test_a_text_file_gives_one_name_a_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# shapes\ncar\n\ntruck \n")
    assert read_labels_file(path) == ["car", "truck"]
    path.write_text("car\ncar\n")
    with pytest.raises(InvalidOptionError, match="twice"):
        read_labels_file(path)


def test_a_background_class_the_data_does_not_name_gets_a_name():
    ssd = {"num_classes": 3, "background_class": 0}
    assert fit_to_model(["car", "truck"], ssd, "--labels l.txt") == ["background", "car", "truck"]
    assert fit_to_model(["bg", "car", "truck"], ssd, "--labels l.txt") == ["bg", "car", "truck"]
    with pytest.raises(InvalidOptionError, match="names 1 classes but the model has 3 .2 besides background"):
        fit_to_model(["car"], ssd, "--labels l.txt")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return generate_shapes(tmp_path_factory.mktemp("shapes") / "data", images=2, size=32).root


def _names(calib, **model):
    seen: list[str] = []
    names = class_names_for_export(ExportOptions(int8=True, calib=str(calib)), model, seen.append)
    return names, seen


def test_calibration_data_in_the_coco_layout_names_the_classes(shapes):
    assert _names(shapes / "train" / "images", task="detection", num_classes=4) == (list(CLASSES), [])
    ssd, _ = _names(shapes / "train" / "images", task="detection", num_classes=5, background_class=0)
    assert ssd == ["background", *CLASSES]
    names, seen = _names(shapes / "train" / "images", task="detection", num_classes=80)
    assert names is None and "names 4 classes but the model has 80" in seen[0]


def test_a_calibration_imagefolder_names_a_classifier_s_classes(shapes):
    # the labels.txt order (the detector's), not the folders' alphabetical one
    assert _names(shapes / "crops" / "train", task="classification", num_classes=4)[0] == list(CLASSES)
    (shapes / "crops" / "train" / "labels.txt").rename(shapes / "crops" / "hidden.txt")
    try:
        assert _names(shapes / "crops" / "train", task="classification", num_classes=4)[0] == sorted(CLASSES)
        assert _names(shapes / "crops" / "train", task="classification", num_classes=10)[0] is None
    finally:
        (shapes / "crops" / "hidden.txt").rename(shapes / "crops" / "train" / "labels.txt")


def test_exported_artifacts_carry_the_names_to_predict_and_the_bundle(tmp_path):
    from edgecv import export_model as export
    from edgecv.artifact_metadata import model_info_of
    from edgecv.deploy.bundle import _labels
    from edgecv.evaluate.predict import Predictor
    from tests.detector_fixture import TinyDetector

    labels = tmp_path / "annotations.json"
    labels.write_text(json.dumps(COCO))
    model = TinyDetector()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(model, out=tmp_path / "run", input_spec=model.input_spec, backends=(), labels=str(labels))
    names = ["rectangle", "circle", "ellipse"]
    assert model_info_of(result.path("onnx-fp32"))["class_names"] == names
    assert _labels(result.run_dir, result.manifest)["names"] == names
    with Predictor(result.path("onnx-fp32")) as predictor:
        assert predictor.class_names == names


def test_labels_that_do_not_fit_the_model_are_refused_before_anything_is_written(tmp_path):
    two = tmp_path / "two.txt"
    two.write_text("car\ntruck\n")
    run = tmp_path / "run"
    args = ("export", "mobilenetv2", "--num-classes", "3", "--out", run)
    assert_user_error_in_process(*args, "--labels", two, fragments=("names 2 classes but the model has 3",))
    assert_user_error_in_process(*args, "--labels", tmp_path / "nope.txt", fragments=("--labels", "no such file"))
    assert not run.exists()


def test_the_pytorch_baseline_rebuilds_a_zoo_model_exported_with_names(tmp_path):
    from edgecv import export_model as export
    from edgecv.runtime.torch import model_from_manifest

    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(
            "mobilenetv2",
            out=tmp_path / "run",
            width_mult=0.35,
            resolution=64,
            num_classes=3,
            backends=(),
            labels=str(labels),
        )
    assert result.manifest["model"]["class_names"] == ["cat", "dog", "bird"]
    model, _, name = model_from_manifest(result.run_dir)
    assert name == "mobilenetv2" and model.num_classes == 3
