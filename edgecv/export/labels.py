"""Class names an export records in its artifacts (``class_names`` in the model record), so
predict, eval and the Jetson bundle can say "triangle" instead of "2".

Names come from ``--labels`` (a text file with one name a line, or a COCO annotation file whose
categories, sorted by id, give the label order edgecv's eval uses), else from calibration data that
names its classes: a ``labels.txt`` inside the folder, the ``annotations.json`` next to an
``images/`` folder (edgecv's COCO layout), or a classifier's ImageFolder class folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from edgecv.errors import InvalidOptionError

BACKGROUND = "background"
COCO_SPLIT_ANNOTATIONS = "annotations.json"
LABELS_TXT = "labels.txt"


def read_labels_file(path: str | Path) -> list[str]:
    """Names in label order: a COCO file's categories sorted by id, a ``{"names": [...]}`` or plain
    JSON list, or one name a line (blank lines and ``#`` comments skipped)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f"--labels {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    names = _json_names(path, text) if path.suffix.lower() == ".json" else _text_names(text)
    if not names:
        raise InvalidOptionError(f"--labels {path} names no classes")
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"--labels {path} names a class twice")
    return names


def _text_names(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _json_names(path: Path, text: str) -> list[str]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidOptionError(f"--labels {path}: not a readable JSON file ({exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("categories"), list):
        categories = [c for c in doc["categories"] if isinstance(c, dict) and isinstance(c.get("id"), int)]
        if len(categories) != len(doc["categories"]):
            raise InvalidOptionError(f"--labels {path}: a category lacks an integer 'id'")
        return [str(c.get("name", c["id"])) for c in sorted(categories, key=lambda c: c["id"])]
    listed = doc.get("names") if isinstance(doc, dict) else doc
    if isinstance(listed, list) and all(isinstance(n, str) for n in listed):
        return [n.strip() for n in listed]
    raise InvalidOptionError(
        f"--labels {path}: expected a COCO annotation file (with 'categories'), a list of names, or {{'names': [...]}}"
    )


def fit_to_model(names: list[str], model_info: dict[str, Any], source: str) -> list[str]:
    """``names`` indexed by the model's label: a background class the data does not name gets a
    name of its own. Refuses a count that matches neither the classes nor the classes besides
    background."""
    num_classes = model_info.get("num_classes")
    background = model_info.get("background_class")
    if not isinstance(num_classes, int) or len(names) == num_classes:
        return list(names)
    if background is not None and len(names) == num_classes - 1 and 0 <= background < num_classes:
        return [*names[:background], BACKGROUND, *names[background:]]
    besides = f" ({num_classes - 1} besides background)" if background is not None else ""
    raise InvalidOptionError(
        f"{source} names {len(names)} classes but the model has {num_classes}{besides}; "
        "pass a labels file with one name per class"
    )


def class_names_for_export(options: Any, model_info: dict[str, Any], warn: Callable[[str], None]) -> list[str] | None:
    """The names to record for this export, or None when nothing names the classes."""
    if options.labels:
        return fit_to_model(read_labels_file(options.labels), model_info, f"--labels {options.labels}")
    if not options.calib:
        return None
    found = _calibration_names(Path(options.calib).expanduser(), model_info)
    if found is None:
        return None
    names, source = found
    try:
        return fit_to_model(names, model_info, source)
    except InvalidOptionError as exc:
        # A guess from the calibration data must not stop an export the user did not ask names for.
        warn(f"class names not recorded: {exc}")
        return None


def _calibration_names(calib: Path, model_info: dict[str, Any]) -> tuple[list[str], str] | None:
    if not calib.is_dir():
        return None
    for labels in (calib / LABELS_TXT, calib.parent / COCO_SPLIT_ANNOTATIONS):
        if labels.is_file() and (labels.parent == calib or calib.name == "images"):
            try:
                return read_labels_file(labels), f"the calibration data's {labels}"
            except InvalidOptionError:
                return None
    if model_info.get("task") == "classification":
        return _imagefolder_names(calib, model_info)
    return None


def _imagefolder_names(calib: Path, model_info: dict[str, Any]) -> tuple[list[str], str] | None:
    # Sorted folder names are torchvision's ImageFolder order (and `edgecv eval`'s without a
    # labels.txt); only a folder whose class count is the model's is taken for one.
    folders = sorted(p.name for p in calib.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2 or len(folders) != model_info.get("num_classes"):
        return None
    return folders, f"the calibration ImageFolder {calib}"
