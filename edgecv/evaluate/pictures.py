"""The pictures ``edgecv predict`` reads and writes: picture files found in files, folders and glob
patterns, and copies with the detections drawn on."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecv.errors import InvalidOptionError

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
    (128, 0, 0),
]


def draw_detections(img: np.ndarray, dets: list[dict[str, Any]], out: Path) -> None:
    from PIL import Image, ImageDraw

    picture = Image.fromarray(img)
    draw = ImageDraw.Draw(picture)
    width = max(2, round(min(picture.size) / 200))
    for det in dets:
        colour = PALETTE[det["label"] % len(PALETTE)]
        x1, y1, x2, y2 = det["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        text = f"{det['name']} {det['score']:.2f}"
        tx, ty = x1, max(0, y1 - 12)
        bbox = draw.textbbox((tx, ty), text)
        draw.rectangle(bbox, fill=colour)
        draw.text((tx, ty), text, fill=(255, 255, 255))
    out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(out)


def expand_images(items: Sequence[str | Path], skip: Path | None = None) -> list[Path]:
    """Picture files from files, folders (every picture inside, recursively) and glob patterns
    (for patterns a shell did not expand, e.g. quoted ones), in order, each once. Pictures under
    ``skip`` (predict's own output folder) are left out of folders and patterns."""
    found: list[Path] = []
    missing: list[str] = []
    for item in items:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += _pictures(sorted(path.rglob("*")), skip, f"{path} holds no pictures")
        elif any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True))
            found += _pictures(matches, skip, f"no picture matches {text}")
        else:
            missing.append(text)
    if missing:
        raise InvalidOptionError(f"no such image: {', '.join(missing)}")
    return list(dict.fromkeys(found))


def _pictures(paths: list[Path], skip: Path | None, none_message: str) -> list[Path]:
    from edgecv.preprocess import IMAGE_SUFFIXES

    skip = skip.resolve() if skip is not None else None
    pictures = [
        p
        for p in paths
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not p.name.startswith(".")
        and (skip is None or skip not in p.resolve().parents)
    ]
    if not pictures:
        raise InvalidOptionError(f"{none_message} ({', '.join(IMAGE_SUFFIXES)})")
    return pictures


def drawn_paths(files: Sequence[Path], out_dir: Path) -> list[Path]:
    """``<stem>.pred.png`` in ``out_dir`` for each picture; pictures of the same name from different
    folders get ``<stem>-2.pred.png`` and so on, so none overwrites another."""
    used: set[str] = set()
    paths = []
    for f in files:
        name, n = f"{f.stem}.pred.png", 2
        while name in used:
            name, n = f"{f.stem}-{n}.pred.png", n + 1
        used.add(name)
        paths.append(out_dir / name)
    return paths
