"""How closely an INT8 model follows its FP32 original on held-out inputs.

Figures per output, in float64: top-1 / top-5 agreement of the predicted classes, cosine similarity
of each output row (mean and worst), SQNR of the whole output in dB (signal power over quantization
noise power: 20 dB means the noise is a tenth of the signal's amplitude), and the largest absolute
difference. A :class:`FidelityReport`'s headline is its first output (the logits of a classifier).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

Outputs = Mapping[str, np.ndarray]
RunFn = Callable[[np.ndarray], Outputs]


@dataclass(frozen=True)
class OutputFidelity:
    name: str
    top1_agreement: float | None
    top5_agreement: float | None
    cosine_mean: float
    cosine_min: float
    sqnr_db: float
    max_abs: float
    mean_abs: float

    @classmethod
    def compare(cls, name: str, reference: np.ndarray, actual: np.ndarray) -> OutputFidelity:
        if reference.shape != actual.shape:
            raise ValueError(f"output {name!r}: shapes differ, {reference.shape} vs {actual.shape}")
        ref = reference.astype(np.float64).reshape(reference.shape[0], -1)
        act = actual.astype(np.float64).reshape(actual.shape[0], -1)
        diff = act - ref
        noise = float(np.sum(diff * diff))
        signal = float(np.sum(ref * ref))
        sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(act, axis=1)
        cos = np.where(norms > 0, np.sum(ref * act, axis=1) / np.where(norms > 0, norms, 1), 1.0)
        top1 = top5 = None
        if reference.ndim == 2 and reference.shape[1] >= 2:  # class scores: (N, classes)
            top1 = float(np.mean(ref.argmax(1) == act.argmax(1)))
            if reference.shape[1] >= 5:
                top5_ref = np.argsort(-ref, axis=1)[:, :5]
                top5 = float(np.mean([r[0] in a for r, a in zip(top5_ref, np.argsort(-act, axis=1)[:, :5])]))
        return cls(
            name=name,
            top1_agreement=top1,
            top5_agreement=top5,
            cosine_mean=float(cos.mean()),
            cosine_min=float(cos.min()),
            sqnr_db=sqnr,
            max_abs=float(np.abs(diff).max()),
            mean_abs=float(np.abs(diff).mean()),
        )


@dataclass(frozen=True)
class FidelityReport:
    """INT8 against FP32 for one artifact. ``top5_agreement`` is the share of inputs whose FP32 top-1
    class is among the INT8 model's top 5 (the usual reading of "top-5 agreement")."""

    artifact: str
    inputs: int
    in_sample: bool  # measured on calibration inputs (too few to hold any out)
    outputs: list[OutputFidelity] = field(default_factory=list)

    @property
    def headline(self) -> OutputFidelity:
        return self.outputs[0]

    def to_dict(self) -> dict[str, Any]:
        head = asdict(self.headline)
        head.pop("name")
        d: dict[str, Any] = {"artifact": self.artifact, "inputs": self.inputs, "in_sample": self.in_sample, **head}
        d["cosine"] = d["cosine_mean"]
        if len(self.outputs) > 1:
            d["outputs"] = {o.name: {k: v for k, v in asdict(o).items() if k != "name"} for o in self.outputs}
        return _json_safe(d)


def _json_safe(obj):
    # JSON has no infinity: a bit-exact output has an infinite SQNR, written as null.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    return obj


def collect(run: RunFn, inputs: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Run every input batch and concatenate each output along the batch axis."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in inputs:
        for name, value in run(batch).items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def compare(
    reference: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], *, artifact: str, in_sample: bool = False
) -> FidelityReport:
    missing = [name for name in reference if name not in actual]
    if missing:
        raise ValueError(f"{artifact} lacks the output(s) {', '.join(missing)}")
    outputs = [OutputFidelity.compare(name, ref, actual[name]) for name, ref in reference.items()]
    return FidelityReport(artifact, len(next(iter(reference.values()))), in_sample, outputs)
