"""Evaluation data: an ImageFolder tree or a ``.npz`` for classifiers, COCO for detectors.

``open_dataset(path, images=None)`` decides which from what is on disk; every refusal is a
:class:`DatasetError` (exit code 2, one line) that says what was found and what was expected.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgecv.errors import UserInputError
from edgecv.preprocess import IMAGE_SUFFIXES

LABELS_FILE = "labels.txt"
NPZ_INPUT_KEYS = ("inputs", "x", "images", "data")
NPZ_LABEL_KEYS = ("labels", "y", "targets")


class DatasetError(UserInputError):
    """Evaluation data is missing, unreadable or not of a kind edgecv reads."""


class NotCocoError(DatasetError):
    """An annotation JSON that is not in COCO's detection format."""


class MissingImagesError(DatasetError):
    """Images an annotation file names are not in the image folder."""


class EmptyImageFolderError(DatasetError):
    """An ImageFolder root without class folders (or without images in them)."""


class ClassCountError(DatasetError):
    """The data's classes and the model's head do not have the same count."""


class TaskMismatchError(DatasetError):
    """Detection data given to a classifier, or classification data to a detector."""


# --- classification ------------------------------------------------------------------------------


@dataclass
class ImageFolderDataset:
    """``root/<class>/<image>``; the class index is the line of ``labels.txt`` naming the folder
    when the root has one, else the folder's place in sorted order."""

    root: Path
    classes: list[str]
    samples: list[tuple[Path, int]]
    labels_file: Path | None = None
    task: str = "classification"
    kind: str = "imagefolder"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.samples)

    def limit(self, n: int | None) -> "ImageFolderDataset":
        if n is None or n >= len(self.samples):
            return self
        # An even spread over the (class-sorted) list keeps every class in a --limit subset.
        picks = np.linspace(0, len(self.samples) - 1, n).round().astype(int)
        return ImageFolderDataset(self.root, self.classes, [self.samples[i] for i in picks], self.labels_file)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.root),
            "images": len(self),
            "classes": self.num_classes,
            "labels_file": str(self.labels_file) if self.labels_file else None,
        }


def _read_labels_file(path: Path) -> list[str]:
    try:
        names = [ln.strip() for ln in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise DatasetError(f"{path} names no classes (one class folder name per line expected)")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path} names a class twice")
    return names


def open_imagefolder(root: Path) -> ImageFolderDataset:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise EmptyImageFolderError(
            f"{root} holds no class folders (ImageFolder layout: {root}/<class>/<image>; "
            "or give a .npz of inputs and labels, or a COCO annotation file)"
        )
    labels_file = root / LABELS_FILE if (root / LABELS_FILE).is_file() else None
    if labels_file is not None:
        classes = _read_labels_file(labels_file)
        unknown = [f for f in folders if f not in classes]
        if unknown:
            raise DatasetError(f"{labels_file} does not list the class folder(s) {', '.join(unknown[:5])}")
    else:
        classes = folders
    index = {name: i for i, name in enumerate(classes)}
    samples = []
    for name in folders:
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        samples += [(p, index[name]) for p in files]
    if not samples:
        raise EmptyImageFolderError(f"the class folders of {root} hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return ImageFolderDataset(root, classes, samples, labels_file)


@dataclass
class NpzDataset:
    """Preprocessed inputs ``[N, C, H, W]`` float32 and integer labels ``[N]``, fed as they are."""

    path: Path
    inputs: np.ndarray
    labels: np.ndarray
    task: str = "classification"
    kind: str = "npz"

    @property
    def num_classes(self) -> int | None:
        return None  # labels give a lower bound only; the model's head is checked against that

    def __len__(self) -> int:
        return len(self.labels)

    def limit(self, n: int | None) -> "NpzDataset":
        if n is None or n >= len(self.labels):
            return self
        return NpzDataset(self.path, self.inputs[:n], self.labels[:n])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path),
            "images": len(self),
            "input_shape": list(self.inputs.shape[1:]),
        }


def open_npz(path: Path) -> NpzDataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path} is not a readable .npz: {exc}") from None
    x_key = next((k for k in NPZ_INPUT_KEYS if k in arrays), None)
    y_key = next((k for k in NPZ_LABEL_KEYS if k in arrays), None)
    if x_key is None or y_key is None:
        raise DatasetError(
            f"{path} holds {', '.join(sorted(arrays)) or 'nothing'}; an evaluation .npz needs inputs "
            f"(one of {', '.join(NPZ_INPUT_KEYS)}) and labels (one of {', '.join(NPZ_LABEL_KEYS)})"
        )
    x, y = arrays[x_key], arrays[y_key]
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(
            f"{path}: '{x_key}' must be preprocessed float inputs [N, C, H, W], got {list(x.shape)} {x.dtype}"
        )
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
        raise DatasetError(f"{path}: '{y_key}' must be {len(x)} integer class indices, got {list(y.shape)} {y.dtype}")
    if len(y) == 0:
        raise DatasetError(f"{path} holds no samples")
    if y.min() < 0:
        raise DatasetError(f"{path}: labels must be class indices ≥ 0")
    return NpzDataset(path, np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64))


# --- detection -----------------------------------------------------------------------------------


@dataclass
class CocoDataset:
    """A COCO detection annotation file and the folder of the images it names."""

    annotation_file: Path
    images_dir: Path
    coco: Any  # pycocotools.coco.COCO
    image_ids: list[int]
    categories: list[dict[str, Any]] = field(default_factory=list)  # sorted by id
    task: str = "detection"
    kind: str = "coco"

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def category_ids(self) -> list[int]:
        return [c["id"] for c in self.categories]

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, image_id: int) -> Path:
        return self.images_dir / self.coco.imgs[image_id]["file_name"]

    def limit(self, n: int | None) -> "CocoDataset":
        if n is None or n >= len(self.image_ids):
            return self
        return CocoDataset(self.annotation_file, self.images_dir, self.coco, self.image_ids[:n], self.categories)

    def check_images(self) -> None:
        missing = [self.coco.imgs[i]["file_name"] for i in self.image_ids if not self.image_path(i).is_file()]
        if missing:
            raise MissingImagesError(
                f"{len(missing)} of the {len(self.image_ids)} images {self.annotation_file.name} names are not in "
                f"{self.images_dir} (first: {missing[0]}); pass the image folder with --images"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.annotation_file),
            "images_dir": str(self.images_dir),
            "images": len(self),
            "categories": [{"id": c["id"], "name": c.get("name")} for c in self.categories],
            "annotations": sum(len(self.coco.imgToAnns.get(i, [])) for i in self.image_ids),
        }

    def __iter__(self) -> Iterator[int]:
        return iter(self.image_ids)


def _coco_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a COCO detection document, or None."""
    if not isinstance(doc, dict):
        return f"its top level is a {type(doc).__name__}, not an object"
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            return f"it has no '{key}' list"
    if not doc["categories"]:
        return "its 'categories' list is empty"
    for c in doc["categories"]:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
            return "a category lacks an integer 'id'"
    for im in doc["images"]:
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            return "an image lacks 'id' or 'file_name'"
    category_ids = {c["id"] for c in doc["categories"]}
    image_ids = {im["id"] for im in doc["images"]}
    for a in doc["annotations"]:
        if not isinstance(a, dict) or not {"image_id", "category_id", "bbox"} <= set(a):
            return "an annotation lacks 'image_id', 'category_id' or 'bbox'"
        bbox = a["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            return "an annotation's 'bbox' is not [x, y, width, height]"
        if a["category_id"] not in category_ids:
            return f"an annotation names category {a['category_id']}, which 'categories' does not list"
        if a["image_id"] not in image_ids:
            return f"an annotation names image {a['image_id']}, which 'images' does not list"
    return None


def open_coco(annotation_file: Path, images_dir: Path | None = None) -> CocoDataset:
    from pycocotools.coco import COCO

    try:
        doc = json.loads(annotation_file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {annotation_file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise NotCocoError(f"{annotation_file} is not JSON ({exc.msg} at line {exc.lineno})") from None
    problem = _coco_problem(doc)
    if problem:
        raise NotCocoError(
            f"{annotation_file} is not a COCO detection annotation file: {problem} "
            "(expected 'images', 'annotations' with 'bbox', and 'categories')"
        )
    # COCOeval reads these; files written by hand often leave them out.
    for i, a in enumerate(doc["annotations"]):
        a.setdefault("id", i + 1)
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(a["bbox"][2]) * float(a["bbox"][3]))
    doc.setdefault("info", {})
    doc.setdefault("licenses", [])
    coco = COCO()
    coco.dataset = doc
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    if images_dir is None:
        parent = annotation_file.parent
        images_dir = parent / "images" if (parent / "images").is_dir() else parent
    elif not images_dir.is_dir():
        raise DatasetError(
            f"image folder {images_dir} does not exist" if not images_dir.exists() else f"{images_dir} is not a folder"
        )
    categories = sorted(doc["categories"], key=lambda c: c["id"])
    return CocoDataset(annotation_file, images_dir, coco, sorted(coco.imgs), categories)


# --- dispatch ------------------------------------------------------------------------------------


Dataset = ImageFolderDataset | NpzDataset | CocoDataset


def _coco_json_in(folder: Path) -> Path | None:
    candidates = sorted(folder.glob("*.json")) + sorted((folder / "annotations").glob("*.json"))
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates[:4])
        raise DatasetError(
            f"{folder} holds several JSON files ({names}); pass the annotation file with --data and the images with --images"
        )
    return candidates[0] if candidates else None


def open_dataset(data: str | Path, images: str | Path | None = None) -> Dataset:
    """ImageFolder (a folder of class folders), ``.npz``, or COCO (an annotation ``.json`` with
    ``images``, or a folder holding one ``.json`` and the images, directly or under ``images/``)."""
    path = Path(data).expanduser()
    if not path.exists():
        raise DatasetError(f"evaluation data {path} does not exist")
    images_dir = Path(images).expanduser() if images is not None else None
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".npz":
            if images_dir is not None:
                raise DatasetError("--images goes with a COCO annotation file, not a .npz")
            return open_npz(path)
        if suffix == ".json":
            return open_coco(path, images_dir)
        raise DatasetError(
            f"{path} is neither a .npz nor a COCO .json; give an ImageFolder, a .npz of inputs and labels, "
            "or a COCO annotation file"
        )
    annotation = _coco_json_in(path)
    if annotation is not None:
        return open_coco(
            annotation,
            images_dir if images_dir is not None else (path / "images" if (path / "images").is_dir() else path),
        )
    if images_dir is not None:
        raise DatasetError(f"--images goes with a COCO annotation file; {path} holds none")
    return open_imagefolder(path)
