"""Export options: one dataclass the CLI and the library share, validated in one place. Each field
carries its command-line flag (:class:`Flag`), from which ``edgecv export`` builds its options."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgecv.errors import InvalidOptionError
from edgecv.runtime.registry import BACKENDS as RUNTIME_BACKENDS

# The engines export builds are the runtime's backends but PyTorch.
BACKENDS = tuple(name for name in RUNTIME_BACKENDS if name != "torch")

# Spelled out rather than imported: every `edgecv` command builds the export flags at start-up, and
# calibration's and the INT8 kernels' modules load ONNX Runtime and ONNX (tests keep them equal).
CALIB_METHOD_NAMES = ("minmax", "entropy", "percentile")
TARGET_CPU_NAMES = ("auto", "x86-vnni", "x86-avx2", "arm64")


def _default_calib_method() -> str:
    from edgecv.calibration.ranges import DEFAULT_METHOD

    return DEFAULT_METHOD


@dataclass(frozen=True)
class Flag:
    """How an :class:`ExportOptions` field reads on the command line; ``edgecv export`` builds its
    flags from these, in field order, so each is declared once."""

    names: tuple[str, ...]
    help: str
    type: Any  # what the user types: int, float, str, bool or Path
    metavar: str | None = None
    # Shown in --help and passed when the flag is absent; None leaves the field at its default.
    default: Any = None
    # The typed value → the field's value (a comma list → a tuple, MiB → bytes).
    parse: Callable[[Any], Any] | None = None
    # The field this flag fills a key of (a family member, a backbone); None: the whole field.
    key: str | None = None


def _flag(*names: str, help: str, type: Any, **kw: Any) -> dict[str, tuple[Flag, ...]]:
    return {"flags": (Flag(names, help, type, **kw),)}


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _mib(value: int) -> int:
    return value * (1 << 20)


@dataclass
class ExportOptions:
    width_mult: float | None = field(
        default=None,
        metadata=_flag(
            "--width-mult", "-a", type=float, help="width multiplier α (default: the model's, see `edgecv models`)"
        ),
    )
    # A side, "HxW" or (h, w); None: the model's default.
    resolution: int | str | tuple[int, int] | None = field(
        default=None,
        metadata=_flag(
            "--resolution",
            "-r",
            type=str,
            metavar="INT|HxW",
            help="input side or height×width (e.g. 224, 384x640); the model's strides decide what is allowed",
        ),
    )
    num_classes: int | None = field(
        default=None,
        metadata=_flag(
            "--num-classes",
            type=int,
            help="classes of the head, background included for SSD (default: the model's, 1000 / 91 / 80)",
        ),
    )
    weights: str | None = field(
        default=None, metadata=_flag("--weights", type=Path, parse=str, help="state_dict or checkpoint file")
    )
    variant: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "flags": (
                Flag(("--groups",), "ShuffleNet V1 groups g", int, key="groups"),
                Flag(
                    ("--variant",),
                    "member of a family (mobilenetv3: large|small; yolox: nano|tiny|s)",
                    str,
                    key="variant",
                ),
                Flag(
                    ("--backbone",),
                    "a detector's feature extractor (ssdlite: mobilenetv3|mobilenetv2)",
                    str,
                    key="backbone",
                ),
            )
        },
    )
    # Detectors: post-processing baked into the graph (None: the model's default).
    conf_thres: float | None = field(
        default=None,
        metadata=_flag(
            "--conf-thres",
            type=float,
            help="detectors: score threshold baked into the NMS (0.25; use 0.001 for COCO-style mAP)",
        ),
    )
    iou_thres: float | None = field(
        default=None, metadata=_flag("--iou-thres", type=float, help="detectors: NMS IoU threshold (0.45)")
    )
    max_det: int | None = field(
        default=None,
        metadata=_flag("--max-det", type=int, help="detectors: detections kept per image, outputs padded to it (100)"),
    )
    nms: bool = field(
        default=True,
        metadata=_flag(
            "--no-nms",
            type=bool,
            default=False,
            parse=lambda no_nms: not no_nms,
            help="detectors: export decoded boxes and per-class scores, without NMS",
        ),
    )
    agnostic_nms: bool = field(
        default=False, metadata=_flag("--agnostic-nms", type=bool, help="detectors: class-agnostic NMS")
    )
    labels: str | None = field(
        default=None,
        metadata=_flag(
            "--labels",
            type=Path,
            parse=str,
            metavar="FILE",
            help="class names to record in the artifacts: labels.txt (one a line) or a COCO annotation .json "
            "(default: from --calib data that names its classes)",
        ),
    )
    # TensorRT engines: TensorRT 10's weakly typed builder flags are never used on 11.
    max_batch: int | None = field(
        default=None,
        metadata=_flag(
            "--max-batch",
            type=int,
            help="TensorRT: the optimisation profile's largest batch (with --dynamic-batch; default 32)",
        ),
    )
    dla_core: int | None = field(
        default=None,
        metadata=_flag(
            "--dla-core", type=int, help="TensorRT: build for this DLA core (Jetson Orin), falling back to the GPU"
        ),
    )
    workspace_bytes: int | None = field(
        default=None,
        metadata=_flag(
            "--workspace", type=int, parse=_mib, metavar="MIB", help="TensorRT: builder workspace limit in MiB"
        ),
    )
    trt_weak_typing: bool = field(
        default=False,
        metadata=_flag(
            "--trt-weak-typing", type=bool, help="TensorRT 10 only: weakly typed build with --fp16/--int8 builder flags"
        ),
    )
    opset: int = field(default=17, metadata=_flag("--opset", type=int, default=17, help="ONNX opset"))
    batch: int = field(default=1, metadata=_flag("--batch", type=int, default=1, help="static batch size"))
    dynamic_batch: bool = field(
        default=False, metadata=_flag("--dynamic-batch", type=bool, help="export with a dynamic batch axis")
    )
    exporter: str = field(
        default="torchscript",
        metadata=_flag("--exporter", type=str, default="torchscript", help="torchscript | dynamo"),
    )
    fp16: bool = field(
        default=False,
        metadata=_flag("--fp16", type=bool, help="also write FP16 OpenVINO IR; TensorRT engines in FP16"),
    )
    int8: bool = field(default=False, metadata=_flag("--int8", type=bool, help="calibrate and write INT8 artifacts"))
    calib: str | None = field(
        default=None,
        metadata=_flag("--calib", type=str, help="image folder, list file, or .npy/.npz array"),
    )
    calib_size: int = field(
        default=300, metadata=_flag("--calib-size", type=int, default=300, help="calibration images")
    )
    calib_method: str = field(
        default_factory=_default_calib_method,
        metadata=_flag("--calib-method", type=str, help=f"{' | '.join(CALIB_METHOD_NAMES)} (default: percentile)"),
    )
    seed: int = field(
        default=0, metadata=_flag("--seed", type=int, default=0, help="seed for sampling and verification inputs")
    )
    sensitivity: bool = field(
        default=False, metadata=_flag("--sensitivity", type=bool, help="rank layers by INT8 sensitivity")
    )
    keep_fp32: int = field(
        default=0,
        metadata=_flag("--keep-fp32", type=int, default=0, help="leave the N most sensitive layers in float"),
    )
    exclude: tuple[str, ...] = field(
        default=(),
        metadata=_flag("--exclude", type=str, parse=_split, help="comma-separated node names to keep in float"),
    )
    # The accuracy budget: each INT8 artifact keeps its most sensitive layers in float until its
    # drop against FP32 on --eval-data holds (top-1 points for classifiers, mAP@[.5:.95] points for detectors).
    max_accuracy_drop: float | None = field(
        default=None,
        metadata=_flag(
            "--max-accuracy-drop",
            type=float,
            metavar="POINTS",
            help="INT8: keep the most sensitive layers in float until each artifact loses at most this many "
            "top-1 (classifiers) or mAP@[.5:.95] (detectors) points against FP32 on --eval-data",
        ),
    )
    eval_data: str | None = field(
        default=None,
        metadata=_flag(
            "--eval-data",
            type=str,
            metavar="DATA",
            help="labelled data for --max-accuracy-drop, as `edgecv eval --data` takes it: an ImageFolder, "
            "a .npz of inputs and labels, or COCO (an annotation .json, or a folder holding it and the images)",
        ),
    )
    # The CPU the INT8 artifacts will run on (auto: this one); see edgecv.int8_kernels.
    target_cpu: str = field(
        default="auto",
        metadata=_flag(
            "--target-cpu",
            type=str,
            default="auto",
            metavar="|".join(TARGET_CPU_NAMES),
            help="CPU the INT8 artifacts will run on (auto: this one); x86-avx2 uses 7-bit weights",
        ),
    )
    # The CPU flavour and the OpenVINO IR keep in float what runs slower in INT8 at `threads`
    # (see calibration.precision).
    int8_speed: bool = field(
        default=True,
        metadata=_flag(
            "--no-int8-speed",
            type=bool,
            default=False,
            parse=lambda off: not off,
            help="INT8: quantize every layer of the ONNX Runtime CPU flavour and the OpenVINO IR, even those "
            "measured slower in INT8 than in float here",
        ),
    )
    threads: int | None = field(
        default=None,
        metadata=_flag(
            "--threads",
            type=int,
            help="INT8: threads the CPU flavour's (ONNX Runtime) and the OpenVINO IR's speed is measured at "
            "(default: this machine's cores)",
        ),
    )
    backends: tuple[str, ...] = field(
        default=("onnxruntime", "openvino"),
        metadata=_flag(
            "--backend",
            type=str,
            parse=_split,
            help=f"engines to build, comma-separated: {','.join(BACKENDS)} (default onnxruntime,openvino)",
        ),
    )
    atol: float | None = field(
        default=None, metadata=_flag("--atol", type=float, help="FP32 verification absolute tolerance (1e-4)")
    )
    rtol: float | None = field(
        default=None, metadata=_flag("--rtol", type=float, help="FP32 verification relative tolerance (1e-4)")
    )
    force: bool = field(
        default=False,
        metadata=_flag(
            "--force",
            type=bool,
            help="rebuild every stage; replaces an earlier export in --out, removing its files this one does not make",
        ),
    )

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
        from edgecv.calibration.ranges import CALIB_METHODS
        from edgecv.int8_kernels import TARGET_CPUS

        from .onnx_export import validate_export_options

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
        if self.threads is not None and self.threads < 1:
            raise InvalidOptionError(f"--threads must be ≥ 1, got {self.threads}")
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
            self.calib
            or self.sensitivity
            or self.keep_fp32
            or self.exclude
            or self.target_cpu != "auto"
            or self.threads is not None
            or not self.int8_speed
            or self.max_accuracy_drop is not None
        ):
            raise InvalidOptionError(
                "--calib, --sensitivity, --keep-fp32, --exclude, --target-cpu, --threads, --no-int8-speed and "
                "--max-accuracy-drop only apply with --int8"
            )
        if self.threads is not None and not self.int8_speed:
            raise InvalidOptionError(
                "--threads sets what --int8's speed plan measures: it does nothing with --no-int8-speed"
            )
        self._validate_budget()

    def _validate_budget(self) -> None:
        drop = self.max_accuracy_drop
        if drop is not None and (isinstance(drop, bool) or not math.isfinite(drop) or drop < 0):
            raise InvalidOptionError(f"--max-accuracy-drop must be a number of points ≥ 0, got {drop}")
        if drop is not None and not self.eval_data:
            raise InvalidOptionError(
                "--max-accuracy-drop needs --eval-data: labelled data to measure the drop on (what `edgecv eval` takes)"
            )
        if self.eval_data and drop is None:
            raise InvalidOptionError("--eval-data goes with --max-accuracy-drop (to evaluate a run, use `edgecv eval`)")

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
