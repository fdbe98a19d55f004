"""Files that travel between machines of a sweep that share no filesystem: run folders going back to
the driver and out to the nodes that evaluate and time them, and the driver's own inputs (weights,
calibration data, eval data) going out to the nodes that need them.

A path travels as an uncompressed tar in memory (ONNX and IR weights barely compress, and gzip
would cost seconds per run folder). Nothing here knows about Ray: a :class:`Parcel` is plain bytes
the executor puts in the object store once and every task that needs it unpacks.

Unpacking never leaves something half-written that looks finished: the tar is extracted beside its
destination and renamed into place. Inputs are unpacked once per node into a cache named by their
content, so concurrent tasks on one node share the first complete copy and never write into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .point import EvalData, Point

# ExportOptions fields that name a file or folder on the driver's disk.
PATH_OPTIONS = ("weights", "labels", "calib")
PARTIAL = ".partial-"


def pack(path: str | Path) -> bytes:
    """A file or folder as one tar in memory; its entries sit under the path's own name."""
    path = Path(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(path), arcname=path.name)
    return buf.getvalue()


def _extract_beside(blob: bytes, final: Path) -> Path:
    """Extract ``blob`` into a fresh folder next to ``final`` (same filesystem, so renames are atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{os.getpid()}-", dir=final.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
            tar.extractall(tmp, filter="data")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def unpack_folder(blob: bytes, dest: str | Path) -> Path:
    """:func:`pack`'s bytes of a folder → ``dest``, replacing what was there as a whole."""
    dest = Path(dest)
    tmp = _extract_beside(blob, dest)
    (inner,) = list(tmp.iterdir())
    old = dest.with_name(f"{PARTIAL}{os.getpid()}-old-{dest.name}")
    try:
        if dest.exists():
            os.replace(dest, old)
        os.replace(inner, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dest


@dataclass(frozen=True)
class Parcel:
    """One driver path, packed: ``blob`` is the bytes (or, once the executor has put them in its
    object store, whatever handle the task receives as those bytes)."""

    source: str  # the path as the driver names it
    digest: str
    blob: Any


def make_parcel(source: str) -> Parcel:
    blob = pack(Path(source).expanduser())
    return Parcel(source, hashlib.sha256(blob).hexdigest(), blob)


def node_cache() -> Path:
    return Path(tempfile.gettempdir()) / f"edgecv-sweep-{os.getuid()}" / "inputs"


def receive(parcel: Parcel, fetch: Callable[[], bytes], cache: Path | None = None) -> Path:
    """Where ``parcel``'s path is on this node, unpacked on first use (``fetch`` gets its bytes
    only then). The first complete copy wins the rename; a later one finds it there and is thrown
    away."""
    home = (cache or node_cache()) / parcel.digest[:24]
    name = Path(parcel.source).expanduser().name
    if not home.is_dir():
        tmp = _extract_beside(fetch(), home)
        try:
            os.rename(tmp, home)
        except OSError:  # another task on this node got there first; its copy is complete
            shutil.rmtree(tmp, ignore_errors=True)
    return home / name


def named_paths(points: Iterable[Point], data: EvalData | None) -> list[str]:
    """Every value of the points' options and of ``data`` that may name a path."""
    found: list[Any] = []
    for p in points:
        found += [p.export_options.get(k) for k in PATH_OPTIONS]
        found.append(p.weights)
    if data is not None:
        found += [data.path, data.images]
    return [s for s in dict.fromkeys(found) if isinstance(s, str) and s]


def driver_paths(points: Iterable[Point], data: EvalData | None) -> list[str]:
    """The paths on the driver's disk that the points' exports and evals read."""
    return [s for s in named_paths(points, data) if Path(s).expanduser().exists()]


def localize_point(point: Point, local: dict[str, str]) -> Point:
    """``point`` with the driver paths it names replaced by their copies on this node."""
    options = {
        k: local.get(v, v) if k in PATH_OPTIONS and isinstance(v, str) else v for k, v in point.export_options.items()
    }
    weights = local.get(point.weights, point.weights) if point.weights else point.weights
    return dataclasses.replace(point, export_options=options, weights=weights)


def localize_data(data: EvalData | None, local: dict[str, str]) -> EvalData | None:
    if data is None:
        return None
    images = local.get(data.images, data.images) if data.images else data.images
    return dataclasses.replace(data, path=local.get(data.path, data.path), images=images)


@contextlib.contextmanager
def named_as_on_driver(local: dict[str, str]) -> Iterator[None]:
    """An error raised inside names the driver's paths, not this node's copies of them (the user
    knows the former)."""
    try:
        yield
    except Exception as exc:
        exc.args = tuple(_driver_text(a, local) if isinstance(a, str) else a for a in exc.args)
        raise


def _driver_text(text: str, local: dict[str, str]) -> str:
    for source, copy in local.items():
        text = text.replace(copy, source)
    return text


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A private folder for one task's work on a node, removed afterwards."""
    root = Path(tempfile.gettempdir()) / f"edgecv-sweep-{os.getuid()}" / "work"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=root) as tmp:
        yield Path(tmp)
