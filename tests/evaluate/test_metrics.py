"""pycocotools' figures on hand-made annotation/prediction pairs whose answer is known, the label →
category mapping, top-k, the NMS eval runs for --no-nms artifacts and the Pareto front."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecv.errors import InvalidOptionError
from edgecv.evaluate.datasets import open_coco
from edgecv.evaluate.metrics import CategoryMapping, NmsSettings, coco_map, coco_results, nms_numpy, topk_accuracy
from edgecv.report.format import pareto_front


@pytest.fixture
def gt(tmp_path):
    # Two images, one 40×40 object each; category ids 3 and 7 (not contiguous, not starting at 1).
    doc = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 100, "height": 100},
            {"id": 2, "file_name": "b.png", "width": 100, "height": 100},
        ],
        "annotations": [
            {"image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 40]},
            {"image_id": 2, "category_id": 7, "bbox": [20, 20, 40, 40]},
        ],
        "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    return open_coco(path, tmp_path).coco


def det(image_id, category_id, bbox, score=0.9):
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


def test_perfect_prediction_scores_one(gt):
    m = coco_map(gt, [det(1, 3, [10, 10, 40, 40]), det(2, 7, [20, 20, 40, 40], 0.8)])
    for key in ("map", "map50", "map75", "ar100"):
        assert m[key] == pytest.approx(1.0), key


def test_shifted_box_scores_its_iou_thresholds(gt):
    # Each box moved 8 px right: intersection 32·40 = 1280, union 1600 + 1600 − 1280 = 1920, IoU 2/3.
    # COCOeval's thresholds are .50, .55, …, .95; a match needs IoU ≥ t, so .50 .55 .60 .65 match
    # (4 of 10) and .70 … .95 do not. Each matched threshold has AP 1 (one detection, one object),
    # each unmatched AP 0: mAP@[.5:.95] = 4/10, mAP@.5 = 1, mAP@.75 = 0, AR@100 = 4/10.
    m = coco_map(gt, [det(1, 3, [18, 10, 40, 40]), det(2, 7, [28, 20, 40, 40], 0.8)])
    assert m["map"] == pytest.approx(0.4)
    assert m["map50"] == pytest.approx(1.0)
    assert m["map75"] == pytest.approx(0.0)
    assert m["ar100"] == pytest.approx(0.4)


def test_iou_exactly_at_threshold_counts(gt):
    # A 40×30 box inside the 40×40 object: IoU 1200/1600 = 0.75 exactly (a float with no rounding).
    # pycocotools matches when IoU ≥ t, so .50 … .75 match: 6/10, and mAP@.75 is 1, not 0.
    m = coco_map(gt, [det(1, 3, [10, 10, 40, 30]), det(2, 7, [20, 20, 40, 30], 0.8)])
    assert m["map"] == pytest.approx(0.6)
    assert m["map75"] == pytest.approx(1.0)


def test_false_positive_and_miss(gt):
    # Category 3: the hit (score .9) is ranked above a false positive (.8) elsewhere. Category 7:
    # its object is missed and a false positive is made. AP(3) = 1 (precision 1 up to recall 1,
    # the false positive comes after); AP(7) = 0 (no true positive). mAP = (1 + 0) / 2 at every IoU.
    m = coco_map(
        gt, [det(1, 3, [10, 10, 40, 40], 0.9), det(1, 3, [60, 60, 30, 30], 0.8), det(2, 7, [70, 70, 20, 20], 0.7)]
    )
    assert m["map"] == pytest.approx(0.5)
    assert m["map50"] == pytest.approx(0.5)
    # Ranking the false positive first: precision 1/2 at recall 1, interpolated over COCO's 101
    # recall points, every point reads max precision at recall ≥ r = 1/2: AP(3) = 0.5, mAP = 0.25.
    m = coco_map(gt, [det(1, 3, [10, 10, 40, 40], 0.8), det(1, 3, [60, 60, 30, 30], 0.9)])
    assert m["map50"] == pytest.approx(0.25)


def test_no_detections_scores_zero(gt):
    assert coco_map(gt, [])["map"] == 0.0


def test_limit_scores_only_the_images_asked_for(gt):
    # Image 2 is missed, but only image 1 is evaluated: category 7 has no ground truth there and
    # COCOeval leaves it out of the mean instead of counting it as 0.
    m = coco_map(gt, [det(1, 3, [10, 10, 40, 40])], image_ids=[1])
    assert m["map"] == pytest.approx(1.0) and m["images"] == 1


def test_category_mapping():
    ids = [7, 1, 3, 5]
    plain = CategoryMapping.default(ids)
    assert [plain(i) for i in range(4)] == [1, 3, 5, 7] and plain(4) is None
    ssd = CategoryMapping.default(ids, offset=1)  # class 0 is background
    assert ssd(0) is None and [ssd(i) for i in range(1, 5)] == [1, 3, 5, 7]
    assert CategoryMapping.parse("0:7, 1:1", ids).table == {0: 7, 1: 1}
    assert CategoryMapping.parse("[5, 3]", ids).table == {0: 5, 1: 3}
    with pytest.raises(InvalidOptionError, match="category id"):
        CategoryMapping.parse("0:2", ids)
    with pytest.raises(InvalidOptionError, match="label:category_id"):
        CategoryMapping.parse("0-2", ids)


def test_coco_results_convert_and_map():
    out, unmapped = coco_results(
        4,
        np.array([[10, 20, 50, 60], [0, 0, 5, 5]]),
        np.array([0.9, 0.5]),
        np.array([2, 0]),
        CategoryMapping.default([1, 3], offset=1),
    )
    assert out == [{"image_id": 4, "category_id": 3, "bbox": [10.0, 20.0, 40.0, 40.0], "score": 0.9}]
    assert unmapped == 1  # label 0: background


def test_topk():
    logits = np.array([[0.1, 0.9, 0, 0, 0, 0, 0], [0.9, 0.1, 0.5, 0.4, 0.3, 0.2, 0.0]])
    r = topk_accuracy(logits, np.array([1, 6]))
    assert r["top1"] == 0.5 and r["top5"] == 0.5
    assert topk_accuracy(logits[:, :3], np.array([1, 2]))["top5"] is None  # 3 classes: no top-5


def test_nms_numpy_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([[0.0, 0.9, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 0.7], [0.9, 0.0, 0.0]], dtype=np.float32)
    b, s, labels = nms_numpy(boxes, scores, NmsSettings(iou_thres=0.5, background=0))
    # Box 1 overlaps box 0 (IoU .68) in the same class: suppressed. Box 2 is the same place but
    # another class: kept. Box 3 scores only for background: dropped.
    assert labels.tolist() == [1, 2] and s.tolist() == pytest.approx([0.9, 0.7])
    assert b.tolist() == [[0, 0, 10, 10], [0, 0, 10, 10]]


def test_pareto_front():
    # (latency, accuracy): c is slower and worse than a; b is slower but better than a.
    assert pareto_front([(1.0, 0.70), (2.0, 0.80), (3.0, 0.75), (0.5, 0.60)]) == [3, 0, 1]
