"""``edgecv.evaluate.validation``: the metric the INT8 accuracy budget scores candidates with, on
outputs made up from the ground truth, so every figure is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgecv.evaluate.datasets import TaskMismatchError
from edgecv.evaluate.validation import open_validation
from edgecv.models.spec import InputSpec, detection_outputs

SIDE = 32
BOXES = {1: [[2, 3, 10, 12], [15, 15, 12, 10]], 2: [[4, 4, 20, 20]]}  # COCO x, y, w, h per image


@pytest.fixture
def coco(tmp_path):
    (tmp_path / "images").mkdir()
    images, annotations = [], []
    for image_id, boxes in BOXES.items():
        Image.new("RGB", (SIDE, SIDE)).save(tmp_path / "images" / f"{image_id}.png")
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": SIDE, "height": SIDE})
        annotations += [{"image_id": image_id, "category_id": 1 + i % 2, "bbox": b} for i, b in enumerate(boxes)]
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    return tmp_path


def detector_spec() -> InputSpec:
    return InputSpec(height=SIDE, width=SIDE, task="detection", resize="resize", outputs=detection_outputs(True))


def ground_truth_run(shift: float = 0.0):
    """A "detector" that returns each picture's boxes (moved by ``shift`` pixels), pictures being
    told apart by a value written into their first pixel."""

    def run(batch):
        n, max_det = len(batch), 4
        out = {
            "num_dets": np.zeros(n, np.int32),
            "boxes": np.zeros((n, max_det, 4), np.float32),
            "scores": np.zeros((n, max_det), np.float32),
            "labels": np.full((n, max_det), -1, np.int32),
        }
        for j, x in enumerate(batch):
            boxes = BOXES[int(round(x[0, 0, 0]))]
            out["num_dets"][j] = len(boxes)
            for i, (bx, by, bw, bh) in enumerate(boxes):
                out["boxes"][j, i] = [bx + shift, by, bx + bw + shift, by + bh]
                out["scores"][j, i], out["labels"][j, i] = 0.9, i % 2
        return out

    return run


def test_detections_score_by_coco_map(coco, monkeypatch):
    validation = open_validation(coco, detector_spec(), {"num_classes": 2, "background_class": None})
    assert validation.metric == "map" and len(validation) == 2
    # Tag each picture's tensor with its image id, so the fake detector knows which one it sees.
    ids, prepared = validation.inputs.dataset.image_ids, validation.inputs.get

    def tagged(i):
        x, transform = prepared(i)
        x = np.zeros_like(x)
        x[0, 0, 0] = ids[i]
        return x, transform

    monkeypatch.setattr(validation.inputs, "get", tagged)
    assert validation.score(ground_truth_run()) == pytest.approx(100.0)
    assert validation.score(ground_truth_run(), [1]) == pytest.approx(100.0)  # one picture alone
    assert validation.score(ground_truth_run(shift=3.0)) < 100.0


def test_classification_scores_top1_points(tmp_path):
    labels = np.array([0, 1, 2, 1])
    np.savez(tmp_path / "data.npz", inputs=np.zeros((4, 3, 8, 8), np.float32), labels=labels)
    validation = open_validation(tmp_path / "data.npz", InputSpec(height=8, width=8), {"num_classes": 3})
    logits = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]  # the last one wrong
    calls = iter(logits)
    assert validation.score(lambda batch: {"logits": next(calls)[None]}) == pytest.approx(75.0)


def test_data_of_another_task_is_refused(coco):
    with pytest.raises(TaskMismatchError, match="classifier"):
        open_validation(coco, InputSpec(height=SIDE, width=SIDE), {"num_classes": 2})
