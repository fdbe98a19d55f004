"""Numerical comparison of an artifact's outputs with PyTorch's.

Like Polygraphy's comparator, a comparison is a result object with figures (in float64), the
tolerance used and the tolerance that would have passed, not a bare pass/fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from edgecv.boxes import iou_matrix
from edgecv.calibration.detection_fidelity import detections_of, match_detections

if TYPE_CHECKING:  # pragma: no cover
    from edgecv.models.detection import DetectionOptions

# Per precision: (atol, rtol, min cosine). Pass when |got - ref| <= atol + rtol*max|ref| everywhere
# (numpy.allclose with rtol relative to the output's peak magnitude). FP16/BF16 round every activation to 10/7 mantissa bits, so elementwise
# bounds are loose and the cosine + top-1 agreement carry the check.
DEFAULT_TOLERANCES: dict[str, tuple[float, float, float]] = {
    "fp32": (1e-4, 1e-4, 0.99999),
    "fp16": (5e-2, 5e-2, 0.999),
    "bf16": (2e-1, 1e-1, 0.99),
}


DETECTION_KEYS = frozenset({"num_dets", "boxes", "scores", "labels"})

# Keys of the PyTorch reference that are not graph outputs: a detector's decoded boxes and class
# scores, the tensors its ``decode`` module hands to ``postprocess``.
DECODED_BOXES = "__decoded_boxes"
DECODED_SCORES = "__decoded_scores"


@dataclass
class OutputComparison:
    name: str
    shape: list[int]
    max_abs: float
    mean_abs: float
    p99_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float | None
    atol: float
    rtol: float
    min_cosine: float
    # Smallest atol that would have passed with the same rtol.
    required_atol: float
    passed: bool

    def summary(self) -> str:
        t1 = "" if self.top1_agreement is None else f", top-1 agreement {self.top1_agreement:.1%}"
        return (
            f"{self.name}: max abs {self.max_abs:.3g} (tolerance {self.atol:g} + {self.rtol:g}·max|ref|, "
            f"would pass at atol {self.required_atol:.3g}), max rel {self.max_rel:.3g}, "
            f"cosine {self.cosine:.6f}{t1}"
        )


@dataclass
class VerificationResult:
    artifact: str
    backend: str
    precision: str
    n_inputs: int
    inputs: str
    outputs: list[OutputComparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def failures(self) -> list[OutputComparison]:
        return [o for o in self.outputs if not o.passed]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def headline(self) -> dict[str, float]:
        """The worst figures over all outputs, for tables."""
        return {
            "max_abs": max(o.max_abs for o in self.outputs),
            "max_rel": max((getattr(o, "max_rel", 0.0) for o in self.outputs), default=0.0),
            "cosine": min((o.cosine for o in self.outputs if o.cosine == o.cosine), default=float("nan")),
            "top1_agreement": min(
                (o.top1_agreement for o in self.outputs if o.top1_agreement is not None),
                default=float("nan"),
            ),
        }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of flattened per-sample outputs."""
    a = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
    b = b.reshape(b.shape[0], -1) if b.ndim > 1 else b.reshape(1, -1)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    # Two all-zero outputs are identical.
    cos = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num == 0, 1.0, 0.0))
    return float(cos.mean())


def compare_arrays(
    name: str,
    ref: np.ndarray,
    got: np.ndarray,
    *,
    atol: float,
    rtol: float,
    min_cosine: float,
    classification: bool = False,
) -> OutputComparison:
    ref64 = np.asarray(ref, dtype=np.float64)
    got64 = np.asarray(got, dtype=np.float64)
    if ref64.shape != got64.shape:
        raise ValueError(f"output '{name}' has shape {list(got64.shape)}, PyTorch gave {list(ref64.shape)}")
    diff = np.abs(got64 - ref64)
    finite = bool(np.isfinite(got64).all())
    rel = diff / np.maximum(np.abs(ref64), 1e-12)
    # rtol is taken relative to the output's largest magnitude, not each element's: float32 rounding
    # inside a network scales with the values flowing through it, so a logit near zero next to
    # logits of 3 carries the same absolute noise as they do (hard-swish nets show it first).
    peak = float(np.max(np.abs(ref64), initial=0.0))
    required = float(np.max(diff - rtol * peak, initial=0.0))
    cos = _cosine(ref64, got64) if finite else float("nan")
    top1 = None
    if classification and ref64.ndim == 2:
        top1 = float(np.mean(ref64.argmax(axis=1) == got64.argmax(axis=1)))
    # Cosine and top-1 say nothing about outputs that are all within atol of zero (random-weight
    # nets can produce those); the elementwise bound alone decides there.
    negligible = float(np.max(np.abs(ref64), initial=0.0)) <= atol
    passed = finite and required <= atol and (cos >= min_cosine or negligible)
    return OutputComparison(
        name=name,
        shape=list(ref64.shape),
        max_abs=float(diff.max(initial=0.0)),
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        p99_abs=float(np.percentile(diff, 99)) if diff.size else 0.0,
        max_rel=float(rel.max(initial=0.0)),
        cosine=cos,
        top1_agreement=top1,
        atol=atol,
        rtol=rtol,
        min_cosine=min_cosine,
        required_atol=max(required, 0.0),
        passed=passed,
    )


def verify_outputs(
    artifact: str,
    backend: str,
    precision: str,
    reference: Sequence[Mapping[str, np.ndarray]],
    actual: Sequence[Mapping[str, np.ndarray]],
    *,
    inputs: str,
    atol: float | None = None,
    rtol: float | None = None,
    classification: bool = True,
    nms: "DetectionOptions | None" = None,
    background: int | None = None,
) -> VerificationResult:
    """Compare per-output results gathered over several input batches (concatenated on axis 0).

    ``nms`` and ``background`` are the post-processing baked into a detector: with them, its
    detections are judged as an NMS of PyTorch's decoded boxes and scores (see
    :func:`compare_detections`)."""
    d_atol, d_rtol, min_cos = DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    result = VerificationResult(artifact, backend, precision, len(reference), inputs)
    names = list(reference[0])
    if DETECTION_KEYS <= set(names):
        result.outputs.append(
            compare_detections(reference, actual, precision, nms=nms, background=background, atol=atol, rtol=rtol)
        )
        names = [n for n in names if n not in DETECTION_KEYS]
    # Hidden references (a detector's decoded boxes and scores) are compared where the artifact gave them.
    names = [n for n in names if not n.startswith("__") or n in actual[0]]
    for name in names:
        ref = np.concatenate([r[name] for r in reference])
        got = np.concatenate([a[name] for a in actual])
        if not classification and name in BOX_OUTPUTS and ref.ndim == 3 and ref.shape[-1] == 4:
            size_tol = SIZE_TOLERANCES.get(precision, SIZE_TOLERANCES["fp32"])
            result.outputs.append(
                compare_boxes(name, ref, got, atol=atol, rtol=rtol, size_tol=size_tol, min_cosine=min_cos)
            )
            continue
        result.outputs.append(
            compare_arrays(
                name,
                ref,
                got,
                atol=atol,
                rtol=rtol,
                min_cosine=min_cos,
                classification=classification and not name.startswith("__"),
            )
        )
    return result


# --- decoded boxes ------------------------------------------------------------------------------
# Outputs holding decoded boxes [N, A, 4] (x1, y1, x2, y2): a --no-nms graph's, and the tensor a
# detector hands to its NMS (the reference's hidden key, see reference.py).
BOX_OUTPUTS = frozenset({"boxes", DECODED_BOXES})

# Sizes below this many pixels count as this size: narrower boxes are points for every purpose, and
# exp() of a very negative logit underflows to 0 on one backend and not on another.
MIN_BOX_SIZE = 1e-3
# Per precision, the relative size error (the error of log(size), which is the size logit's) that
# passes whatever the tolerance elsewhere. Random-weight nets carry activations of 1e4 and more into
# the head, where float32 noise reaches 1e-3 of a logit; 0.5 % of a size is such noise at fp32, far
# below what a wrong decode changes.
SIZE_TOLERANCES: dict[str, float] = {"fp32": 5e-3, "fp16": 5e-2, "bf16": 1e-1}
# A size is recovered from corners stored in float32, so it is known only to a few units in the last
# place of its larger corner: sizes under this share of that corner count as that size (leaving at
# most ~3e-4 of rounding in a log size), so a sliver far from the origin is judged by its centre.
SIZE_RESOLUTION = 1e-3


@dataclass
class BoxComparison:
    """Decoded boxes compared as decoders make them: centres in pixels, sizes as log(size).

    Every decoder makes a box size as exp(logit)·prior, so float32 noise in the logit (which scales
    with the network's activations, not with the box) becomes a *relative* size error: 3e-4 of a
    logit is 100 pixels of a 350,000-pixel box, the size random weights decode. Corners cannot be
    judged element-wise; log sizes can, and their difference is the logit's. Centres carry the float32
    rounding of the corners they are recovered from, so their tolerance scales with the largest
    corner."""

    name: str
    shape: list[int]
    max_abs: float  # of the corners, for tables
    centre_max_abs: float
    centre_tolerance: float
    log_size_max_abs: float
    log_size_tolerance: float
    cosine: float
    min_cosine: float
    passed: bool

    top1_agreement = None

    def summary(self) -> str:
        return (
            f"{self.name}: centres max abs {self.centre_max_abs:.3g} px (tolerance {self.centre_tolerance:.3g}), "
            f"log sizes max abs {self.log_size_max_abs:.3g} (tolerance {self.log_size_tolerance:.3g}), "
            f"corners max abs {self.max_abs:.3g} px, cosine {self.cosine:.6f}"
        )


def box_parts(boxes: np.ndarray, floor: np.ndarray | float = MIN_BOX_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(centres [..., 2], log sizes [..., 2]) of corner boxes [..., 4], in float64, sizes floored at
    ``floor``."""
    b = np.asarray(boxes, dtype=np.float64)
    centres = (b[..., :2] + b[..., 2:]) / 2
    sizes = np.maximum(np.abs(b[..., 2:] - b[..., :2]), floor)
    return centres, np.log(sizes)


def size_floor(*boxes: np.ndarray) -> np.ndarray:
    """Per box and axis, the smallest size the corners of every one of ``boxes`` can resolve."""
    corners = np.max([np.maximum(np.abs(b[..., :2]), np.abs(b[..., 2:])) for b in boxes], axis=0)
    return np.maximum(MIN_BOX_SIZE, SIZE_RESOLUTION * corners)


def compare_boxes(
    name: str, ref: np.ndarray, got: np.ndarray, *, atol: float, rtol: float, size_tol: float, min_cosine: float
) -> BoxComparison:
    ref64 = np.asarray(ref, dtype=np.float64)
    got64 = np.asarray(got, dtype=np.float64)
    if ref64.shape != got64.shape:
        raise ValueError(f"output '{name}' has shape {list(got64.shape)}, PyTorch gave {list(ref64.shape)}")
    finite = bool(np.isfinite(got64).all())
    floor = size_floor(ref64, got64)
    (rc, rs), (gc, gs) = box_parts(ref64, floor), box_parts(got64, floor)
    centre_diff = float(np.max(np.abs(gc - rc), initial=0.0))
    size_diff = float(np.max(np.abs(gs - rs), initial=0.0))
    centre_tol = atol + rtol * float(np.max(np.abs(ref64), initial=0.0))
    size_tol = max(size_tol, atol + rtol * float(np.max(np.abs(rs), initial=0.0)))
    cos = _cosine(ref64, got64) if finite else float("nan")
    negligible = float(np.max(np.abs(ref64), initial=0.0)) <= atol
    passed = finite and centre_diff <= centre_tol and size_diff <= size_tol and (cos >= min_cosine or negligible)
    return BoxComparison(
        name=name,
        shape=list(ref64.shape),
        max_abs=float(np.max(np.abs(got64 - ref64), initial=0.0)),
        centre_max_abs=centre_diff,
        centre_tolerance=centre_tol,
        log_size_max_abs=size_diff,
        log_size_tolerance=size_tol,
        cosine=cos,
        min_cosine=min_cosine,
        passed=passed,
    )


def run_all(infer: Callable[[np.ndarray], Mapping[str, np.ndarray]], batches: Sequence[np.ndarray]):
    return [dict(infer(b)) for b in batches]


def decoded_tensors(onnx_path) -> tuple[str, str] | None:
    """The tensors an ONNX detector's ``decode`` scope hands to its ``postprocess`` scope: (decoded
    boxes, class scores); None when the graph does not have exactly those two (a detector not built
    on the contract's scopes)."""
    import onnx

    from edgecv.onnx_graph import OnnxGraph

    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = OnnxGraph(model)
    crossing: list[str] = []
    for node in model.graph.node:
        if not node.name.startswith("/postprocess/"):
            continue
        for tensor in node.input:
            source = graph.producer.get(tensor)
            # Constants folded into the decode scope are not what it computes.
            decoded = source is not None and source.op_type != "Constant" and source.name.startswith("/decode/")
            if decoded and tensor not in crossing:
                crossing.append(tensor)
    nms = next((n for n in model.graph.node if n.op_type == "NonMaxSuppression"), None)
    if len(crossing) != 2 or nms is None or nms.input[0] not in crossing:
        return None
    # The boxes are the crossing tensor NMS reads as its first input; the other holds the scores.
    return nms.input[0], next(t for t in crossing if t != nms.input[0])


def onnx_decoded_outputs(
    path, batches: Sequence[np.ndarray], names: tuple[str, str]
) -> list[dict[str, np.ndarray]] | None:
    """Run an ONNX detector with its :func:`decoded_tensors` exposed as outputs, returned under
    ``names`` per batch; None without such tensors."""
    import onnx
    import onnxruntime as ort

    exposed = decoded_tensors(path)
    if exposed is None:
        return None
    model = onnx.load(str(path))
    known = {o.name for o in model.graph.output}
    for tensor in exposed:
        if tensor not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed_name = session.get_inputs()[0].name
    return [dict(zip(names, session.run(list(exposed), {feed_name: b}))) for b in batches]


def openvino_decoded_outputs(
    xml, onnx_path, batches: Sequence[np.ndarray], names: tuple[str, str], precision: str | None = None
) -> list[dict[str, np.ndarray]] | None:
    """Run an OpenVINO IR converted from the detector ``onnx_path`` with its :func:`decoded_tensors`
    (the IR keeps the ONNX tensor names) exposed as outputs, at inference ``precision`` (OpenVINO's
    hint: ``f32``, ``bf16``); None without such tensors."""
    import openvino as ov

    exposed = decoded_tensors(onnx_path)
    if exposed is None:
        return None
    core = ov.Core()
    model = core.read_model(str(xml))
    model.add_outputs(list(exposed))
    config = {"INFERENCE_PRECISION_HINT": precision} if precision else {}
    compiled = core.compile_model(model, "CPU", config)
    ports = [compiled.output(t) for t in exposed]
    request = compiled.create_infer_request()
    results = []
    for b in batches:
        out = request.infer({0: b})
        results.append({name: np.array(out[port]) for name, port in zip(names, ports)})
    return results


def decoded_outputs(
    artifact, backend: str, batches: Sequence[np.ndarray], *, onnx_path, precision: str | None = None
) -> list[dict[str, np.ndarray]] | None:
    """An artifact's decoded boxes and class scores (the tensors before its NMS) per batch, under the
    reference's keys, where its backend can expose them (ONNX Runtime, OpenVINO); else None."""
    names = (DECODED_BOXES, DECODED_SCORES)
    if backend == "onnxruntime":
        return onnx_decoded_outputs(artifact, batches, names)
    if backend == "openvino":
        return openvino_decoded_outputs(artifact, onnx_path, batches, names, precision)
    return None


# --- detectors ----------------------------------------------------------------------------------
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
