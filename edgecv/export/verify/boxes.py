"""Decoded boxes compared as decoders make them: centres in pixels, sizes as log(size)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .comparison import DECODED_BOXES, cosine

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
    cos = cosine(ref64, got64) if finite else float("nan")
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
