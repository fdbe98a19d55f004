"""`edgecv eval` end to end on a detector exported by edgecv (boxes mapped back to the original
pictures, labels through the annotation file's category ids), and its refusals of bad input
(exit 2, one line). One evaluation and one refusal run as real subprocesses; the rest run the same
command in this process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import edgecv
from edgecv.models.detection import DetectionOptions, Detector
from edgecv.models.spec import InputSpec, detection_outputs
from tests.calibration.conftest import TinyNet
from tests.conftest import assert_user_error, assert_user_error_in_process, invoke_cli, run_cli

RES = 64
# The detector sees every picture resized to 64×64 and always predicts this box (input pixels).
BOX_IN = (16.0, 16.0, 48.0, 40.0)
CATEGORY_IDS = (2, 4, 9)  # three classes, ids not contiguous


class FixedBoxes(nn.Module):
    def __init__(self, anchors: torch.Tensor):
        super().__init__()
        self.register_buffer("anchors", anchors)

    def forward(self, logits):
        return self.anchors.unsqueeze(0).expand(logits.shape[0], -1, -1), torch.softmax(logits, -1)


class OracleDet(Detector):
    """SSD-like (class 0 is background): anchor 0 is BOX_IN with class 2, the second real class;
    anchor 1 is background. The convolution ties the output to the input in the graph."""

    background_class = 0

    def __init__(self):
        super().__init__()
        self.num_classes = 1 + len(CATEGORY_IDS)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.register_buffer("logits", torch.tensor([[0.0, 0.0, 8.0, 0.0], [8.0, 0.0, 0.0, 0.0]]))
        self.decode = FixedBoxes(torch.tensor([BOX_IN, (0.0, 0.0, 10.0, 10.0)]))
        self.input_spec = InputSpec(
            height=RES,
            width=RES,
            task="detection",
            resize="resize",
            mean=(0, 0, 0),
            std=(1, 1, 1),
            outputs=detection_outputs(True),
            extra={"background_class": 0},
        )

    def configure_postprocess(self, options):
        # A custom module declares its background class and baked thresholds in its spec's extra
        # (the manifest records them for zoo detectors).
        super().configure_postprocess(options)
        self.input_spec.extra["postprocess"] = options.to_dict()
        return self

    def forward_raw(self, x):
        return self.logits.unsqueeze(0) + 0.0 * self.conv(x).mean((1, 2, 3))[:, None, None]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evalcli")
    torch.manual_seed(0)
    det = OracleDet().configure_postprocess(DetectionOptions(conf_thres=0.25))
    edgecv.export_model(det, tmp / "det", input_spec=det.input_spec, backends=())
    cls = TinyNet(classes=3)
    edgecv.export_model(cls, tmp / "cls", input_spec=InputSpec(height=32, width=32), backends=())
    # COCO data: pictures of several sizes, each holding the object where the detector's box
    # lands once mapped back from 64×64 to the picture.
    images, annotations = [], []
    (tmp / "coco" / "images").mkdir(parents=True)
    for i, (w, h) in enumerate([(200, 150), (128, 128), (100, 160)]):
        Image.fromarray(np.full((h, w, 3), 90 + 40 * i, np.uint8)).save(tmp / "coco" / "images" / f"{i}.png")
        sx, sy = w / RES, h / RES
        x1, y1, x2, y2 = BOX_IN
        images.append({"id": 10 + i, "file_name": f"{i}.png", "width": w, "height": h})
        annotations.append(
            {
                "id": i + 1,
                "image_id": 10 + i,
                "category_id": 4,
                "bbox": [x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy],
                "area": 1.0,
                "iscrowd": 0,
            }
        )
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c}"} for c in CATEGORY_IDS],
    }
    (tmp / "coco" / "annotations.json").write_text(json.dumps(coco))
    for name in ("a", "b", "c"):
        (tmp / "folder" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp / "folder" / name / "0.png")
    return tmp


@pytest.mark.slow
def test_detector_eval_maps_boxes_and_categories(runs):
    preds = runs / "preds.json"
    proc = run_cli(
        "eval", runs / "det", "--data", runs / "coco", "--json", "--save-predictions", preds, "--report", runs / "rep"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (row,) = doc["results"]
    # Label 2 of a model with background → the 2nd category by id (4); boxes back in picture pixels.
    assert doc["category_mapping"]["table"] == {"1": 2, "2": 4, "3": 9}
    for key in ("map", "map50", "map75", "ar100"):
        assert row["metrics"][key] == pytest.approx(1.0), key
    saved = json.loads(preds.read_text())
    assert [d["category_id"] for d in saved] == [4, 4, 4]
    assert saved[0]["bbox"] == pytest.approx([50.0, 37.5, 100.0, 56.25], abs=1e-3)
    # The threshold baked at export (0.25 > 0.05) is shown and warned about.
    assert doc["conf_thres"] == 0.25
    assert "conf_thres 0.25" in proc.stderr and "lower bound" in proc.stderr
    results = json.loads((runs / "rep" / "results.json").read_text())
    assert results["results"][0]["accuracy"]["metric"] == "map"
    # A mapping that sends the label elsewhere scores 0: the category ids really are used.
    proc = invoke_cli(
        "eval",
        runs / "det" / "model.onnx",
        "--data",
        runs / "coco" / "annotations.json",
        "--images",
        runs / "coco" / "images",
        "--category-map",
        "2:9",
        "--json",
        "--limit",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["results"][0]["metrics"]["map"] == 0.0 and doc["data"]["images"] == 2


def test_annotation_json_that_is_not_coco(runs, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "labels": []}))
    assert_user_error(run_cli("eval", runs / "det", "--data", bad), "not a COCO", "annotations")


def test_missing_images(runs, tmp_path):
    assert_user_error_in_process(
        "eval",
        runs / "det",
        "--data",
        runs / "coco" / "annotations.json",
        "--images",
        tmp_path,
        fragments=("3 of the 3 images", "0.png"),
    )


def test_imagefolder_without_class_folders(runs, tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "loose.png")
    assert_user_error_in_process("eval", runs / "cls", "--data", tmp_path, fragments=("no class folders",))


def test_class_count_differs_from_head(runs):
    (runs / "folder4" / "d").mkdir(parents=True, exist_ok=True)
    for name in ("a", "b", "c", "d"):
        (runs / "folder4" / name).mkdir(exist_ok=True)
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(runs / "folder4" / name / "0.png")
    assert_user_error_in_process("eval", runs / "cls", "--data", runs / "folder4", fragments=("4 classes", "has 3"))


def test_detection_data_to_classifier_and_reverse(runs):
    assert_user_error_in_process("eval", runs / "cls", "--data", runs / "coco", fragments=("classifier", "COCO"))
    assert_user_error_in_process(
        "eval", runs / "det", "--data", runs / "folder", fragments=("detector", "COCO annotation")
    )


def test_classifier_eval_on_imagefolder(runs):
    proc = invoke_cli("eval", runs / "cls", "--data", runs / "folder", "--json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["results"][0]
    assert row["metrics"]["images"] == 3 and row["metrics"]["top5"] is None
