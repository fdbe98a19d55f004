"""Element-wise comparison of an artifact's outputs with PyTorch's (a classifier's logits with its
top-1 agreement too), and the result objects every comparison returns.

Like Polygraphy's comparator, a comparison is a result object with figures (in float64), the
tolerance used and the tolerance that would have passed, not a bare pass/fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

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


def cosine(a: np.ndarray, b: np.ndarray) -> float:
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
    cos = cosine(ref64, got64) if finite else float("nan")
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


def run_all(infer: Callable[[np.ndarray], Mapping[str, np.ndarray]], batches: Sequence[np.ndarray]):
    return [dict(infer(b)) for b in batches]
