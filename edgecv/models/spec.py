"""`InputSpec`: what a model expects as input. Every later stage (export, calibration,
verification, runtime, benchmark) reads it instead of guessing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Sequence

from edgecv.records import known_fields

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ResizePolicy = Literal["resize_crop", "resize", "letterbox"]
Task = Literal["classification", "detection"]

# What an output means; every stage downstream (verification, INT8 fidelity, eval, predict, the
# report) chooses its comparison and its rendering from this, never from the output's name.
OUTPUT_MEANINGS = (
    "logits",  # [N, classes] scores before softmax
    "boxes",  # [N, max_det, 4] or [N, anchors, 4]: x1, y1, x2, y2 in input pixels
    "scores",  # [N, max_det]: the confidence of each kept detection (0 where padded)
    "class_scores",  # [N, anchors, classes]: per-class probabilities before NMS (--no-nms)
    "labels",  # [N, max_det]: class index in the model's class space (-1 where padded)
    "num_dets",  # [N]: how many rows of boxes/scores/labels are real
    "tensor",  # anything else: exported and compared element-wise, never read as a result
)


@dataclass(frozen=True)
class OutputSpec:
    """One named output of a model: its symbolic shape, which axis is the batch, what it means.

    Symbolic dimensions are strings (``"batch"``, ``"classes"``, ``"max_det"``, ``"anchors"``) so
    the declaration holds before the model is sized; :meth:`InputSpec.output_shape` resolves them.
    """

    name: str
    meaning: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    batch_axis: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "meaning": self.meaning,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "batch_axis": self.batch_axis,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OutputSpec":
        return cls(
            name=d["name"],
            meaning=d["meaning"],
            shape=tuple(d.get("shape", ())),
            dtype=d.get("dtype", "float32"),
            batch_axis=int(d.get("batch_axis", 0)),
        )


def unnamed_outputs(shapes: Sequence[Sequence[int]], batch: int) -> tuple[OutputSpec, ...]:
    """``output0``, ``output1``, … for outputs nobody declared (``torch.onnx.export`` too names
    undeclared outputs itself); a leading axis the size of the batch is an output's batch axis."""
    return tuple(
        OutputSpec(f"output{i}", "tensor", ("batch", *shape[1:]) if shape and shape[0] == batch else tuple(shape))
        for i, shape in enumerate(shapes)
    )


def detection_outputs(nms: bool = True) -> tuple[OutputSpec, ...]:
    """The detector contract (DESIGN.md, Tasks): fixed shapes padded to ``max_det`` with NMS in the
    graph; decoded boxes and per-class scores for every anchor without it."""
    if not nms:
        return (
            OutputSpec("boxes", "boxes", ("batch", "anchors", 4)),
            OutputSpec("scores", "class_scores", ("batch", "anchors", "classes")),
        )
    return (
        OutputSpec("num_dets", "num_dets", ("batch",), dtype="int32"),
        OutputSpec("boxes", "boxes", ("batch", "max_det", 4)),
        OutputSpec("scores", "scores", ("batch", "max_det")),
        OutputSpec("labels", "labels", ("batch", "max_det"), dtype="int32"),
    )


def parse_resolution(value: Any) -> int | tuple[int, int]:
    """``224``, ``"224"``, ``"384x640"`` (height×width) or ``(384, 640)`` → int (square) or (h, w).

    Raises ``ValueError`` with the accepted forms; callers turn it into their own error type."""
    if isinstance(value, bool):
        raise ValueError("resolution must be an integer or HxW")
    if isinstance(value, int):
        hw: tuple[Any, ...] = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        hw = tuple(value)
    elif isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"resolution must be an integer or HxW (e.g. 320 or 384x640), got {value!r}")
        hw = tuple(int(p) for p in parts) * (2 if len(parts) == 1 else 1)
    else:
        raise ValueError(f"resolution must be an integer or HxW (e.g. 320 or 384x640), got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw):
        raise ValueError(f"resolution sides must be positive integers, got {value!r}")
    h, w = int(hw[0]), int(hw[1])
    return h if h == w else (h, w)


def resolution_hw(resolution: int | tuple[int, int]) -> tuple[int, int]:
    return (resolution, resolution) if isinstance(resolution, int) else (int(resolution[0]), int(resolution[1]))


def format_resolution(resolution: int | tuple[int, int]) -> str:
    h, w = resolution_hw(resolution)
    return str(h) if h == w else f"{h}x{w}"


@dataclass(frozen=True)
class InputSpec:
    """Input contract of a model.

    Pixels are read as RGB uint8, resized per ``resize``, scaled by ``scale`` (1/255: to [0, 1]),
    normalised with ``mean``/``std`` per channel and laid out as NCHW float32.

    ``resize``:
      * ``resize_crop``: resize the short side to ``resolution / crop_ratio``, centre-crop
        (the ImageNet evaluation recipe; crop_ratio 0.875 gives 256 → 224).
      * ``resize``: resize straight to height×width (aspect ratio not kept).
      * ``letterbox``: keep aspect, pad with ``pad_value`` (detectors).
    """

    height: int = 224
    width: int = 224
    channels: int = 3
    batch: int = 1
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    scale: float = 1.0 / 255.0
    channel_order: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW"] = "NCHW"
    resize: ResizePolicy = "resize_crop"
    crop_ratio: float = 0.875
    pad_value: int = 114
    input_name: str = "input"
    output_names: tuple[str, ...] = ("logits",)
    task: Task = "classification"
    # Declared outputs; left empty, one ``logits`` output per name in ``output_names`` (classifiers,
    # and manifests written before outputs were declared). ``output_names`` always follows them.
    outputs: tuple[OutputSpec, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.outputs:
            outputs = tuple(OutputSpec(n, "logits", ("batch", "classes")) for n in self.output_names)
            object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "output_names", tuple(o.name for o in self.outputs))

    @property
    def output_specs(self) -> tuple[OutputSpec, ...]:
        return self.outputs

    @property
    def declares_outputs(self) -> bool:
        """False for a spec that names no output of its own: the default single ``logits``."""
        return self.outputs != (OutputSpec("logits", "logits", ("batch", "classes")),)

    def output(self, meaning: str) -> OutputSpec | None:
        """The first output that means ``meaning`` (``"boxes"``, ``"logits"``…), or None."""
        return next((o for o in self.output_specs if o.meaning == meaning), None)

    def with_outputs(self, outputs: tuple[OutputSpec, ...]) -> "InputSpec":
        return replace(self, outputs=tuple(outputs), output_names=tuple(o.name for o in outputs))

    def with_size(self, height: int, width: int) -> "InputSpec":
        return replace(self, height=int(height), width=int(width))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.height, self.width)

    @property
    def resolution(self) -> int:
        return self.height if self.height == self.width else max(self.height, self.width)

    def with_batch(self, batch: int) -> "InputSpec":
        return replace(self, batch=batch)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["output_names"] = list(self.output_names)
        d["outputs"] = [o.to_dict() for o in self.output_specs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        kw = known_fields(cls, d)
        for key in ("mean", "std", "output_names"):
            if key in kw:
                kw[key] = tuple(kw[key])
        if "outputs" in kw:
            kw["outputs"] = tuple(OutputSpec.from_dict(o) if isinstance(o, dict) else o for o in kw["outputs"])
        return cls(**kw)
