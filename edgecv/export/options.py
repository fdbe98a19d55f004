"""Export options: one dataclass the CLI and the library share, validated in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecv.calibration.ranges import CALIB_METHODS as _CALIBRATION_METHODS
from edgecv.calibration.ranges import DEFAULT_METHOD as DEFAULT_CALIB_METHOD
from edgecv.errors import InvalidOptionError
from edgecv.int8_kernels import TARGET_CPUS
from edgecv.runtime.registry import BACKENDS as RUNTIME_BACKENDS

from .onnx_export import validate_export_options

# One list of each: the engines export builds are the runtime's backends but PyTorch; the
# calibration methods are calibration's.
BACKENDS = tuple(name for name in RUNTIME_BACKENDS if name != "torch")
CALIB_METHODS = tuple(_CALIBRATION_METHODS)


@dataclass
class ExportOptions:
    # None: the model's own default (1000 for classifiers, 91 for SSD, 80 for YOLO).
    num_classes: int | None = None
    width_mult: float | None = None
    # A side, "HxW" or (h, w); None: the model's default.
    resolution: int | str | tuple[int, int] | None = None
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
    # The CPU the INT8 artifacts will run on (auto: this one); see edgecv.int8_kernels.
    target_cpu: str = "auto"
    backends: tuple[str, ...] = ("onnxruntime", "openvino")
    atol: float | None = None
    rtol: float | None = None
    force: bool = False
    # Detectors: post-processing baked into the graph (None: the model's default).
    conf_thres: float | None = None
    iou_thres: float | None = None
    max_det: int | None = None
    nms: bool = True
    agnostic_nms: bool = False
    # Class names to record in the artifacts: one a line, or a COCO annotation file's categories.
    labels: str | None = None
    # TensorRT engines: profile's largest batch (dynamic batch), DLA core (Jetson Orin), workspace,
    # and TensorRT 10's weakly typed builder flags (never on 11).
    max_batch: int | None = None
    dla_core: int | None = None
    workspace_bytes: int | None = None
    trt_weak_typing: bool = False

    def detection_flags_set(self) -> bool:
        return (
            any(v is not None for v in (self.conf_thres, self.iou_thres, self.max_det))
            or not self.nms
            or self.agnostic_nms
        )

    def detection_options(self):
        """The :class:`~edgecv.models.detection.DetectionOptions` these flags ask for."""
        from edgecv.models.detection import DetectionOptions

        base = DetectionOptions()
        return DetectionOptions(
            conf_thres=base.conf_thres if self.conf_thres is None else self.conf_thres,
            iou_thres=base.iou_thres if self.iou_thres is None else self.iou_thres,
            max_det=base.max_det if self.max_det is None else self.max_det,
            nms=self.nms,
            agnostic=self.agnostic_nms,
        ).validate()

    def validate(self) -> None:
        validate_export_options(self.opset, self.batch, self.exporter)
        if self.dynamic_batch and self.batch != 1:
            raise InvalidOptionError("--batch and --dynamic-batch exclude each other")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise InvalidOptionError(f"unknown backend {', '.join(unknown)} (choose from {', '.join(BACKENDS)})")
        if self.calib_method not in CALIB_METHODS:
            raise InvalidOptionError(
                f"--calib-method must be one of {', '.join(CALIB_METHODS)}, got {self.calib_method!r}"
            )
        if self.calib_size < 1:
            raise InvalidOptionError(f"--calib-size must be ≥ 1, got {self.calib_size}")
        if self.target_cpu not in TARGET_CPUS:
            raise InvalidOptionError(f"--target-cpu must be one of {', '.join(TARGET_CPUS)}, got {self.target_cpu!r}")
        if self.keep_fp32 < 0:
            raise InvalidOptionError(f"--keep-fp32 must be ≥ 0, got {self.keep_fp32}")
        for name, value in (("atol", self.atol), ("rtol", self.rtol)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidOptionError(f"--{name} must be a finite number ≥ 0, got {value}")
        trt_flags = (
            self.max_batch is not None
            or self.dla_core is not None
            or self.workspace_bytes is not None
            or self.trt_weak_typing
        )
        if trt_flags and "tensorrt" not in self.backends:
            raise InvalidOptionError(
                "--max-batch, --dla-core, --workspace and --trt-weak-typing apply with --backend tensorrt"
            )
        if self.max_batch is not None and (not self.dynamic_batch or self.max_batch < 1):
            raise InvalidOptionError(f"--max-batch needs --dynamic-batch and a value ≥ 1, got {self.max_batch}")
        if self.dla_core is not None and self.dla_core < 0:
            raise InvalidOptionError(f"--dla-core must be ≥ 0, got {self.dla_core}")
        if self.workspace_bytes is not None and self.workspace_bytes < 1:
            raise InvalidOptionError(f"--workspace must be a positive number of MiB, got {self.workspace_bytes}")
        if self.labels is not None and not Path(self.labels).expanduser().is_file():
            raise InvalidOptionError(f"--labels {self.labels}: no such file")
        if self.detection_flags_set():
            self.detection_options()  # range checks: --conf-thres/--iou-thres in [0, 1], --max-det > 0
        if not self.int8 and (
            self.calib or self.sensitivity or self.keep_fp32 or self.exclude or self.target_cpu != "auto"
        ):
            raise InvalidOptionError(
                "--calib, --sensitivity, --keep-fp32, --exclude and --target-cpu only apply with --int8"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exclude"] = list(self.exclude)
        d["backends"] = list(self.backends)
        return d


def format_width(width_mult: float) -> str:
    text = f"{width_mult:g}"
    return text if "." in text or "e" in text else text + ".0"


def batch_suffix(batch: int = 1, dynamic_batch: bool = False) -> str:
    """``-b4`` or ``-dyn``; empty for the default static batch 1 (the plain name a user types)."""
    return "-dyn" if dynamic_batch else (f"-b{batch}" if batch != 1 else "")


def default_run_name(
    model: str,
    width_mult: float,
    resolution: Any,
    variant: dict[str, Any],
    batch: int = 1,
    dynamic_batch: bool = False,
) -> str:
    # Runs with other batch settings get other folders: their artifacts are not interchangeable.
    # A family member or backbone reads as part of the model's name (ssdlite-mobilenetv3); a number
    # keeps its option's name (groups3), so no letter can be mistaken for -b, the batch.
    extra = "".join(f"-{v}" if str(v).isidentifier() else f"-{k}{v}" for k, v in sorted(variant.items()))
    from edgecv.models.spec import format_resolution

    res = format_resolution(tuple(resolution) if isinstance(resolution, list) else resolution)
    return f"{model}{extra}-w{format_width(width_mult)}-r{res}{batch_suffix(batch, dynamic_batch)}"
