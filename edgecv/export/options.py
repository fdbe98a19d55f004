"""Export options: one dataclass the CLI and the library share, validated in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecv.errors import InvalidOptionError

from .onnx_export import validate_export_options

BACKENDS = ("onnxruntime", "openvino", "tensorrt")
CALIB_METHODS = ("minmax", "entropy", "percentile")
DEFAULT_CALIB_METHOD = "percentile"


@dataclass
class ExportOptions:
    num_classes: int = 1000
    width_mult: float | None = None
    resolution: int | None = None
    weights: str | None = None
    variant: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    batch: int = 1
    dynamic_batch: bool = False
    exporter: str = "torchscript"
    fp16: bool = False
    int8: bool = False
    calib: str | None = None
    calib_size: int = 300
    calib_method: str = DEFAULT_CALIB_METHOD
    seed: int = 0
    sensitivity: bool = False
    keep_fp32: int = 0
    exclude: tuple[str, ...] = ()
    backends: tuple[str, ...] = ("onnxruntime", "openvino")
    atol: float | None = None
    rtol: float | None = None
    force: bool = False

    def validate(self) -> None:
        validate_export_options(self.opset, self.batch, self.exporter)
        if self.dynamic_batch and self.batch != 1:
            raise InvalidOptionError("--batch and --dynamic-batch exclude each other")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise InvalidOptionError(
                f"unknown backend {', '.join(unknown)} (choose from {', '.join(BACKENDS)})"
            )
        if self.calib_method not in CALIB_METHODS:
            raise InvalidOptionError(
                f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {self.calib_method!r}"
            )
        if self.calib_size < 1:
            raise InvalidOptionError(f"--calib-size must be ≥ 1, got {self.calib_size}")
        if self.keep_fp32 < 0:
            raise InvalidOptionError(f"--keep-fp32 must be ≥ 0, got {self.keep_fp32}")
        for name, value in (("atol", self.atol), ("rtol", self.rtol)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidOptionError(f"--{name} must be a finite number ≥ 0, got {value}")
        if not self.int8 and (self.calib or self.sensitivity or self.keep_fp32 or self.exclude):
            raise InvalidOptionError(
                "--calib, --sensitivity, --keep-fp32 and --exclude only apply with --int8"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exclude"] = list(self.exclude)
        d["backends"] = list(self.backends)
        return d


def format_width(width_mult: float) -> str:
    text = f"{width_mult:g}"
    return text if "." in text or "e" in text else text + ".0"


def default_run_name(model: str, width_mult: float, resolution: int, variant: dict[str, Any]) -> str:
    extra = "".join(f"-{k[0]}{v}" for k, v in sorted(variant.items()))
    return f"{model}-w{format_width(width_mult)}-r{resolution}{extra}"
