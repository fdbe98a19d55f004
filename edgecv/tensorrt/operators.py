"""Which ONNX operators TensorRT's ONNX parser imports, per TensorRT version, and the limits it puts
on the ones it does: data, each fact with the release it comes from. The preflight reads this table,
and so does the test suite's fake TensorRT parser, so the two cannot disagree.

Sources: onnx-tensorrt ``docs/operators.md`` at ``release/8.6-GA`` and ``10.1-GA`` (the operator
matrix and its restrictions), TensorRT's OSS ``CHANGELOG.md`` (operators added after 10.1),
``NvInfer.h`` of TensorRT 10.3 (``INMSLayer``'s box limit) and the EfficientNMS plugin's README.
Imports neither ONNX nor TensorRT.
"""

from __future__ import annotations

from edgecv.tensorrt.installation import parse_version

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


def version_at_least(version: tuple[int, ...], since: str) -> bool:
    return version[:2] >= parse_version(since)[:2]


def is_imported(op_type: str, version: tuple[int, ...]) -> bool:
    """Whether TensorRT ``version``'s parser imports the standard-domain operator ``op_type``."""
    entry = UNSUPPORTED_OPS.get(op_type)
    if entry is None:
        return True
    since = entry[0]
    return since is not None and version_at_least(version, since)


def unsupported_ops(trt_version: str) -> frozenset[str]:
    """The standard-domain operators TensorRT ``trt_version``'s parser does not import."""
    version = parse_version(trt_version)
    return frozenset(op for op in UNSUPPORTED_OPS if not is_imported(op, version))


def documented_max_opset(version: tuple[int, ...]) -> tuple[tuple[int, int], int, str] | None:
    """The newest documented parser release at or below ``version``: (that release, the highest
    opset it names, where that comes from), or ``None`` where no documented release is that old."""
    known = [(release, limit) for release, limit in MAX_OPSET.items() if version[:2] >= release]
    if not known:
        return None
    release, (opset, source) = max(known)
    return release, opset, source
