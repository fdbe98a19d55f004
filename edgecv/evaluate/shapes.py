"""``edgecv data shapes``: a detection data set anyone can make without a download.

Pictures of four shape classes on textured backgrounds, several per picture (overlapping, never
hidden), with boxes taken from the drawn pixels themselves, so they are exact; written as COCO
(one folder per split: ``annotations.json`` and ``images/``) and as an ImageFolder of object crops
for classifiers. Category ids are deliberately not contiguous (1, 3, 5, 7): a model's label index
must go through the annotation file's categories, as on real COCO (ids 1..90 for 80 classes).

Every picture draws from its own generator seeded with ``(seed, split, index)``, so a data set is
the same bytes for the same seed, whatever the number of pictures asked for.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageDraw

from edgecv.boxes import iou_matrix
from edgecv.errors import InvalidOptionError, OutputPathError

CLASSES = ("rectangle", "circle", "triangle", "ellipse")
CATEGORY_IDS = (1, 3, 5, 7)
SPLITS = ("train", "val")
VAL_FRACTION = 0.2
CROP_MARGIN = 0.1
MIN_CROP_SIDE = 8
# Above this IoU with a shape already placed, a new one would hide too much of it for its box
# (the full extent) to stay honest.
MAX_OVERLAP_IOU = 0.3


@dataclass(frozen=True)
class ShapesSummary:
    root: Path
    images: dict[str, int]
    objects: dict[str, int]
    crops: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "images": self.images,
            "objects": self.objects,
            "crops": self.crops,
            "categories": [{"id": i, "name": n} for i, n in zip(CATEGORY_IDS, CLASSES)],
            "coco": {s: str(self.root / s / "annotations.json") for s in SPLITS},
            "imagefolder": {s: str(self.root / "crops" / s) for s in SPLITS},
        }


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A gradient between two colours, a random pattern (stripes, checks or blobs) and noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(angle) + yy * math.sin(angle)
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    img = c0 + (c1 - c0) * t[..., None]
    kind = rng.integers(0, 3)
    amplitude = rng.uniform(15, 45)
    if kind == 0:
        freq, phase, a2 = rng.uniform(0.05, 0.4), rng.uniform(0, 2 * math.pi), rng.uniform(0, math.pi)
        pattern = np.sin((xx * math.cos(a2) + yy * math.sin(a2)) * freq + phase)
    elif kind == 1:
        cell = int(rng.integers(4, 16))
        pattern = (((xx // cell) + (yy // cell)) % 2) * 2.0 - 1.0
    else:
        pattern = np.zeros((height, width), np.float32)
        for _ in range(int(rng.integers(3, 8))):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.1, 0.4) * max(height, width)
            pattern += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)) * rng.choice((-1.0, 1.0))
    img = img + amplitude * pattern[..., None] * rng.uniform(0.5, 1.0, 3)
    img = img + rng.normal(0, rng.uniform(2, 10), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    mean = under.reshape(-1, 3).mean(0)
    best, best_dist = None, -1.0
    for _ in range(16):
        colour = rng.integers(0, 256, 3)
        dist = float(np.abs(colour - mean).sum())
        if dist > 150:
            return tuple(int(c) for c in colour)  # type: ignore[return-value]
        if dist > best_dist:
            best, best_dist = colour, dist
    return tuple(int(c) for c in best)  # type: ignore[return-value,union-attr]


def _shape_mask(rng: np.random.Generator, cls: str, height: int, width: int, size: int) -> Image.Image | None:
    """A mask with one shape of class ``cls`` drawn into it, or None if the draw left it empty."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    side = rng.uniform(0.15, 0.45) * size
    if cls == "circle":
        w = h = side
    elif cls == "ellipse":
        ratio = rng.uniform(1.6, 2.4)
        w, h = (side, side / ratio) if rng.random() < 0.5 else (side / ratio, side)
    elif cls == "rectangle":
        w, h = side, side * rng.uniform(0.5, 1.0)
        if rng.random() < 0.5:
            w, h = h, w
    else:
        w, h = side, side * rng.uniform(0.7, 1.1)
    w, h = max(6.0, w), max(6.0, h)
    if w >= width - 2 or h >= height - 2:
        return None
    x0 = rng.uniform(1, width - w - 1)
    y0 = rng.uniform(1, height - h - 1)
    box = [x0, y0, x0 + w, y0 + h]
    if cls in ("circle", "ellipse"):
        draw.ellipse(box, fill=255)
    elif cls == "rectangle":
        draw.rectangle(box, fill=255)
    else:
        apex = x0 + rng.uniform(0.2, 0.8) * w
        points = [(apex, y0), (x0, y0 + h), (x0 + w, y0 + h)]
        if rng.random() < 0.5:  # pointing down
            points = [(apex, y0 + h), (x0, y0), (x0 + w, y0)]
        draw.polygon(points, fill=255)
    return mask if mask.getbbox() else None


def make_image(seed: int, split: str, index: int, size: int) -> tuple[Image.Image, list[dict[str, Any]]]:
    """One picture and its objects: ``{"class", "category_id", "bbox" [x, y, w, h], "area"}``.

    Pictures are ``size`` wide and between 3/4 and all of it high, so mapping boxes back from a
    square network input is exercised."""
    rng = _rng(seed, split, index)
    width = size
    height = int(round(size * rng.uniform(0.75, 1.0)))
    pixels = _background(rng, height, width)
    image = Image.fromarray(pixels)
    objects: list[dict[str, Any]] = []
    boxes: list[tuple[int, int, int, int]] = []
    wanted = int(rng.integers(1, 5))
    for _ in range(wanted * 4):  # placement attempts
        if len(objects) == wanted:
            break
        k = int(rng.integers(0, len(CLASSES)))
        mask = _shape_mask(rng, CLASSES[k], height, width, size)
        if mask is None:
            continue
        bbox = mask.getbbox()  # exact pixel extent, right/bottom exclusive
        if boxes and iou_matrix(bbox, boxes).max() > MAX_OVERLAP_IOU:
            continue
        x0, y0, x1, y1 = bbox
        colour = _contrasting_colour(rng, pixels[y0:y1, x0:x1])
        image.paste(colour, (0, 0), mask)
        boxes.append(bbox)
        objects.append(
            {
                "class": CLASSES[k],
                "category_id": CATEGORY_IDS[k],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": int(np.count_nonzero(np.asarray(mask))),
            }
        )
    return image, objects


def _crop(image: Image.Image, bbox: list[int]) -> Image.Image | None:
    x, y, w, h = bbox
    if min(w, h) < MIN_CROP_SIDE:
        return None
    mx, my = int(round(w * CROP_MARGIN)), int(round(h * CROP_MARGIN))
    return image.crop((max(0, x - mx), max(0, y - my), min(image.width, x + w + mx), min(image.height, y + h + my)))


DESCRIPTION = "edgecv shapes"
# Every file a shapes data set holds; a rerun replaces the folder whole, so a folder holding any
# other file (someone's notes, a picture added by hand) is not one to replace.
_SPLIT = "(" + "|".join(SPLITS) + ")"
SET_FILES = re.compile(
    rf"{_SPLIT}/annotations\.json|{_SPLIT}/images/\d+\.png"
    rf"|crops/{_SPLIT}/labels\.txt|crops/{_SPLIT}/({'|'.join(CLASSES)})/\d+_\d+\.png"
)


def _is_shapes_set(folder: Path) -> bool:
    """True for a folder holding a shapes data set and nothing else."""
    files = (p for p in folder.rglob("*") if not p.is_dir())
    if not all(SET_FILES.fullmatch(p.relative_to(folder).as_posix()) for p in files):
        return False
    try:
        info = json.loads((folder / "train" / "annotations.json").read_text()).get("info", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(info, dict) and str(info.get("description", "")).startswith(DESCRIPTION)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_shapes_set(out):
        raise OutputPathError(
            f"{out} is not empty and is not a shapes data set (which would be replaced whole); choose an empty folder"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create {out.parent}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _replacing(out: Path) -> Iterator[Path]:
    """A fresh sibling folder to write into, swapped in for ``out`` once written: a data set's
    folder holds exactly what its annotations list (a smaller rerun leaves no stale pictures), and
    an interrupted run leaves the earlier set in place, never a mix of the two."""
    staging = _sibling(out, "partial")
    try:
        staging.mkdir()  # not mkdtemp: its 0700 would become the data set's permissions
    except OSError as exc:
        raise OutputPathError(f"cannot write in {out.parent}: {exc.strerror or exc}") from None
    try:
        yield staging
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _sibling(out: Path, role: str) -> Path:
    # Hidden and unique: two runs writing the same set never share a staging folder.
    return out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{role}"


def _swap_in(staging: Path, out: Path) -> None:
    # A folder cannot be renamed onto a non-empty one: move the old set aside first, then drop it.
    old = None
    if out.exists():
        old = _sibling(out, "old")
        out.rename(old)
    try:
        staging.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate_shapes(
    out: str | Path,
    images: int = 200,
    size: int = 160,
    seed: int = 0,
    progress: Any = None,
) -> ShapesSummary:
    """Write the data set under ``out``; ``images`` pictures in all, a fifth of them in ``val``.

    ``progress(done, total)`` is called after each picture."""
    if isinstance(images, bool) or not isinstance(images, int) or images < 2:
        raise InvalidOptionError(f"--images must be an integer ≥ 2 (train and val need one each), got {images!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 4096:
        raise InvalidOptionError(f"--size must be an integer from 32 to 4096, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidOptionError(f"--seed must be an integer ≥ 0, got {seed!r}")
    root = Path(out).expanduser()
    # Absolute: the staging folder is the sibling of the named folder, also for "." or "sets/".
    _check_out(root.absolute())
    with _replacing(root.absolute()) as staging:
        written = _write_set(staging, images, size, seed, progress)
    return ShapesSummary(root, written.images, written.objects, written.crops)


def _write_set(root: Path, images: int, size: int, seed: int, progress: Any) -> ShapesSummary:
    n_val = max(1, int(round(images * VAL_FRACTION)))
    counts = {"train": images - n_val, "val": n_val}
    objects_written = {s: 0 for s in SPLITS}
    crops_written = {s: 0 for s in SPLITS}
    done = 0
    for split in SPLITS:
        image_dir = root / split / "images"
        image_dir.mkdir(parents=True, exist_ok=True)
        for name in CLASSES:
            (root / "crops" / split / name).mkdir(parents=True, exist_ok=True)
        coco_images, annotations = [], []
        for index in range(counts[split]):
            image, objects = make_image(seed, split, index, size)
            file_name = f"{index:06d}.png"
            image.save(image_dir / file_name)
            image_id = index + 1
            coco_images.append({"id": image_id, "file_name": file_name, "width": image.width, "height": image.height})
            for j, obj in enumerate(objects):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": obj["category_id"],
                        "bbox": obj["bbox"],
                        "area": obj["area"],
                        "iscrowd": 0,
                    }
                )
                crop = _crop(image, obj["bbox"])
                if crop is not None:
                    crop.save(root / "crops" / split / obj["class"] / f"{index:06d}_{j}.png")
                    crops_written[split] += 1
            objects_written[split] += len(objects)
            done += 1
            if progress is not None:
                progress(done, images)
        coco = {
            "info": {"description": f"{DESCRIPTION}, split {split}, seed {seed}, size {size}", "version": "1"},
            "licenses": [],
            "images": coco_images,
            "annotations": annotations,
            "categories": [{"id": i, "name": n, "supercategory": "shape"} for i, n in zip(CATEGORY_IDS, CLASSES)],
        }
        (root / split / "annotations.json").write_text(json.dumps(coco, indent=1) + "\n")
    # Class index = line number: the detector's label order (categories sorted by id), not the
    # alphabetical folder order.
    for split in SPLITS:
        (root / "crops" / split / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    return ShapesSummary(root, counts, objects_written, crops_written)
