"""Metrics: top-k accuracy, and COCO box mAP through pycocotools' ``COCOeval`` (the reference
implementation, so figures compare with published ones).

A model's label index is mapped to the annotation file's category id by :class:`CategoryMapping`:
label ``i`` is the ``(i - offset)``-th category in id order, ``offset`` 1 for models whose class 0
is background (SSD), 0 otherwise; or an explicit table. Ids are never assumed contiguous.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgecv.boxes import iou_matrix
from edgecv.errors import InvalidOptionError

# COCOeval.stats order (iouType "bbox").
COCO_STATS = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)


# --- classification ------------------------------------------------------------------------------


@dataclass
class TopKMeter:
    """Counts of correct top-1 and top-5 predictions, fed a batch at a time."""

    count: int = 0
    top1: int = 0
    top5: int = 0
    classes: int | None = None

    def update(self, logits: np.ndarray, labels: np.ndarray) -> None:
        logits = np.asarray(logits)
        labels = np.asarray(labels).reshape(-1)
        if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
            raise ValueError(f"logits {list(logits.shape)} do not match {labels.shape[0]} labels")
        self.classes = logits.shape[1]
        # Stable order on ties: the lower class index ranks first, as argmax does.
        order = np.argsort(-logits, axis=1, kind="stable")
        self.top1 += int((order[:, 0] == labels).sum())
        k = min(5, logits.shape[1])
        self.top5 += int((order[:, :k] == labels[:, None]).any(1).sum())
        self.count += labels.shape[0]

    def result(self) -> dict[str, Any]:
        if self.count == 0:
            return {"top1": None, "top5": None, "images": 0}
        return {
            "top1": self.top1 / self.count,
            # Top-5 of a head with 5 classes or fewer is 1.0 by construction: not worth a figure.
            "top5": self.top5 / self.count if (self.classes or 0) > 5 else None,
            "images": self.count,
        }


def topk_accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    meter = TopKMeter()
    meter.update(logits, labels)
    return meter.result()


# --- detection -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryMapping:
    """Model label index → COCO category id."""

    table: Mapping[int, int]
    source: str = "default"
    offset: int = 0

    @classmethod
    def default(cls, category_ids: Sequence[int], offset: int = 0) -> "CategoryMapping":
        ids = sorted(category_ids)
        return cls({i + offset: cid for i, cid in enumerate(ids)}, "default", offset)

    @classmethod
    def parse(cls, text: str, category_ids: Sequence[int]) -> "CategoryMapping":
        """``"0:1,1:3"``, a JSON object ``{"0": 1}``, a JSON list (label i → list[i]), or a path to a
        JSON file holding one of those."""
        raw: Any
        path = Path(text).expanduser()
        if path.suffix.lower() == ".json" or path.is_file():
            try:
                raw = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidOptionError(f"--category-map {text}: not a readable JSON file ({exc})") from None
        else:
            try:
                raw = json.loads(text)
            except json.JSONDecodeError:
                raw = {}
                for part in filter(None, (p.strip() for p in text.split(","))):
                    key, sep, value = part.partition(":")
                    if not sep:
                        raise InvalidOptionError(
                            f"--category-map takes label:category_id pairs like 0:1,1:3, got {part!r}"
                        ) from None
                    raw[key.strip()] = value.strip()
        if isinstance(raw, list):
            raw = {i: v for i, v in enumerate(raw)}
        if not isinstance(raw, dict) or not raw:
            raise InvalidOptionError("--category-map must map model labels to category ids (e.g. 0:1,1:3)")
        try:
            table = {int(k): int(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise InvalidOptionError("--category-map keys and values must be integers (label:category_id)") from None
        unknown = sorted(set(table.values()) - set(category_ids))
        if unknown:
            raise InvalidOptionError(
                f"--category-map names category id(s) {', '.join(map(str, unknown))} the annotation file does not have "
                f"(it has {', '.join(map(str, sorted(category_ids)))})"
            )
        return cls(table, "explicit")

    def __call__(self, label: int) -> int | None:
        return self.table.get(int(label))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "offset": self.offset,
            "table": {str(k): v for k, v in sorted(self.table.items())},
        }


def coco_results(
    image_id: int,
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    mapping: CategoryMapping,
) -> tuple[list[dict[str, Any]], int]:
    """Detections in original-image pixels → COCO result dicts; also how many labels had no
    category (background, or beyond the mapping)."""
    out, unmapped = [], 0
    for box, score, label in zip(np.asarray(boxes_xyxy, np.float64), np.asarray(scores), np.asarray(labels)):
        cid = mapping(int(label))
        if cid is None:
            unmapped += 1
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        out.append(
            {
                "image_id": int(image_id),
                "category_id": int(cid),
                "bbox": [round(x1, 3), round(y1, 3), round(max(0.0, x2 - x1), 3), round(max(0.0, y2 - y1), 3)],
                "score": round(float(score), 5),
            }
        )
    return out, unmapped


def coco_map(coco_gt: Any, detections: list[dict[str, Any]], image_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """``COCOeval`` box figures (mAP@[.5:.95], mAP@.5, mAP@.75, …, AR@100) over ``image_ids``
    (every image of ``coco_gt`` when None). No detections scores 0, as COCOeval would."""
    from pycocotools.cocoeval import COCOeval

    ids = sorted(coco_gt.getImgIds() if image_ids is None else image_ids)
    if not detections:
        return {**{k: 0.0 for k in COCO_STATS}, "images": len(ids), "detections": 0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        coco_dt = coco_gt.loadRes([dict(d) for d in detections])
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # COCOeval writes -1 where a figure has nothing to average (no ground truth of that size).
    stats = {k: (float(v) if v >= 0 else None) for k, v in zip(COCO_STATS, evaluator.stats)}
    return {**stats, "images": len(ids), "detections": len(detections)}


# --- non-maximum suppression for --no-nms artifacts ----------------------------------------------


@dataclass(frozen=True)
class NmsSettings:
    conf_thres: float = 0.001
    iou_thres: float = 0.5
    max_det: int = 100
    pre_nms_topk: int = 1000
    background: int | None = None
    source: str = field(default="edgecv eval", compare=False)


def nms_numpy(
    boxes: np.ndarray, class_scores: np.ndarray, settings: NmsSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class greedy NMS for one image: ``boxes [A, 4]``, ``class_scores [A, C]`` → kept boxes,
    scores and labels (label = class index of ``class_scores``), sorted by score."""
    scores = np.asarray(class_scores, dtype=np.float32).copy()
    if settings.background is not None:
        scores[:, settings.background] = -1.0
    anchors, classes = np.nonzero(scores > settings.conf_thres)
    values = scores[anchors, classes]
    if values.size > settings.pre_nms_topk:
        top = np.argpartition(-values, settings.pre_nms_topk - 1)[: settings.pre_nms_topk]
        anchors, classes, values = anchors[top], classes[top], values[top]
    order = np.argsort(-values, kind="stable")
    anchors, classes, values = anchors[order], classes[order], values[order]
    b = np.asarray(boxes, dtype=np.float64)[anchors]
    # Shifting every class into its own region makes one pass of NMS per-class.
    shift = (classes.astype(np.float64) * (np.abs(b).max(initial=0.0) * 2 + 1))[:, None]
    sb = b + shift
    keep: list[int] = []
    alive = np.ones(len(sb), dtype=bool)
    for i in range(len(sb)):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) == settings.max_det:
            break
        rest = np.nonzero(alive[i + 1 :])[0] + i + 1
        if rest.size == 0:
            continue
        alive[rest[iou_matrix(sb[i], sb[rest])[0] > settings.iou_thres]] = False
    k = np.asarray(keep, dtype=np.int64)
    return b[k], values[k], classes[k]
