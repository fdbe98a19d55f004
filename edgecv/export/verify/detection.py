"""A detector's detections after NMS, judged as an NMS of PyTorch's decoded candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from edgecv.boxes import detections_of, iou_matrix, match_detections

from .boxes import SIZE_TOLERANCES, box_parts, size_floor
from .comparison import DECODED_BOXES, DECODED_SCORES, DEFAULT_TOLERANCES

if TYPE_CHECKING:  # pragma: no cover
    from edgecv.models.detection import DetectionOptions

# Detections after NMS cannot be compared element-wise: a tiny score difference reorders rows, and
# where scores tie (random weights saturate sigmoids at exactly 1.0) NMS may keep any one of the
# tied boxes, which changes what that box suppresses further down. So an artifact's detections are
# judged as what they must be, a greedy NMS of PyTorch's decoded candidates with ties broken either
# way: every detection is a PyTorch candidate (same class, score and box within tolerance), no two
# kept boxes of a class overlap past the IoU threshold, and every candidate above the score
# threshold is kept, suppressed by a kept box scoring at least as high (up to the tolerance), or cut
# by max_det. The tensors handed to NMS are compared element-wise where the artifact exposes them
# (ONNX), so a random-weight detector with no detection above threshold is still verified.

# Per precision: (min share of consistent detections, min IoU of a box with its PyTorch candidate,
# max score difference). A box also is its candidate when centre and size agree as the decoded boxes
# must element-wise (compare_boxes), which is what judges boxes a few pixels wide. One minus the IoU,
# plus what the image's box noise can move an IoU, is the slack on the NMS IoU threshold.
DETECTION_TOLERANCES: dict[str, tuple[float, float, float]] = {
    "fp32": (0.99, 0.99, 1e-3),
    "fp16": (0.90, 0.95, 5e-2),
    "bf16": (0.80, 0.90, 1e-1),
}

# How DetectionComparison judged: against PyTorch's NMS candidates, or (a detector whose decoded
# tensors or NMS settings are unknown) by one-to-one matching of the detections alone.
BY_CANDIDATES = "nms of pytorch candidates"
BY_MATCHING = "one-to-one matching"


@dataclass
class DetectionComparison:
    name: str
    method: str
    images: int
    reference_detections: int
    artifact_detections: int
    # Artifact detections paired one to one with a PyTorch detection (class, IoU ≥ 0.5).
    matched: int
    # Artifact detections that are no PyTorch candidate (class, score, box).
    unidentified: int
    # Kept detections that overlap a higher kept one past the IoU threshold.
    overlapping: int
    # PyTorch candidates above the threshold neither detected, suppressed nor cut by max_det.
    missing: int
    worst_iou: float  # over detections at least a pixel wide and high
    max_score_diff: float
    # Share of detections consistent with PyTorch (the share matched, by one-to-one matching).
    matched_share: float
    min_matched: float
    min_iou: float
    max_score_tolerance: float
    centre_tolerance: float
    size_tolerance: float
    passed: bool

    @property
    def max_abs(self) -> float:
        return self.max_score_diff

    def summary(self) -> str:
        head = (
            f"{self.name}: matched {self.matched} of {self.reference_detections} PyTorch detections one to one "
            f"({self.artifact_detections} in the artifact) on {self.images} images"
        )
        if self.method == BY_MATCHING:
            return (
                f"{head}, worst IoU {self.worst_iou:.4f}, worst score difference {self.max_score_diff:.3g} "
                f"(need ≥ {self.min_matched:.0%} matched, IoU ≥ {self.min_iou}, score within "
                f"{self.max_score_tolerance:g})"
            )
        return (
            f"{head}; as an NMS of PyTorch's candidates with ties broken either way: {self.unidentified} "
            f"detection(s) are no PyTorch candidate, {self.overlapping} overlap a kept one past the IoU "
            f"threshold, {self.missing} candidate(s) neither detected nor suppressed: {self.matched_share:.1%} "
            f"consistent (need ≥ {self.min_matched:.0%}; a candidate has the class, a score within "
            f"{self.max_score_tolerance:g}, and IoU ≥ {self.min_iou} or centre within "
            f"{self.centre_tolerance:.3g} px and size within {self.size_tolerance:.2%})"
        )

    @property
    def cosine(self) -> float:
        return float("nan")

    top1_agreement = None


@dataclass(frozen=True)
class _Tolerance:
    min_iou: float
    score: float
    centre: float  # px
    log_size: float


@dataclass(frozen=True)
class _Candidates:
    """One image's NMS candidates as MultiClassNMS prepares them, per channel (a class, or one channel
    for class-agnostic NMS): the score a candidate has where it may take part (``allowed``) and where
    it must (``required``; they differ for candidates tied with the pre-NMS top-k cut), and its label."""

    boxes: np.ndarray  # [A, 4]
    allowed: np.ndarray  # [K, A]
    required: np.ndarray  # [K, A]
    labels: np.ndarray  # [K, A]
    offset: int
    agnostic: bool

    def channel(self, label: int) -> int | None:
        k = 0 if self.agnostic else label - self.offset
        return k if 0 <= k < len(self.allowed) else None


def nms_candidates(
    boxes: np.ndarray, scores: np.ndarray, nms: "DetectionOptions", background: int | None, score_tol: float
) -> _Candidates:
    """From one image's decoded ``boxes [A, 4]`` and class ``scores [A, C]``."""
    s = np.asarray(scores, np.float64)
    offset = 0
    if background is not None:
        # MultiClassNMS drops the background class, which it only accepts as class 0.
        s, offset = s[:, 1:], 1
    s = s.T
    allowed = required = s
    k = nms.pre_nms_topk
    if k is not None and k < s.shape[1]:
        kth = -np.partition(-s, k - 1, axis=1)[:, k - 1 : k]
        allowed = np.where(s >= kth - score_tol, s, 0.0)
        required = np.where(s >= kth + score_tol, s, 0.0)
    labels = np.broadcast_to(np.arange(len(s))[:, None] + offset, s.shape)
    if nms.agnostic:
        labels = allowed.argmax(0)[None] + offset
        allowed, required = allowed.max(0, keepdims=True), required.max(0, keepdims=True)
    return _Candidates(np.asarray(boxes, np.float64), allowed, required, labels, offset, nms.agnostic)


def _box_errors(boxes: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per box of ``boxes [m, 4]``: the largest centre difference (px) and log-size difference from ``box``."""
    floor = size_floor(boxes, np.broadcast_to(box, boxes.shape))
    (cc, cs), (gc, gs) = box_parts(boxes, floor), box_parts(box[None], floor)
    return np.abs(cc - gc).max(axis=1), np.abs(cs - gs).max(axis=1)


@dataclass
class _ImageCheck:
    unidentified: int = 0
    overlapping: int = 0
    missing: int = 0
    worst_iou: float = 1.0
    max_score_diff: float = 0.0
    # The largest centre and log-size differences of the identified boxes: how well this image's
    # boxes are known, and so how well an IoU near the NMS threshold can be judged.
    centre_noise: float = 0.0
    size_noise: float = 0.0


def _identify(c: _Candidates, taken, box, score, label, conf: float, tol: _Tolerance):
    """The (channel, anchor) of the PyTorch candidate an artifact detection is, or None."""
    k = c.channel(int(label))
    if k is None:
        return None
    s = c.allowed[k]
    ok = (c.labels[k] == label) & (s > conf - tol.score) & (np.abs(s - score) <= tol.score)
    ok[list(taken.get(k, ()))] = False
    cand = np.nonzero(ok)[0]
    if not len(cand):
        return None
    iou = iou_matrix(box[None], c.boxes[cand])[0]
    centre, size = _box_errors(c.boxes[cand], box)
    # IoU cannot judge a box a few pixels wide (a hundredth of a pixel of float noise in its centre
    # moves it by a percent); centre and size judge every box as the element-wise check does.
    same = (iou >= tol.min_iou) | ((centre <= tol.centre) & (size <= tol.log_size))
    if not same.any():
        return None
    err = np.maximum(centre / max(tol.centre, 1e-12), size / max(tol.log_size, 1e-12))
    return k, int(cand[np.argmin(np.where(same, err, np.inf))])


def _sub_pixel(boxes: np.ndarray) -> np.ndarray:
    """Boxes [n, 4] under a pixel wide or high, whose IoU says nothing of float noise."""
    return np.any(np.abs(boxes[:, 2:] - boxes[:, :2]) < 1.0, axis=1)


def _uncertainty(boxes: np.ndarray, check: _ImageCheck) -> np.ndarray:
    """How far the IoU of each of ``boxes`` with another box may move under this image's box noise."""
    sizes = np.maximum(np.abs(boxes[:, 2:] - boxes[:, :2]), size_floor(boxes))
    u = 2 * check.centre_noise * (1 / sizes).sum(axis=1) + 2 * check.size_noise
    return np.minimum(u, 1.0)


def _overlapping(boxes: np.ndarray, limit: float, check: _ImageCheck) -> int:
    """Kept boxes (in descending score order) that overlap an earlier kept one past ``limit``."""
    if len(boxes) < 2:
        return 0
    u = _uncertainty(boxes, check)
    over = iou_matrix(boxes, boxes) > limit + u[:, None] + u[None, :]
    return int(np.triu(over, 1).any(axis=0).sum())


def _missing(c: _Candidates, k: int, kept: list[int], got_scores, nms, tol: _Tolerance, check) -> int:
    """Candidates of channel ``k`` that must take part in NMS yet are neither kept, suppressed by a
    kept box scoring at least as high, nor below the score of a full max_det."""
    must = c.required[k] > nms.conf_thres + tol.score
    must[kept] = False
    req = np.nonzero(must)[0]
    if not len(req):
        return 0
    s = c.required[k, req]
    explained = np.zeros(len(req), dtype=bool)
    if kept:
        slack = (1 - tol.min_iou) + _uncertainty(c.boxes[req], check)[:, None] + _uncertainty(c.boxes[kept], check)
        overlap = iou_matrix(c.boxes[req], c.boxes[kept]) > nms.iou_thres - slack
        higher = c.allowed[k, kept][None] >= s[:, None] - tol.score
        explained |= (overlap & higher).any(axis=1)
    if len(kept) >= nms.max_det:
        explained |= s <= c.allowed[k, kept].min() + tol.score
    if len(got_scores) >= nms.max_det:
        explained |= s <= got_scores.min() + tol.score
    return int((~explained).sum())


def check_image_nms(c: _Candidates, got, nms: "DetectionOptions", tol: _Tolerance) -> _ImageCheck:
    """Judge one image's artifact detections ``got`` (boxes, scores, labels) as an NMS of ``c``."""
    gb, gs, gl = got
    check = _ImageCheck()
    kept: dict[int, list[int]] = {}
    for j in np.argsort(-gs, kind="stable"):
        found = _identify(c, kept, gb[j], gs[j], gl[j], nms.conf_thres, tol)
        if found is None:
            check.unidentified += 1
            continue
        k, a = found
        kept.setdefault(k, []).append(a)
        centre, size = _box_errors(c.boxes[a][None], gb[j])
        check.centre_noise = max(check.centre_noise, float(centre[0]))
        check.size_noise = max(check.size_noise, float(size[0]))
        if not _sub_pixel(c.boxes[a][None])[0]:
            check.worst_iou = min(check.worst_iou, float(iou_matrix(gb[j], c.boxes[a])[0, 0]))
        check.max_score_diff = max(check.max_score_diff, abs(float(c.allowed[k, a]) - float(gs[j])))
    limit = nms.iou_thres + (1 - tol.min_iou)
    check.overlapping = sum(_overlapping(c.boxes[a], limit, check) for a in kept.values())
    channels = np.nonzero((c.required > nms.conf_thres + tol.score).any(axis=1))[0]
    check.missing = sum(_missing(c, int(k), kept.get(int(k), []), gs, nms, tol, check) for k in channels)
    return check


def _candidates_per_image(reference, nms, background, score_tol) -> list[_Candidates] | None:
    if nms is None or any(DECODED_BOXES not in r or DECODED_SCORES not in r for r in reference):
        return None
    return [
        nms_candidates(b, s, nms, background, score_tol)
        for r in reference
        for b, s in zip(r[DECODED_BOXES], r[DECODED_SCORES])
    ]


def compare_detections(
    reference: Sequence[Mapping[str, np.ndarray]],
    actual: Sequence[Mapping[str, np.ndarray]],
    precision: str,
    *,
    nms: "DetectionOptions | None" = None,
    background: int | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> DetectionComparison:
    """Judge the artifact's detections (``actual``) against PyTorch's (``reference``): as an NMS of
    PyTorch's decoded candidates where ``nms`` and the reference's decoded tensors are known, else by
    one-to-one matching. ``atol``/``rtol`` are the element-wise tolerances (the precision's defaults
    when None) that also bound how far a detection's centre may be from its candidate's."""
    min_matched, min_iou, max_diff = DETECTION_TOLERANCES.get(precision, DETECTION_TOLERANCES["fp32"])
    d_atol, d_rtol, _ = DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    refs = [d for r in reference for d in detections_of(r)]
    gots = [d for a in actual for d in detections_of(a)]
    pairs = [match_detections(ref, got) for ref, got in zip(refs, gots)]
    matched = sum(len(p) for p in pairs)
    n_ref = sum(len(r[0]) for r in refs)
    n_got = sum(len(g[0]) for g in gots)
    total = max(n_ref, n_got)
    candidates = _candidates_per_image(reference, nms, background, max_diff)
    peak = max((float(np.max(np.abs(c.boxes), initial=0.0)) for c in candidates or ()), default=0.0)
    tol = _Tolerance(min_iou, max_diff, atol + rtol * peak, SIZE_TOLERANCES.get(precision, SIZE_TOLERANCES["fp32"]))
    if candidates is None:
        worst_iou = min((iou for p in pairs for _, _, iou in p), default=1.0)
        worst_diff = max(
            (abs(ref[1][r] - got[1][g]) for ref, got, p in zip(refs, gots, pairs) for r, g, _ in p), default=0.0
        )
        share = 1.0 if total == 0 else matched / total
        checks = [_ImageCheck(worst_iou=worst_iou, max_score_diff=worst_diff)]
        method = BY_MATCHING
        passed = share >= min_matched and worst_iou >= min_iou and worst_diff <= max_diff
    else:
        checks = [check_image_nms(c, got, nms, tol) for c, got in zip(candidates, gots)]
        wrong = sum(c.unidentified + c.overlapping + c.missing for c in checks)
        share = 1.0 if total == 0 else max(0.0, 1.0 - wrong / total)
        method = BY_CANDIDATES
        # Identification already held every detection's score and box to the tolerances.
        passed = share >= min_matched
    return DetectionComparison(
        name="detections",
        method=method,
        images=len(refs),
        reference_detections=n_ref,
        artifact_detections=n_got,
        matched=matched,
        unidentified=sum(c.unidentified for c in checks),
        overlapping=sum(c.overlapping for c in checks),
        missing=sum(c.missing for c in checks),
        worst_iou=min(c.worst_iou for c in checks),
        max_score_diff=max(c.max_score_diff for c in checks),
        matched_share=share,
        min_matched=min_matched,
        min_iou=min_iou,
        max_score_tolerance=max_diff,
        centre_tolerance=tol.centre,
        size_tolerance=tol.log_size,
        passed=bool(passed),
    )


def nms_settings(model_info: Mapping[str, Any]) -> "DetectionOptions | None":
    """The NMS baked into a detector, from its model record; None without NMS in the graph."""
    post = model_info.get("postprocess")
    if not post or not post.get("nms", True):
        return None
    from edgecv.models.detection import DetectionOptions

    return DetectionOptions.from_dict(post)
