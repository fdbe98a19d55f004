"""Writing an artifact so that an interrupted run never leaves a file that looks finished."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PARTIAL = ".partial-"


@contextlib.contextmanager
def written_atomically(final: str | Path, companions: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temporary name beside ``final`` (same suffix: writers dispatch on it) to write to.

    On success it is renamed onto ``final``, after the ``companions`` (files with the same stem and
    these suffixes, e.g. OpenVINO's ``.bin``): the main file appearing last is what marks the
    artifact complete. On failure the temporary files go and ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f"{PARTIAL}{os.getpid()}-{final.name}")
    moves = [(temporary.with_suffix(s), final.with_suffix(s)) for s in companions] + [(temporary, final)]
    try:
        yield temporary
        for src, dst in moves:
            os.replace(src, dst)
    finally:
        for src, _ in moves:
            src.unlink(missing_ok=True)


def write_json(path: str | Path, payload: Any) -> None:
    with written_atomically(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
