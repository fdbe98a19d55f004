"""Static INT8 post-training quantization of a simplified FP32 ONNX graph with ONNX Runtime's tools,
in two flavours named for the engine each is made for.

* ``tensorrt`` → ``model.int8.onnx``: what TensorRT's ONNX parser builds an explicit-quantization
  engine from (signed INT8, zero point 0, per-channel weight scales on axis 0, per-tensor
  activations, float bias, float weights behind a Q→DQ pair, one consumer per Q/DQ pair, Q/DQ on
  both inputs of residual Adds). :mod:`edgecv.tensorrt.rules` checks the result.
* ``cpu`` → ``model.int8.cpu.onnx``: unsigned activations / signed weights in QDQ form, which ONNX
  Runtime's CPU kernels fuse into integer convolutions. Symmetric signed activations (the TensorRT
  flavour) are what those kernels handle worst: that graph can run slower than FP32 on a CPU. The
  graph is first rewritten into an equivalent one those kernels run fast (channel shuffles folded
  into convolutions, channel counts aligned, average pools as convolutions: see
  :mod:`edgecv.calibration.passes`); without that ShuffleNet V1 ran slower in INT8 than in FP32.
  After quantization a hard-sigmoid becomes an integer Add (:mod:`edgecv.calibration.passes.hardsigmoid_add`).

Both are quantized from the same graph with the same activation ranges (computed once, see
:mod:`edgecv.calibration.ranges`); the flavour only decides how ranges become scales.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import load_tensors_data, save_tensors_data
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgecv.errors import InvalidOptionError
from edgecv.int8_kernels import target_cpu
from edgecv.runfolder import INT8_CPU_ONNX, INT8_ONNX

from .passes import hardsigmoid_as_integer_add, rewrite_for_cpu_int8
from .ranges import method_of


@dataclass(frozen=True)
class Flavour:
    name: str
    filename: str
    artifact: str  # the artifact's name in the run folder's manifest
    intended_for: str
    activation_type: QuantType
    weight_type: QuantType
    quant_format: QuantFormat = QuantFormat.QDQ
    extra_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # Rewrite the graph for ONNX Runtime's CPU kernels first (same function, see passes).
    cpu_rewrites: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.filename,
            "artifact": self.artifact,
            "intended_for": self.intended_for,
            "format": self.quant_format.name,
            "activations": self.activation_type.name,
            "weights": self.weight_type.name,
            "per_channel": True,
            "options": dict(self.extra_options),
            "description": self.description,
            "rewritten_for_cpu": self.cpu_rewrites,
        }


TENSORRT = Flavour(
    name="tensorrt",
    filename=INT8_ONNX,
    artifact="onnx-int8",
    intended_for="tensorrt",
    activation_type=QuantType.QInt8,
    weight_type=QuantType.QInt8,
    extra_options={
        "ActivationSymmetric": True,  # zero point 0: TensorRT supports no other on GPUs
        "WeightSymmetric": True,
        "QuantizeBias": False,  # an INT32 DequantizeLinear on a Conv bias fails TensorRT's parser
        "AddQDQPairToWeight": True,  # TensorRT 8 refused DQ fed directly by an INT8 initializer
        "DedicatedQDQPair": True,  # one consumer per Q/DQ pair, so every fusion sees its own pair
    },
    description="signed INT8 QDQ for TensorRT's explicit quantization (slow in ONNX Runtime on CPUs)",
)

CPU = Flavour(
    name="cpu",
    filename=INT8_CPU_ONNX,
    artifact="onnx-int8-cpu",
    intended_for="onnxruntime",
    activation_type=QuantType.QUInt8,
    weight_type=QuantType.QInt8,
    extra_options={"WeightSymmetric": True},
    description="UINT8 activations / INT8 weights QDQ, the form ONNX Runtime's CPU kernels run fastest",
    cpu_rewrites=True,
)

FLAVOURS = {f.name: f for f in (TENSORRT, CPU)}


def flavour_of(name: str) -> Flavour:
    try:
        return FLAVOURS[name]
    except KeyError:
        raise InvalidOptionError(f"INT8 flavour must be one of {', '.join(FLAVOURS)}, got {name!r}") from None


@contextlib.contextmanager
def _ort_logs_quiet():
    # ORT's quantizer logs advice through the root logger (e.g. about pre-processing we already
    # did); keep the CLI output to what edgecv says.
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def prepare_for_quantization(fp32_onnx: str | Path, out: str | Path) -> None:
    """ONNX Runtime's pre-processing: symbolic shape inference and its basic graph optimisations
    (constant folding, BatchNorm folding) so every tensor has a shape and the quantizer sees the
    graph the kernels will run. On the raw export the same quantization ran slower than FP32."""
    with _ort_logs_quiet():
        quant_pre_process(str(fp32_onnx), str(out))


def quantize_flavour(
    prepared_onnx: str | Path,
    out: str | Path,
    flavour: Flavour,
    *,
    ranges_path: str | Path,
    method: str,
    exclude: tuple[str, ...] = (),
    reduce_range: bool | None = None,
    target: str = "auto",
    reasons: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Quantize ``prepared_onnx`` into ``out`` with the ranges cached at ``ranges_path``.

    ``reduce_range`` (7-bit weights) defaults to on for the CPU flavour built for x86 CPUs without
    VNNI (``target``, an ``--target-cpu`` value), where ONNX Runtime's U8S8 kernels can saturate;
    never for TensorRT. ``reasons``: why each excluded node is kept in float, for the report
    (default: asked for).

    Returns the flavour's report entry: its settings, ``kept_float`` (node and reason) and, for
    the CPU flavour, ``rewrites`` (what was rewritten, and why)."""
    if reduce_range is None:
        reduce_range = flavour.name == "cpu" and target_cpu(target).reduce_range
    with contextlib.ExitStack() as stack:
        rewrites: list[dict[str, Any]] = []
        source = Path(prepared_onnx)
        floats: dict[str, str] = {}
        if flavour.cpu_rewrites:
            model = onnx.load(str(source))
            rewrites = rewrite_for_cpu_int8(model, keep=exclude)
            if rewrites:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecv-cpu-")))
                source = tmp / "rewritten.onnx"
                onnx.save(model, str(source))
                floats = {n: r["why"] for r in rewrites for n in r.get("kept_float", ())}
                ranges_path = _ranges_with_aliases(ranges_path, rewrites, tmp / "ranges.json")
            del model
        _quantize_static(source, out, flavour, ranges_path, method, (*exclude, *floats), reduce_range)
        if flavour.cpu_rewrites:
            quantized = onnx.load(str(out))
            integer_ops = hardsigmoid_as_integer_add(quantized, keep=(*exclude, *floats))
            if integer_ops:
                onnx.save(quantized, str(out))
                rewrites += integer_ops
            del quantized
    reasons = reasons or {}
    info = {**flavour.to_dict(), "reduce_range": reduce_range, "excluded": list(exclude)}
    info["kept_float"] = [{"node": n, "reason": reasons.get(n, "asked for")} for n in exclude]
    info["kept_float"] += [{"node": n, "reason": why} for n, why in floats.items()]
    if flavour.cpu_rewrites:
        info["rewrites"] = rewrites
    return info


def _ranges_with_aliases(ranges_path, rewrites: list[dict[str, Any]], out: Path) -> Path:
    """The cached ranges plus those of tensors a rewrite added as copies of existing ones."""
    aliases = {new: old for r in rewrites for new, old in r.get("range_of", {}).items()}
    if not aliases:
        return Path(ranges_path)
    data = load_tensors_data(ranges_path)
    for new, old in aliases.items():
        if old in data.data:
            data.data[new] = data.data[old]
    save_tensors_data(data, out)
    return out


def _quantize_static(
    source: Path, out, flavour: Flavour, ranges_path, method: str, exclude, reduce_range: bool
) -> None:
    # The ranges were computed on the graph before any rewrite: every tensor a rewrite keeps has its
    # name and its values' range, and the rewrites add no activation tensor that needs one.
    with _ort_logs_quiet():
        quantize_static(
            str(source),
            str(out),
            calibration_data_reader=None,
            calibration_cache_path=str(ranges_path),
            quant_format=flavour.quant_format,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=flavour.activation_type,
            weight_type=flavour.weight_type,
            nodes_to_exclude=list(exclude),
            calibrate_method=method_of(method),
            extra_options=dict(flavour.extra_options),
        )
