"""Numerical comparison of an artifact's outputs with PyTorch's.

Like Polygraphy's comparator, a comparison is a result object with figures (in float64), the
tolerance used and the tolerance that would have passed, not a bare pass/fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgecv.calibration.detection_fidelity import detections_of, match_detections

# Per precision: (atol, rtol, min cosine). Pass when |got - ref| <= atol + rtol*max|ref| everywhere
# (numpy.allclose with rtol relative to the output's peak magnitude). FP16/BF16 round every activation to 10/7 mantissa bits, so elementwise
# bounds are loose and the cosine + top-1 agreement carry the check.
DEFAULT_TOLERANCES: dict[str, tuple[float, float, float]] = {
    "fp32": (1e-4, 1e-4, 0.99999),
    "fp16": (5e-2, 5e-2, 0.999),
    "bf16": (2e-1, 1e-1, 0.99),
}


DETECTION_KEYS = frozenset({"num_dets", "boxes", "scores", "labels"})


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
) -> VerificationResult:
    """Compare per-output results gathered over several input batches (concatenated on axis 0)."""
    d_atol, d_rtol, min_cos = DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    result = VerificationResult(artifact, backend, precision, len(reference), inputs)
    names = list(reference[0])
    if DETECTION_KEYS <= set(names):
        result.outputs.append(compare_detections(reference, actual, precision))
        names = [n for n in names if n not in DETECTION_KEYS]
    # Hidden references (a detector's decoded boxes and scores) are compared where the artifact gave them.
    names = [n for n in names if not n.startswith("__") or n in actual[0]]
    for name in names:
        ref = np.concatenate([r[name] for r in reference])
        got = np.concatenate([a[name] for a in actual])
        tol = atol
        if name.startswith("__"):
            # Decoded boxes are pixel coordinates: x1 = cx - w/2 cancels two large numbers, so float32
            # noise scales with the largest coordinate (random weights decode boxes far off the picture).
            tol = max(atol, 1e-5 * float(np.max(np.abs(ref), initial=0.0)))
        result.outputs.append(
            compare_arrays(
                name,
                ref,
                got,
                atol=tol,
                rtol=rtol,
                min_cosine=min_cos,
                classification=classification and not name.startswith("__"),
            )
        )
    return result


def run_all(infer: Callable[[np.ndarray], Mapping[str, np.ndarray]], batches: Sequence[np.ndarray]):
    return [dict(infer(b)) for b in batches]


def onnx_decoded_outputs(
    path, batches: Sequence[np.ndarray], names: tuple[str, str]
) -> list[dict[str, np.ndarray]] | None:
    """Run an ONNX detector with the tensors its ``decode`` scope hands to its ``postprocess`` scope
    (decoded boxes, class scores) exposed as outputs, returned under ``names`` per batch; None when
    the graph does not have exactly those two (a detector not built on the contract's scopes)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    # Constants folded into the decode scope are not what it computes.
    producer = {out: n.name for n in model.graph.node if n.op_type != "Constant" for out in n.output}
    crossing: list[str] = []
    for node in model.graph.node:
        if not node.name.startswith("/postprocess/"):
            continue
        for tensor in node.input:
            if producer.get(tensor, "").startswith("/decode/") and tensor not in crossing:
                crossing.append(tensor)
    nms = next((n for n in model.graph.node if n.op_type == "NonMaxSuppression"), None)
    if len(crossing) != 2 or nms is None:
        return None
    # The boxes are the crossing tensor NMS reads as its first input; the other holds the scores.
    boxes = nms.input[0] if nms.input[0] in crossing else None
    if boxes is None:
        return None
    exposed = [boxes, next(t for t in crossing if t != boxes)]
    known = {o.name for o in model.graph.output}
    for tensor in exposed:
        if tensor not in known:
            model.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed_name = session.get_inputs()[0].name
    return [dict(zip(names, session.run(exposed, {feed_name: b}))) for b in batches]


# --- detectors ----------------------------------------------------------------------------------
# Detections after NMS cannot be compared element-wise: a tiny score difference reorders rows. They
# are matched instead, per image, by class and IoU, like Polygraphy compares outputs that need a
# custom comparator; the tensors handed to NMS are compared element-wise where the artifact exposes
# them (ONNX), so a random-weight detector with no detection above threshold is still verified.

# Per precision: (min matched share, min IoU of a matched pair, max score difference).
DETECTION_TOLERANCES: dict[str, tuple[float, float, float]] = {
    "fp32": (0.99, 0.999, 1e-3),
    "fp16": (0.90, 0.95, 5e-2),
    "bf16": (0.80, 0.90, 1e-1),
}


@dataclass
class DetectionComparison:
    name: str
    images: int
    reference_detections: int
    artifact_detections: int
    matched: int
    worst_iou: float
    max_score_diff: float
    matched_share: float
    min_matched: float
    min_iou: float
    max_score_tolerance: float
    passed: bool

    @property
    def max_abs(self) -> float:
        return self.max_score_diff

    def summary(self) -> str:
        return (
            f"{self.name}: matched {self.matched} of {self.reference_detections} PyTorch detections "
            f"({self.artifact_detections} in the artifact) on {self.images} images, worst IoU "
            f"{self.worst_iou:.4f}, worst score difference {self.max_score_diff:.3g} (need ≥ "
            f"{self.min_matched:.0%} matched, IoU ≥ {self.min_iou}, score within {self.max_score_tolerance:g})"
        )

    @property
    def cosine(self) -> float:
        return float("nan")

    top1_agreement = None


def compare_detections(
    reference: Sequence[Mapping[str, np.ndarray]], actual: Sequence[Mapping[str, np.ndarray]], precision: str
) -> DetectionComparison:
    min_matched, min_iou, max_diff = DETECTION_TOLERANCES.get(precision, DETECTION_TOLERANCES["fp32"])
    refs = [d for r in reference for d in detections_of(r)]
    gots = [d for a in actual for d in detections_of(a)]
    matched, worst_iou, worst_diff = 0, 1.0, 0.0
    for ref, got in zip(refs, gots):
        for r, g, iou in match_detections(ref, got):
            matched += 1
            worst_iou = min(worst_iou, iou)
            worst_diff = max(worst_diff, abs(ref[1][r] - got[1][g]))
    n_ref = sum(len(r[0]) for r in refs)
    n_got = sum(len(g[0]) for g in gots)
    total = max(n_ref, n_got)
    share = 1.0 if total == 0 else matched / total
    passed = bool(share >= min_matched and worst_iou >= min_iou and worst_diff <= max_diff)
    return DetectionComparison(
        name="detections",
        images=len(refs),
        reference_detections=n_ref,
        artifact_detections=n_got,
        matched=matched,
        worst_iou=worst_iou,
        max_score_diff=worst_diff,
        matched_share=share,
        min_matched=min_matched,
        min_iou=min_iou,
        max_score_tolerance=max_diff,
        passed=passed,
    )
