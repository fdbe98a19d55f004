"""TensorRT preflight: what in an ONNX graph would stop or slow a TensorRT build, found without a GPU
and without TensorRT (``edgecv check ARTIFACT --target tensorrt``).

Each finding names its node, its rule and its severity: ``error`` (the parser or the builder would
fail), ``warning`` (it builds, but slower than it should, or it cannot run elsewhere), ``info``
(what TensorRT will do that a user should know). The operator table is data, with the TensorRT
version each fact comes from; the Q/DQ rules are :mod:`edgecv.calibration.tensorrt_rules`, which the
INT8 stage already applies to the graph it writes.

Sources: onnx-tensorrt ``docs/operators.md`` at ``release/8.6-GA`` and ``10.1-GA`` (the operator
matrix and its restrictions), TensorRT's OSS ``CHANGELOG.md`` (operators added after 10.1),
``NvInfer.h`` of TensorRT 10.3 (``INMSLayer``'s box limit) and the EfficientNMS plugin's README.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, numpy_helper

from edgecv.calibration.tensorrt_rules import QDQ_OPS, check_tensorrt_qdq
from edgecv.errors import ArtifactError, InvalidOptionError
from edgecv.onnx_graph import OnnxGraph, default_opset, node_label
from edgecv.tensorrt_info import parse_version

DEFAULT_TRT_VERSION = "10.3"  # JetPack 6.x, the Jetson Orin default
OPS_SOURCE_86 = "onnx-tensorrt docs/operators.md (release/8.6-GA)"
OPS_SOURCE_101 = "onnx-tensorrt docs/operators.md (10.1-GA)"

# Operators TensorRT's ONNX parser does not import: op → (first TensorRT version that imports it,
# or None: none up to 11.1; where the fact comes from). Standard-domain operators only.
UNSUPPORTED_OPS: dict[str, tuple[str | None, str]] = {
    **{
        op: (None, OPS_SOURCE_86)
        for op in (
            "Bernoulli",
            "BitShift",
            "Compress",
            "ConcatFromSequence",
            "ConvInteger",
            "DFT",
            "Det",
            "DynamicQuantizeLinear",
            "MatMulInteger",
            "MaxRoiPool",
            "MaxUnpool",
            "MelWeightMatrix",
            "Multinomial",
            "NegativeLogLikelihoodLoss",
            "Optional",
            "OptionalGetElement",
            "OptionalHasElement",
            "QLinearConv",
            "QLinearMatMul",
            "SequenceAt",
            "SequenceConstruct",
            "SequenceEmpty",
            "SequenceErase",
            "SequenceInsert",
            "SequenceLength",
            "SequenceMap",
            "SoftmaxCrossEntropyLoss",
            "SplitToSequence",
            "StringNormalizer",
            "TfIdfVectorizer",
            "Unique",
        )
    },
    # Opset 18-20 operators the 10.1 matrix lists as unsupported (8.6 predates them).
    **{
        op: (None, OPS_SOURCE_101)
        for op in (
            "AffineGrid",
            "BitwiseAnd",
            "BitwiseNot",
            "BitwiseOr",
            "BitwiseXor",
            "CenterCropPad",
            "ImageDecoder",
            "RegexFullMatch",
            "StringConcat",
            "StringSplit",
        )
    },
    "Hardmax": ("9.2", "TensorRT CHANGELOG 9.2.0 (unsupported in 8.6)"),
    "BlackmanWindow": ("10.4", "TensorRT CHANGELOG 10.4.0"),
    "HammingWindow": ("10.4", "TensorRT CHANGELOG 10.4.0"),
    "HannWindow": ("10.4", "TensorRT CHANGELOG 10.4.0"),
    "STFT": ("10.5", "TensorRT CHANGELOG 10.5.0 (real-valued only)"),
}
# Highest ONNX opset each documented parser release names ("supports operators up to opset N").
MAX_OPSET = {(8, 6): (17, OPS_SOURCE_86), (10, 0): (20, OPS_SOURCE_101)}
# onnx-tensorrt 10.1: "`K` input must be less than 3840" for TopK.
TOPK_MAX = 3840
# NvInfer.h (10.3) INMSLayer: only the K highest-scoring boxes per image are considered;
# K = 2000 on SM 5.3 / 6.2 (Jetson Nano, TX2), 5000 elsewhere.
NMS_TOPK_LIMIT = {"sm53/62": 2000, "other": 5000}
# EfficientNMS plugin README: after sorting, the top 4096 scores go to the NMS kernel.
EFFICIENT_NMS_TOPK = 4096
# Q/DQ rules (tensorrt_rules) that make the build fail; the others leave it slower.
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
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: str
    rule: str
    node: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.node}: {self.message}"


@dataclass
class PreflightReport:
    artifact: str
    trt_version: str
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what to know before reading the findings

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def summary(self) -> str:
        return f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "trt_version": self.trt_version,
            "would_build": not self.errors,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "notes": list(self.notes),
            "findings": [asdict(f) for f in self.findings],
        }


def _version_at_least(version: tuple[int, ...], since: str) -> bool:
    return version[:2] >= parse_version(since)[:2]


def _check_ops(model: onnx.ModelProto, graph: OnnxGraph, version: tuple[int, ...], text: str) -> list[Finding]:
    out = []
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx"):
            continue
        entry = UNSUPPORTED_OPS.get(node.op_type)
        if entry is None:
            continue
        since, source = entry
        if since is None or not _version_at_least(version, since):
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
    known = [(v, limit) for v, limit in MAX_OPSET.items() if version[:2] >= v]
    if known:
        limit, source = max(known)[1]
        if opset > limit:
            out.append(
                Finding(
                    "warning",
                    "opset",
                    "graph",
                    f"opset {opset} is above {limit}, the highest the parser documents for TensorRT "
                    f"{'.'.join(map(str, max(known)[0]))}; operators newer than that may not import",
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


def _check_qdq(model: onnx.ModelProto, version: tuple[int, ...], exempt: tuple[str, ...]) -> list[Finding]:
    if not any(n.op_type in QDQ_OPS for n in model.graph.node):
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
                "edgecv.calibration.tensorrt_rules (onnx-tensorrt operators.md, NvInfer.h)",
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
) -> PreflightReport:
    """Everything in ``model`` that would stop or slow a TensorRT ``trt_version`` build."""
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
        + _check_qdq(model, version, exempt)
        + _check_types(model, graph, version)
        + _check_dynamic(model, graph, max_batch)
        + _check_nms(graph)
    )
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: order[f.severity])
    return PreflightReport(name or model.graph.name or "model", text, findings)


# ONNX files of a run folder that are meant for TensorRT, in the order a user reads them.
RUN_FOLDER_ONNX = ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "model.int8.fp16.onnx")


def check_target(
    path: str | Path, trt_version: str = DEFAULT_TRT_VERSION, *, max_batch: int | None = None
) -> list[PreflightReport]:
    """Preflight one ONNX file, or every TensorRT-bound ONNX of a run folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = [path / n for n in RUN_FOLDER_ONNX if (path / n).is_file()]
        if not files:
            raise ArtifactError(f"{path} holds none of {', '.join(RUN_FOLDER_ONNX)}")
        return [check_file(f, trt_version, max_batch=max_batch) for f in files]
    if path.suffix.lower() != ".onnx":
        raise ArtifactError(f"{path}: the TensorRT preflight reads .onnx files or run folders")
    return [check_file(path, trt_version, max_batch=max_batch)]


def check_file(path: Path, trt_version: str = DEFAULT_TRT_VERSION, *, max_batch: int | None = None) -> PreflightReport:
    """Preflight one ONNX file with what its folder's manifest and its own metadata say about it, so
    the file and the folder it sits in get the same findings."""
    manifest = _manifest_beside(path)
    report = check_tensorrt(path, trt_version, max_batch=max_batch, exempt=kept_in_float(manifest))
    note = _other_engine_note(path, manifest)
    if note:
        report.notes.append(note)
    return report


def _manifest_beside(path: Path) -> dict[str, Any]:
    from edgecv.runfolder import read_manifest

    try:
        return read_manifest(path.parent)
    except ArtifactError:  # a file outside a run folder (or a bundle) has only its own metadata
        return {}


def kept_in_float(manifest: dict[str, Any]) -> tuple[str, ...]:
    """Nodes the INT8 stage kept in float on purpose (--exclude, --keep-fp32, a detector's decoding
    and NMS): not INT8 by choice, so not a fault of the Q/DQ graph."""
    info = ((manifest.get("stages") or {}).get("int8") or {}).get("info") or {}
    return tuple(info.get("excluded") or ())


def _other_engine_note(path: Path, manifest: dict[str, Any]) -> str | None:
    """For an INT8 flavour made for another engine: say so, and name the TensorRT one."""
    from edgecv.artifact_metadata import PREFIX, read_metadata
    from edgecv.runfolder import INT8_ONNX

    record = next((a for a in manifest.get("artifacts", []) if a.get("path") == path.name), {})
    meta = read_metadata(path)
    intended = meta.get(f"{PREFIX}intended_for") or record.get("intended_for")
    precision = meta.get(f"{PREFIX}precision") or record.get("precision")
    if precision != "int8" or intended in (None, "", "tensorrt"):
        return None
    tensorrt = next(
        (
            a["path"]
            for a in manifest.get("artifacts", [])
            if a.get("intended_for") == "tensorrt" and a.get("precision") == "int8" and a.get("format") == "onnx"
        ),
        INT8_ONNX,
    )
    return (
        f"{path.name} is the INT8 flavour made for {intended}, not for TensorRT, so the findings below are "
        f"expected; check {path.parent / tensorrt} (the TensorRT flavour) instead"
    )
