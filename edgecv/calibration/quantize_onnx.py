"""Static INT8 post-training quantization of a simplified FP32 ONNX graph with ONNX Runtime's tools,
in two flavours named for the engine each is made for.

* ``tensorrt`` → ``model.int8.onnx``: what TensorRT's ONNX parser builds an explicit-quantization
  engine from (signed INT8, zero point 0, per-channel weight scales on axis 0, per-tensor
  activations, float bias, float weights behind a Q→DQ pair, one consumer per Q/DQ pair, Q/DQ on
  both inputs of residual Adds). :mod:`edgecv.calibration.tensorrt_rules` checks the result.
* ``cpu`` → ``model.int8.cpu.onnx``: unsigned activations / signed weights in QDQ form, which ONNX
  Runtime's CPU kernels fuse into integer convolutions. Symmetric signed activations (the TensorRT
  flavour) are what those kernels handle worst: that graph can run slower than FP32 on a CPU.

Both are quantized from the same graph with the same activation ranges (computed once, see
:mod:`edgecv.calibration.ranges`); the flavour only decides how ranges become scales.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgecv.errors import InvalidOptionError

from .int8_kernels import cpu_has_vnni
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "file": self.filename, "artifact": self.artifact,
            "intended_for": self.intended_for, "format": self.quant_format.name,
            "activations": self.activation_type.name, "weights": self.weight_type.name,
            "per_channel": True, "options": dict(self.extra_options), "description": self.description,
        }


TENSORRT = Flavour(
    name="tensorrt",
    filename="model.int8.onnx",
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
    filename="model.int8.cpu.onnx",
    artifact="onnx-int8-cpu",
    intended_for="onnxruntime",
    activation_type=QuantType.QUInt8,
    weight_type=QuantType.QInt8,
    extra_options={"WeightSymmetric": True},
    description="UINT8 activations / INT8 weights QDQ, the form ONNX Runtime's CPU kernels run fastest",
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
) -> dict[str, Any]:
    """Quantize ``prepared_onnx`` into ``out`` with the ranges cached at ``ranges_path``.

    ``reduce_range`` (7-bit weights) defaults to on for the CPU flavour on x86 CPUs without VNNI,
    where ONNX Runtime's U8S8 kernels can saturate; never for TensorRT."""
    if reduce_range is None:
        reduce_range = flavour.name == "cpu" and not cpu_has_vnni()
    with _ort_logs_quiet():
        quantize_static(
            str(prepared_onnx),
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
    return {**flavour.to_dict(), "reduce_range": reduce_range, "excluded": list(exclude)}
