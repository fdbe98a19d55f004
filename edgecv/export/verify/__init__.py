"""Verification of an artifact against PyTorch: :func:`verify_outputs` picks the comparison each
output needs (element-wise in :mod:`.comparison`, decoded boxes in :mod:`.boxes`, detections after NMS
in :mod:`.detection`); :mod:`.decoded` exposes a detector's pre-NMS tensors to compare.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .boxes import BOX_OUTPUTS, SIZE_TOLERANCES, BoxComparison, box_parts, compare_boxes, size_floor
from .comparison import (
    DECODED_BOXES,
    DECODED_SCORES,
    DEFAULT_TOLERANCES,
    DETECTION_KEYS,
    OutputComparison,
    VerificationResult,
    compare_arrays,
    run_all,
)
from .decoded import decoded_outputs, decoded_tensors
from .detection import DETECTION_TOLERANCES, DetectionComparison, compare_detections, nms_settings

if TYPE_CHECKING:  # pragma: no cover
    from edgecv.models.detection import DetectionOptions

__all__ = [
    "BOX_OUTPUTS",
    "DECODED_BOXES",
    "DECODED_SCORES",
    "DEFAULT_TOLERANCES",
    "DETECTION_KEYS",
    "DETECTION_TOLERANCES",
    "SIZE_TOLERANCES",
    "BoxComparison",
    "DetectionComparison",
    "OutputComparison",
    "VerificationResult",
    "box_parts",
    "compare_arrays",
    "compare_boxes",
    "compare_detections",
    "decoded_outputs",
    "decoded_tensors",
    "nms_settings",
    "run_all",
    "size_floor",
    "verify_outputs",
]


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
