"""`InputSpec`: what a model expects as input. Every later stage (export, calibration,
verification, runtime, benchmark) reads it instead of guessing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ResizePolicy = Literal["resize_crop", "resize", "letterbox"]


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
    task: str = "classification"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

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
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "InputSpec":
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for key in ("mean", "std", "output_names"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)
