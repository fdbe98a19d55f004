"""Which layers lose the most by running in INT8.

Method: start from the fully quantized TensorRT-flavour graph and, one layer at a time, feed that
layer its float inputs again (bypass the Q→DQ pairs in front of it, which is what ``--exclude`` does
to the artifacts: with dedicated pairs no other node is touched). The gain in output SQNR against
FP32 on a few held-out inputs ranks the layers. This needs no re-quantization (ONNX Runtime's
quantizer takes seconds per call; a rewired graph takes a session), so MobileNetV2's 53 layers rank
in well under a minute on 2 cores with 16 inputs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgecv.onnx_graph import OnnxGraph
from edgecv.progress import StepProgress as Progress

from .detection_fidelity import compare_detections, is_detection_output
from .fidelity import OutputFidelity, collect
from .passes import bypass_input_qdq
from .runners import ort_runner

LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
DEFAULT_INPUTS = 16


@dataclass(frozen=True)
class LayerSensitivity:
    node: str
    op_type: str
    sqnr_db: float | None  # output SQNR with this layer alone left in float (classifiers)
    gain_db: float | None  # … minus the fully quantized graph's SQNR
    top1_agreement: float | None
    # Detectors: mAP of the detections against FP32's with this layer alone in float, and its gain.
    map: float | None = None
    gain_map: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SensitivityReport:
    method: str
    inputs: int
    baseline_sqnr_db: float | None
    layers: list[LayerSensitivity]  # most sensitive first
    wall_s: float
    metric: str = "sqnr_db"  # "map" for detectors
    baseline_map: float | None = None

    def most_sensitive(self, n: int) -> list[str]:
        return [layer.node for layer in self.layers[:n]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "metric": self.metric,
            "inputs": self.inputs,
            "baseline_sqnr_db": self.baseline_sqnr_db,
            "baseline_map": self.baseline_map,
            "wall_s": round(self.wall_s, 3),
            "layers": [layer.to_dict() for layer in self.layers],
        }


def quantized_layers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Layers (Conv/Gemm/MatMul) with at least one input coming through a DequantizeLinear."""
    graph = OnnxGraph(model)
    return [
        n
        for n in graph.nodes
        if n.op_type in LAYER_OPS and any(graph.producer_op(i) == "DequantizeLinear" for i in n.input)
    ]


def with_float_inputs(model: onnx.ModelProto, node_name: str) -> onnx.ModelProto:
    """A copy of ``model`` in which ``node_name`` reads the float tensors in front of its Q→DQ pairs."""
    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    bypass_input_qdq(variant, [node_name])
    return variant


def rank_layers(
    qdq_onnx: str | Path,
    reference: Mapping[str, np.ndarray],
    inputs: Sequence[np.ndarray],
    *,
    progress: Progress | None = None,
    threads: int | None = None,
) -> SensitivityReport:
    """Rank the quantized layers of ``qdq_onnx`` (a graph with a Q→DQ pair per consumer, the
    TensorRT flavour) by how much output SQNR each gains when left in float. ``reference``: the
    FP32 outputs for ``inputs`` (a few held-out batches)."""
    start = time.perf_counter()
    model = onnx.load(str(qdq_onnx))
    if is_detection_output(reference):
        return _rank_by_map(model, qdq_onnx, reference, inputs, progress, threads, start)
    first = next(iter(reference))
    baseline, scored = _score_layers(
        model,
        qdq_onnx,
        inputs,
        threads,
        progress,
        lambda actual: OutputFidelity.compare(first, reference[first], actual[first]),
    )
    results = [
        LayerSensitivity(
            node.name,
            node.op_type,
            round(fid.sqnr_db, 3),
            round(fid.sqnr_db - baseline.sqnr_db, 3),
            fid.top1_agreement,
        )
        for node, fid in scored
    ]
    results.sort(key=lambda r: r.gain_db, reverse=True)
    return SensitivityReport(
        method="SQNR gain of the output when the layer alone is left in float (TensorRT-flavour graph)",
        inputs=sum(len(b) for b in inputs),
        baseline_sqnr_db=round(baseline.sqnr_db, 3),
        layers=results,
        wall_s=time.perf_counter() - start,
    )


def _score_layers(model, qdq_onnx, inputs, threads, progress, score_outputs):
    """(the score of ``qdq_onnx``, [(layer, its score when it alone reads float inputs)]) for every
    quantized layer; ``score_outputs`` scores the outputs collected over ``inputs``."""

    def score(proto_or_path):
        source = proto_or_path.SerializeToString() if isinstance(proto_or_path, onnx.ModelProto) else proto_or_path
        return score_outputs(collect(ort_runner(source, threads), inputs))

    baseline = score(qdq_onnx)
    layers = quantized_layers(model)
    scored = []
    for i, node in enumerate(layers):
        scored.append((node, score(with_float_inputs(model, node.name))))
        if progress is not None:
            progress("ranking layer sensitivity", i + 1, len(layers))
    return baseline, scored


def _rank_by_map(model, qdq_onnx, reference, inputs, progress, threads, start) -> SensitivityReport:
    """Detectors: a layer's sensitivity is the mAP its INT8 detections regain against the FP32
    detections when it alone runs in float (an SQNR of padded detection rows means nothing)."""

    def detection_map(actual) -> float:
        fid = compare_detections(reference, actual, artifact="ranking")
        return fid.map if fid.map is not None else 0.0

    baseline, scored = _score_layers(model, qdq_onnx, inputs, threads, progress, detection_map)
    results = [
        LayerSensitivity(node.name, node.op_type, None, None, None, round(value, 4), round(value - baseline, 4))
        for node, value in scored
    ]
    results.sort(key=lambda r: r.gain_map, reverse=True)
    return SensitivityReport(
        method="mAP gain (INT8 detections against FP32 detections) when the layer alone is left in float "
        "(TensorRT-flavour graph)",
        inputs=sum(len(b) for b in inputs),
        baseline_sqnr_db=None,
        layers=results,
        wall_s=time.perf_counter() - start,
        metric="map",
        baseline_map=round(baseline, 4),
    )
