"""Image loading and preprocessing from a model's :class:`InputSpec`.

One implementation shared by calibration, export verification, the runtime and the benchmark,
evaluation and predict, so every stage feeds the network exactly the same tensor for the same
picture. Imports only ``edgecv.models.spec``: every layer may use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgecv.models.spec import InputSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class UnreadableImage(Exception):
    """A file that is not a decodable image (caught and counted by the data sources)."""


def load_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` into an RGB uint8 array of shape (H, W, 3)."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class ImageTransform:
    """How an original picture was mapped onto the network input: ``input = original·scale + offset``
    per axis (a crop gives a negative offset, letterbox padding a positive one). Boxes the model
    predicts in input pixels map back with :meth:`boxes_to_original`."""

    original_height: int
    original_width: int
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def boxes_to_original(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """``boxes [..., 4]`` (x1, y1, x2, y2 in input pixels) → original-image pixels."""
        b = np.asarray(boxes, dtype=np.float64).copy()
        b[..., 0::2] = (b[..., 0::2] - self.offset_x) / self.scale_x
        b[..., 1::2] = (b[..., 1::2] - self.offset_y) / self.scale_y
        if clip:
            b[..., 0::2] = b[..., 0::2].clip(0, self.original_width)
            b[..., 1::2] = b[..., 1::2].clip(0, self.original_height)
        return b

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Original-image pixels → input pixels (the inverse, for ground truth)."""
        b = np.asarray(boxes, dtype=np.float64).copy()
        b[..., 0::2] = b[..., 0::2] * self.scale_x + self.offset_x
        b[..., 1::2] = b[..., 1::2] * self.scale_y + self.offset_y
        return b

    def to_dict(self) -> dict:
        return asdict(self)


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BILINEAR))


def resize_crop(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize the short side to ``side / crop_ratio`` and centre-crop to the spec's size."""
    h, w = img.shape[:2]
    target_short = int(round(max(spec.height, spec.width) / spec.crop_ratio))
    s = target_short / min(h, w)
    nh, nw = max(spec.height, int(round(h * s))), max(spec.width, int(round(w * s)))
    img = _resize(img, nw, nh)
    top, left = (nh - spec.height) // 2, (nw - spec.width) // 2
    return img[top : top + spec.height, left : left + spec.width]


def letterbox(img: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio and pad to the spec's size.

    Returns the image, the scale applied and the (left, top) padding, which detectors need to map
    boxes back to the original picture.
    """
    h, w = img.shape[:2]
    s = min(spec.height / h, spec.width / w)
    nh, nw = int(round(h * s)), int(round(w * s))
    resized = _resize(img, nw, nh)
    out = np.full((spec.height, spec.width, 3), spec.pad_value, dtype=np.uint8)
    top, left = (spec.height - nh) // 2, (spec.width - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out, s, (left, top)


def geometric_with_transform(img: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, ImageTransform]:
    """The spec's resize policy applied to an RGB uint8 image, and the transform it applied."""
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[2] == 4:
        img = img[..., :3]
    h, w = img.shape[:2]
    if spec.resize == "resize_crop":
        target_short = int(round(max(spec.height, spec.width) / spec.crop_ratio))
        s = target_short / min(h, w)
        nh, nw = max(spec.height, int(round(h * s))), max(spec.width, int(round(w * s)))
        top, left = (nh - spec.height) // 2, (nw - spec.width) // 2
        t = ImageTransform(h, w, nw / w, nh / h, -float(left), -float(top))
        return resize_crop(img, spec), t
    if spec.resize == "letterbox":
        out, s, (left, top) = letterbox(img, spec)
        nh, nw = int(round(h * s)), int(round(w * s))
        return out, ImageTransform(h, w, nw / w, nh / h, float(left), float(top))
    return _resize(img, spec.width, spec.height), ImageTransform(h, w, spec.width / w, spec.height / h, 0.0, 0.0)


def normalize(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 HWC RGB → float32 CHW, scaled and mean/std normalised."""
    x = img.astype(np.float32) * np.float32(spec.scale)
    if spec.channel_order == "BGR":
        x = x[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess(image: np.ndarray | str | Path, spec: InputSpec) -> np.ndarray:
    """One picture (array or path) → a float32 (C, H, W) tensor ready for the network."""
    return preprocess_with_transform(image, spec)[0]


def preprocess_with_transform(image: np.ndarray | str | Path, spec: InputSpec) -> tuple[np.ndarray, ImageTransform]:
    """One picture → the network's (C, H, W) float32 tensor and the :class:`ImageTransform` that maps
    its boxes back onto the picture."""
    img = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    pixels, transform = geometric_with_transform(img, spec)
    return normalize(pixels, spec), transform


# Photographs that ship inside scikit-image (no download): real image statistics matter, random
# noise alone hides errors that only show on natural inputs (saturated ReLU6, large activations),
# and a detector's NMS cost depends on what the picture holds.
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def sample_photos(names: tuple[str, ...] = SAMPLE_PHOTOS) -> list[np.ndarray]:
    try:
        import skimage.data
    except ImportError:  # pragma: no cover - scikit-image is a core dependency
        return []
    photos = []
    for name in names:
        try:
            photos.append(np.asarray(getattr(skimage.data, name)()))
        except Exception:  # a missing sample file only costs one input
            continue
    return photos


def wrapped_batches(count: int, batch: int) -> list[list[int]]:
    """Indices of ``count`` samples in batches of ``batch``; the last batch is filled up with the first
    samples again, because a graph with a fixed batch dimension accepts no other size (and a repeat
    changes no calibration range, no comparison)."""
    if count <= 0:
        return []
    return [[(start + k) % count for k in range(batch)] for start in range(0, count, batch)]


def photo_batch(spec: InputSpec, batch: int) -> np.ndarray | None:
    """``batch`` sample photographs preprocessed for ``spec`` (cycled), or None without any."""
    photos = [preprocess(p, spec) for p in sample_photos()]
    if not photos:
        return None
    first = wrapped_batches(len(photos), batch)[0]
    return np.ascontiguousarray(np.stack([photos[i] for i in first]), dtype=np.float32)
