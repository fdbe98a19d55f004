"""How closely an INT8 detector follows its FP32 original: the FP32 artifact's detections on the
held-out images are the ground truth, and the INT8 artifact's detections are scored against them
with pycocotools (the reference mAP implementation), plus the share of FP32 detections the INT8
artifact reproduces (same class, IoU ≥ 0.5).

A raw output comparison (SQNR of ``boxes``) says little here: one detection that drops below the
threshold shifts every padded row after it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgecv.boxes import detections_of, match_detections

# Below this share of FP32 detections reproduced, the report marks an INT8 artifact as collapsed
# and points at --sensitivity (the YOLO issue's bar).
REPRODUCED_FLOOR = 0.8


def coco_map_against(reference, actual) -> tuple[float | None, float | None]:
    """(mAP@[.5:.95], mAP@.5) of ``actual`` detections scored against ``reference`` detections as
    ground truth, through pycocotools; (None, None) when the reference has no detection."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results, labels = [], [], [], set()
    for img_id, ((rb, _, rl), (gb, gs, gl)) in enumerate(zip(reference, actual), start=1):
        images.append({"id": img_id, "width": 1, "height": 1})
        for box, label in zip(rb, rl):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img_id,
                    "category_id": int(label) + 1,
                    "bbox": [float(box[0]), float(box[1]), float(w), float(h)],
                    "area": float(max(w, 0) * max(h, 0)),
                    "iscrowd": 0,
                }
            )
            labels.add(int(label) + 1)
        for box, score, label in zip(gb, gs, gl):
            results.append(
                {
                    "image_id": img_id,
                    "category_id": int(label) + 1,
                    "score": float(score),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                }
            )
            labels.add(int(label) + 1)
    if not annotations:
        return None, None
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in sorted(labels)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not results:
            return 0.0, 0.0
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


@dataclass(frozen=True)
class DetectionFidelity:
    """INT8 detections against FP32 detections for one artifact."""

    artifact: str
    inputs: int
    in_sample: bool
    fp32_detections: int
    int8_detections: int
    reproduced: float | None  # share of (confident) FP32 detections the INT8 artifact reproduces
    map: float | None  # mAP@[.5:.95] with FP32 detections as ground truth
    map50: float | None

    @property
    def collapsed(self) -> bool:
        return self.reproduced is not None and self.reproduced < REPRODUCED_FLOOR

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = "detection"
        d["ground_truth"] = f"FP32 detections scoring ≥ {GROUND_TRUTH_MIN_SCORE}"
        d["collapsed"] = self.collapsed
        if self.collapsed:
            d["hint"] = (
                f"reproduces fewer than {REPRODUCED_FLOOR:.0%} of the FP32 detections: run "
                "`edgecv export ... --int8 --sensitivity` and keep the worst layers in float"
            )
        return d


# FP32 detections below this score are not ground truth for fidelity: at an evaluation threshold
# (0.001) thousands of near-zero boxes reorder under any noise and would drown the confident ones.
GROUND_TRUTH_MIN_SCORE = 0.25


def compare_detections(
    reference: Mapping[str, np.ndarray],
    actual: Mapping[str, np.ndarray],
    *,
    artifact: str,
    in_sample: bool = False,
    min_score: float = GROUND_TRUTH_MIN_SCORE,
) -> DetectionFidelity:
    """The FP32 detections scoring at least ``min_score`` are the ground truth. mAP ranks every INT8
    detection by its score; "reproduced" counts the ground truth matched by INT8 detections that
    pass the same score, as a deployment threshold would."""

    def confident(dets):
        return [(b[s >= min_score], s[s >= min_score], lab[s >= min_score]) for b, s, lab in dets]

    ref, got = confident(detections_of(reference)), detections_of(actual)
    got_confident = confident(got)
    n_ref = sum(len(r[0]) for r in ref)
    n_got = sum(len(g[0]) for g in got_confident)
    hits = sum(len(match_detections(r, g)) for r, g in zip(ref, got_confident))
    m, m50 = coco_map_against(ref, got)
    return DetectionFidelity(
        artifact=artifact,
        inputs=len(ref),
        in_sample=in_sample,
        fp32_detections=n_ref,
        int8_detections=n_got,
        reproduced=(hits / n_ref) if n_ref else None,
        map=m,
        map50=m50,
    )


def is_detection_output(outputs: Mapping[str, np.ndarray]) -> bool:
    return {"num_dets", "boxes", "scores", "labels"} <= set(outputs)
