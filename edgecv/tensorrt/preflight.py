"""TensorRT preflight: what in an ONNX graph would stop or slow a TensorRT build, found without a GPU
and without TensorRT (``edgecv check ARTIFACT --target tensorrt``).

Each finding names its node, its rule and its severity (:mod:`.findings`). Which operators each
TensorRT version imports is the table in :mod:`.operators`; the Q/DQ rules are :mod:`.rules`, which
the INT8 stage applies to the graph it writes: a caller that knows a graph passed them there says so
(``qdq_passed``), and they are not run a second time. Reading a run folder's files with what its
manifest says of them is :mod:`.run_folder_preflight`.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

from edgecv.errors import ArtifactError, InvalidOptionError
from edgecv.onnx_graph import OnnxGraph, default_opset, node_label
from edgecv.tensorrt.findings import SEVERITIES, Finding, PreflightReport
from edgecv.tensorrt.installation import DEFAULT_TRT_VERSION, parse_version
from edgecv.tensorrt.operators import (
    EFFICIENT_NMS_TOPK,
    NMS_TOPK_LIMIT,
    OPS_SOURCE_86,
    OPS_SOURCE_101,
    TOPK_MAX,
    UNSUPPORTED_OPS,
    documented_max_opset,
    is_imported,
)
from edgecv.tensorrt.rules import QDQ_OPS, check_tensorrt_qdq

# Q/DQ rules (:mod:`.rules`) that make the build fail; the others leave it slower.
QDQ_ERRORS = {
    "opset",
    "domain",
    "int8",
    "zero-point",
    "scale-constant",
    "scale-positive",
    "per-channel-weights-only",
    "bias-float",
}
INT32_RANGE = (-(2**31), 2**31 - 1)


def _check_ops(model: onnx.ModelProto, graph: OnnxGraph, version: tuple[int, ...], text: str) -> list[Finding]:
    out = []
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx") or is_imported(node.op_type, version):
            continue
        since, source = UNSUPPORTED_OPS[node.op_type]
        later = f"; TensorRT {since} imports it" if since else ""
        out.append(
            Finding(
                "error",
                "unsupported-op",
                node_label(node),
                f"{node.op_type} is not imported by TensorRT {text}'s ONNX parser{later}",
                source,
            )
        )
    opset = default_opset(model)
    documented = documented_max_opset(version)
    if documented is not None:
        release, limit, source = documented
        if opset > limit:
            out.append(
                Finding(
                    "warning",
                    "opset",
                    "graph",
                    f"opset {opset} is above {limit}, the highest the parser documents for TensorRT "
                    f"{'.'.join(map(str, release))}; operators newer than that may not import",
                    source,
                )
            )
    return out


def _check_plugins(graph: OnnxGraph) -> list[Finding]:
    out = []
    for node in graph.nodes:
        if node.op_type.endswith("_TRT") or node.domain == "trt.plugins":
            out.append(
                Finding(
                    "warning",
                    "plugin",
                    node_label(node),
                    f"{node.op_type} is a TensorRT plugin: the engine needs the plugin library at build and run time, "
                    "and ONNX Runtime and OpenVINO cannot run this graph",
                    "TensorRT plugin registry",
                )
            )
        elif node.domain not in ("", "ai.onnx"):
            out.append(
                Finding(
                    "error",
                    "custom-op",
                    node_label(node),
                    f"{node.domain}::{node.op_type} is not an ONNX operator and TensorRT has no importer for it "
                    "(a plugin of that name would have to be registered)",
                    "onnx-tensorrt (custom domains go to plugins)",
                )
            )
    return out


def _check_types(model: onnx.ModelProto, graph: OnnxGraph, version: tuple[int, ...]) -> list[Finding]:
    out = []
    g = model.graph
    int64_io = [
        v.name
        for v in [*g.input, *g.output]
        if v.type.tensor_type.elem_type == TensorProto.INT64 and v.name not in graph.initializers
    ]
    if version[0] < 10:
        for name in int64_io:
            out.append(
                Finding("warning", "int64", name, "INT64 input/output: TensorRT 8 casts it to INT32", OPS_SOURCE_86)
            )
        for t in g.initializer:
            if t.data_type == TensorProto.INT64:
                values = numpy_helper.to_array(t)
                clamp = values.size and (values.min() < INT32_RANGE[0] or values.max() > INT32_RANGE[1])
                out.append(
                    Finding(
                        "warning" if clamp else "info",
                        "int64",
                        t.name,
                        "INT64 initializer cast down to INT32"
                        + (", values outside INT32 are clamped" if clamp else ""),
                        OPS_SOURCE_86,
                    )
                )
    else:
        for name in int64_io:
            out.append(
                Finding(
                    "info",
                    "int64",
                    name,
                    "INT64 input/output: TensorRT 10+ keeps INT64 (TensorRT 8 cast it to INT32); "
                    "callers must feed int64",
                    OPS_SOURCE_101,
                )
            )
    for v in [*g.input, *g.output]:
        if v.type.tensor_type.elem_type == TensorProto.DOUBLE:
            out.append(
                Finding(
                    "warning", "double", v.name, "DOUBLE is cast down to FLOAT, clamped to ±FLT_MAX", OPS_SOURCE_101
                )
            )
    return out


def _check_dynamic(model: onnx.ModelProto, graph: OnnxGraph, max_batch: int | None) -> list[Finding]:
    out = []
    for v in model.graph.input:
        if v.name in graph.initializers:
            continue
        dims = v.type.tensor_type.shape.dim
        dynamic = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
        if not dynamic:
            continue
        others = [i for i in dynamic if i != 0]
        if others:
            out.append(
                Finding(
                    "error",
                    "dynamic-shape",
                    v.name,
                    f"dimension(s) {', '.join(map(str, others))} are dynamic and edgecv's optimisation profile covers the "
                    "batch axis only: a dynamic input without a profile fails the build; export with a fixed input size",
                    "TensorRT developer guide (dynamic shapes need an optimization profile)",
                )
            )
        if 0 in dynamic:
            top = f"max {max_batch}" if max_batch else "max --max-batch"
            out.append(
                Finding(
                    "info",
                    "dynamic-batch",
                    v.name,
                    f"dynamic batch: engines get one optimisation profile (min 1, opt the export batch, {top}); "
                    "trtexec needs --minShapes/--optShapes/--maxShapes (build_engine.sh passes them)",
                    "TensorRT developer guide",
                )
            )
    return out


def _check_nms(graph: OnnxGraph) -> list[Finding]:
    out = []
    for node in graph.nodes:
        if node.op_type == "NonMaxSuppression":
            name = node_label(node)
            for index, what in ((2, "max_output_boxes_per_class"), (3, "iou_threshold"), (4, "score_threshold")):
                if len(node.input) > index and node.input[index] and graph.constant(node.input[index]) is None:
                    out.append(
                        Finding(
                            "error",
                            "nms",
                            name,
                            f"{what} is computed at run time; TensorRT's NMS layer needs it as a build-time constant",
                            "NvInfer.h INMSLayer (scalar inputs)",
                        )
                    )
            out.append(
                Finding(
                    "warning",
                    "nms",
                    name,
                    f"TensorRT's NMS layer considers only the {NMS_TOPK_LIMIT['other']} highest-scoring boxes per image "
                    f"({NMS_TOPK_LIMIT['sm53/62']} on SM 5.3/6.2: Jetson Nano, TX2); its selected-indices output has a "
                    "data-dependent size, sized for the worst case",
                    "NvInfer.h (10.3) INMSLayer",
                )
            )
        elif node.op_type == "TopK" and len(node.input) > 1:
            k = graph.constant(node.input[1])
            if k is not None and k.size and int(k.reshape(-1)[0]) >= TOPK_MAX:
                out.append(
                    Finding(
                        "error",
                        "topk",
                        node_label(node),
                        f"TopK with K = {int(k.reshape(-1)[0])}; TensorRT's parser needs K < {TOPK_MAX}",
                        OPS_SOURCE_101,
                    )
                )
        elif node.op_type.startswith("EfficientNMS"):
            top_k = next((a.i for a in node.attribute if a.name in ("max_output_boxes",)), None)
            out.append(
                Finding(
                    "info",
                    "nms",
                    node_label(node),
                    f"EfficientNMS keeps only the top {EFFICIENT_NMS_TOPK} scores per image before NMS"
                    + (f"; max_output_boxes = {top_k}" if top_k is not None else ""),
                    "EfficientNMS plugin README",
                )
            )
    return out


def _check_qdq(
    model: onnx.ModelProto, version: tuple[int, ...], exempt: tuple[str, ...], passed: bool
) -> list[Finding]:
    # A graph that broke no rule has no finding here at any version: nothing to map.
    if passed or not any(n.op_type in QDQ_OPS for n in model.graph.node):
        return []
    out = []
    for v in check_tensorrt_qdq(model, exempt=exempt):
        if v.rule in QDQ_ERRORS:
            severity = "error"
        elif v.rule == "weight-qdq-pair":
            # TensorRT 8 refused it ("only activation types allowed as input"); 10+ imports it.
            severity = "error" if version[0] < 10 else "info"
        else:  # dedicated-pair, residual-add: builds, but layers fall out of INT8 fusions
            severity = "warning"
        out.append(
            Finding(
                severity,
                f"qdq-{v.rule}",
                v.node,
                v.message,
                "edgecv.tensorrt.rules (onnx-tensorrt operators.md, NvInfer.h)",
            )
        )
    return out


def check_tensorrt(
    model: onnx.ModelProto | str | Path,
    trt_version: str = DEFAULT_TRT_VERSION,
    *,
    max_batch: int | None = None,
    exempt: tuple[str, ...] = (),
    name: str | None = None,
    qdq_passed: bool = False,
) -> PreflightReport:
    """Everything in ``model`` that would stop or slow a TensorRT ``trt_version`` build.

    ``exempt``: nodes kept in float on purpose, not held to the residual-Add rule. ``qdq_passed``:
    this very graph was found within the Q/DQ rules (with the same ``exempt``) when it was written."""
    version = parse_version(trt_version)
    if version[0] < 8:
        raise InvalidOptionError(f"--trt-version {trt_version}: the preflight knows TensorRT 8.6 to 11")
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        if not path.is_file():
            raise ArtifactError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ArtifactError(f"{path} is not a readable ONNX model: {str(exc).splitlines()[0][:200]}") from None
        name = name or path.name
    graph = OnnxGraph(model)
    text = ".".join(map(str, version))
    findings = (
        _check_ops(model, graph, version, text)
        + _check_plugins(graph)
        + _check_qdq(model, version, exempt, qdq_passed)
        + _check_types(model, graph, version)
        + _check_dynamic(model, graph, max_batch)
        + _check_nms(graph)
    )
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])
    return PreflightReport(name or model.graph.name or "model", text, findings)
