"""Box geometry and detection matching shared by verification, INT8 fidelity, evaluation and the
shapes generator."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a [n, 4]`` with every box of ``b [m, 4]`` (x1, y1, x2, y2); 0 where
    both boxes are empty."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def detections_of(outputs: Mapping[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image (boxes [k, 4], scores [k], labels [k]) from padded ``num_dets/boxes/scores/labels``."""
    n = np.asarray(outputs["num_dets"]).reshape(-1).astype(int)
    return [
        (
            np.asarray(outputs["boxes"][i][:k], np.float64),
            np.asarray(outputs["scores"][i][:k], np.float64),
            np.asarray(outputs["labels"][i][:k]).astype(int),
        )
        for i, k in enumerate(n)
    ]


def match_detections(ref, got, iou_floor: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy matching of one image's detections, highest reference score first, by class and IoU
    ≥ ``iou_floor``, each detection used once. Returns (reference index, other index, IoU) pairs."""
    (rb, rs, rl), (gb, _, gl) = ref, got
    if not len(rb) or not len(gb):
        return []
    ious = iou_matrix(rb, gb)
    ious[rl[:, None] != gl[None, :]] = -1.0
    used: set[int] = set()
    pairs = []
    for r in np.argsort(-rs, kind="stable"):
        free = [g for g in np.argsort(-ious[r], kind="stable") if g not in used and ious[r, g] >= iou_floor]
        if free:
            used.add(int(free[0]))
            pairs.append((int(r), int(free[0]), float(ious[r, free[0]])))
    return pairs
