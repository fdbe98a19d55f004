"""Where calibration inputs come from: image folders, list files, preprocessed arrays, and the
default photographs that ship with scikit-image.

A source yields *samples*: cheap descriptions of one input that produce the preprocessed tensor
only when asked (:meth:`Sample.tensor`), so a calibration set of any size costs no memory until it
is used. Each sample has a ``digest`` of its content so the calibration cache is keyed on the data
itself, not on file names.
"""

from __future__ import annotations

import hashlib
import io
import math
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from PIL import Image

from edgecv.errors import CalibrationDataError
from edgecv.models.spec import InputSpec
from edgecv.preprocess import IMAGE_SUFFIXES, load_image, preprocess
from edgecv.runfolder import sha256_file

ARRAY_SUFFIXES = (".npy", ".npz")

# scikit-image's sample images that are photographs of real scenes (its drawings, charts, text
# pages and synthetic phantoms would teach the quantizer ranges no deployment ever sees).
DEFAULT_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)


class Sample(Protocol):
    label: str

    def tensor(self, spec: InputSpec) -> np.ndarray:
        """The float32 (C, H, W) network input."""

    def digest(self, file_digest: FileDigest) -> bytes:
        """A content hash: equal digests mean equal tensors for the same spec. ``file_digest``
        hashes a file (the caller memoizes it: many crops come from one photo)."""


FileDigest = Callable[[Path], bytes]


def file_sha256(path: Path) -> bytes:
    return bytes.fromhex(sha256_file(path))


@dataclass(frozen=True)
class ImageFile:
    path: Path
    label: str

    def tensor(self, spec: InputSpec) -> np.ndarray:
        return preprocess(self.path, spec)

    def digest(self, file_digest: FileDigest) -> bytes:
        return file_digest(self.path)


@lru_cache(maxsize=len(DEFAULT_PHOTOS))
def _decoded_photo(path: Path) -> np.ndarray:
    # Many crops come from each of a few photos: decode each once.
    img = load_image(path)
    img.setflags(write=False)
    return img


@dataclass(frozen=True)
class PhotoCrop:
    """A crop (and maybe a mirror image) of one photograph: several distinct inputs per photo."""

    path: Path
    label: str
    box: tuple[int, int, int, int] | None  # top, left, height, width; None = the whole photo
    flip: bool

    def tensor(self, spec: InputSpec) -> np.ndarray:
        img = _decoded_photo(self.path)
        if self.box is not None:
            top, left, h, w = self.box
            img = img[top : top + h, left : left + w]
        if self.flip:
            img = img[:, ::-1]
        return preprocess(np.ascontiguousarray(img), spec)

    def digest(self, file_digest: FileDigest) -> bytes:
        return hashlib.sha256(file_digest(self.path) + repr((self.box, self.flip)).encode()).digest()


@dataclass(frozen=True, eq=False)  # compared by identity: its array is not hashable
class ArrayRow:
    array: np.ndarray  # (N, C, H, W), possibly memory-mapped
    index: int
    label: str

    def tensor(self, spec: InputSpec) -> np.ndarray:
        return np.ascontiguousarray(self.array[self.index], dtype=np.float32)

    def digest(self, file_digest: FileDigest) -> bytes:
        return hashlib.sha256(np.ascontiguousarray(self.array[self.index]).tobytes()).digest()


# --- checking that an image decodes ----------------------------------------------------------------


def check_image(path: Path, target: tuple[int, int]) -> str | None:
    """Decode ``path`` fully (a truncated file only fails when decoded) and return why it is unusable,
    or None. JPEGs decode at reduced scale (``draft``), which reads the whole stream at a fraction of
    the cost."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", target)
            im.load()
    except Image.UnidentifiedImageError:
        return "not a readable image (unknown format or corrupt header)"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"not a readable image: {exc}"
    return None


# --- enumerating sources ---------------------------------------------------------------------------


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def folder_images(root: Path) -> tuple[list[ImageFile], int]:
    """Image files under ``root`` (recursive, sorted so the order does not depend on the file
    system) and the number of other files seen."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [ImageFile(p, p.relative_to(root).as_posix()) for p in files if is_image_name(p)]
    return images, len(files) - len(images)


def list_file_images(list_path: Path) -> tuple[list[ImageFile], list[tuple[str, str]]]:
    """Entries of a text file naming one image per line (relative to the file's folder; blank lines
    and ``#`` comments ignored). Returns the images that exist and (entry, reason) for the rest."""
    try:
        text = list_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CalibrationDataError(
            f"{list_path} is neither an image folder, an array (.npy/.npz) nor a text file listing "
            "image paths (it is not UTF-8 text)"
        ) from None
    except OSError as exc:
        raise CalibrationDataError(f"cannot read {list_path}: {exc.strerror or exc}") from None
    entries = [ln.strip() for ln in text.splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise CalibrationDataError(f"{list_path} lists no image paths (one path per line expected)")
    found, missing = [], []
    for entry in entries:
        p = Path(entry).expanduser()
        p = p if p.is_absolute() else list_path.parent / p
        if p.is_file():
            found.append(ImageFile(p, entry))
        else:
            missing.append((entry, "listed but not found" if not p.exists() else "not a file"))
    return found, missing


def load_array(path: Path, spec: InputSpec) -> np.ndarray:
    """A preprocessed (N, C, H, W) float array from ``.npy`` (memory-mapped) or ``.npz``."""
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as archive:
                arr = _pick_npz_array(path, archive, spec)
    except (OSError, ValueError, EOFError) as exc:
        raise CalibrationDataError(f"cannot read {path} as a NumPy array: {exc}") from None
    expected = (spec.channels, spec.height, spec.width)
    want = f"(N, {', '.join(map(str, expected))}) floating point, preprocessed like the model's input"
    if arr.ndim != 4 or tuple(arr.shape[1:]) != expected:
        raise CalibrationDataError(f"{path} holds an array of shape {tuple(arr.shape)}; expected {want}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise CalibrationDataError(
            f"{path} holds {arr.dtype} values; expected {want} (raw pixels belong in an image folder)"
        )
    if arr.shape[0] == 0:
        raise CalibrationDataError(f"{path} holds an empty array (0 samples)")
    return arr


def _pick_npz_array(path: Path, archive, spec: InputSpec) -> np.ndarray:
    keys = list(archive.keys())
    if len(keys) == 1:
        return archive[keys[0]]
    for key in (spec.input_name, "calibration", "x", "inputs", "images"):
        if key in keys:
            return archive[key]
    raise CalibrationDataError(
        f"{path} holds several arrays ({', '.join(keys)}); name the calibration array "
        f"'{spec.input_name}' or keep only one"
    )


def array_rows(arr: np.ndarray, name: str) -> list[ArrayRow]:
    return [ArrayRow(arr, i, f"{name}[{i}]") for i in range(arr.shape[0])]


# --- the default photographs -----------------------------------------------------------------------


def default_photo_paths() -> list[Path]:
    try:
        from importlib.resources import files

        folder = Path(str(files("skimage.data")))
    except ModuleNotFoundError:
        raise CalibrationDataError(
            "no --calib given and scikit-image (whose sample photographs are the default calibration "
            "set) is not installed; pass --calib with your own images"
        ) from None
    paths = [folder / name for name in DEFAULT_PHOTOS if (folder / name).is_file()]
    if not paths:
        raise CalibrationDataError(
            f"no --calib given and scikit-image's sample photographs are missing from {folder}; "
            "pass --calib with your own images"
        )
    return paths


def photo_crops(photos: list[Path], count: int, seed: int, min_area: float = 0.25) -> list[PhotoCrop]:
    """``count`` inputs from a handful of photographs: round-robin over the photos, the first pass
    the whole photo, later passes random crops (``min_area`` to all of the area, aspect ¾ to 4/3)
    mirrored half of the time. Deterministic for a given ``seed``. Detectors ask for large crops:
    they must calibrate on scenes with several objects and background, not on close-ups."""
    sizes = {p: Image.open(p).size for p in photos}  # header only: (width, height)
    crops = []
    for i in range(count):
        path, variant = photos[i % len(photos)], i // len(photos)
        if variant == 0:
            crops.append(PhotoCrop(path, path.name, None, False))
            continue
        rng = np.random.default_rng([seed, zlib.crc32(path.name.encode()), variant])
        w, h = sizes[path]
        area = rng.uniform(min_area, 1.0) * w * h
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw = min(w, max(16, int(round(math.sqrt(area * aspect)))))
        ch = min(h, max(16, int(round(math.sqrt(area / aspect)))))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        flip = bool(rng.random() < 0.5)
        label = f"{path.name} crop {variant} ({left},{top} {cw}×{ch}{', mirrored' if flip else ''})"
        crops.append(PhotoCrop(path, label, (top, left, ch, cw), flip))
    return crops


ImageChecker = Callable[[Path], "str | None"]


def readable(images: list[ImageFile], order: np.ndarray, wanted: int, check: ImageChecker):
    """Walk ``images`` in ``order`` until ``wanted`` decode. Returns (usable, [(label, reason)])."""
    usable: list[ImageFile] = []
    skipped: list[tuple[str, str]] = []
    for i in order:
        if len(usable) == wanted:
            break
        reason = check(images[i].path)
        if reason is None:
            usable.append(images[i])
        else:
            skipped.append((images[i].label, reason))
    return usable, skipped


__all__ = [
    "ARRAY_SUFFIXES",
    "DEFAULT_PHOTOS",
    "ArrayRow",
    "ImageFile",
    "PhotoCrop",
    "Sample",
    "array_rows",
    "check_image",
    "default_photo_paths",
    "folder_images",
    "is_image_name",
    "list_file_images",
    "load_array",
    "photo_crops",
    "readable",
]
