"""The run folder: atomic writes, file hashes and stage reuse.

Every artifact is written under a temporary name in the same folder and renamed into place, so an
interrupted export never leaves a file that looks finished; `os.replace` is atomic on POSIX within a
file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgecv.errors import OutputPathError

from .manifest import MANIFEST_NAME

TMP_MARK = ".partial-"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def tmp_name(final: Path) -> Path:
    """A temporary sibling of ``final`` that keeps its suffix (some writers dispatch on it)."""
    return final.with_name(f"{TMP_MARK}{os.getpid()}-{final.name}")


@contextlib.contextmanager
def atomic_path(final: str | Path, companions: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path to write; rename it (and companion files with the same stem and the
    given suffixes, e.g. OpenVINO's ``.bin`` next to the ``.xml``) onto ``final`` on success.
    On any error the temporary files are removed and nothing named ``final`` is touched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final)
    pairs = [(tmp, final)] + [(tmp.with_suffix(s), final.with_suffix(s)) for s in companions]
    try:
        yield tmp
        for src, _ in pairs:
            if not src.exists():
                raise FileNotFoundError(f"writer did not produce {src.name}")
        # Companions first: the main file appearing is what marks the artifact as complete.
        for src, dst in reversed(pairs):
            os.replace(src, dst)
    finally:
        for src, _ in pairs:
            with contextlib.suppress(FileNotFoundError):
                src.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def remove_stale_partials(run_dir: Path) -> None:
    """Temporary files of an earlier, interrupted run are never finished artifacts: remove them."""
    for p in run_dir.rglob(f"{TMP_MARK}*"):
        with contextlib.suppress(OSError):
            p.unlink() if p.is_file() else shutil.rmtree(p)


def prepare_run_dir(out: str | Path) -> Path:
    """Create (or reuse) the output folder, refusing paths that cannot hold a run."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).exists():
        # Never mix a run into a folder that holds something else.
        raise OutputPathError(
            f"output folder {out} is not empty and holds no edgecv manifest; choose another --out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputPathError(f"output folder {out} is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=TMP_MARK):
            pass
    except OSError as exc:
        raise OutputPathError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
    remove_stale_partials(out)
    return out


def file_record(run_dir: Path, rel: str) -> dict[str, Any]:
    p = run_dir / rel
    return {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
