"""The sweep folder, and the one writer of it:

    sweeps/NAME/
      plan.json             what was asked (the grid, engines, threads, data, constraint)
      runs/<run_name>/      run folders, one per export (shared by a model's precisions)
      points/<key>.json     one record per finished or failed point, written atomically
      sweep.json|md|html    the results (written at the end, from the records; removed when a run starts)

A point whose record says ``done`` and whose fingerprint (its export options, the engines, threads
and timing settings) matches is finished: a rerun reuses it without opening its run folder. Any
other point (no record, a failed one, a changed one) runs again. Records are renamed into place, so
an interrupted write never looks finished. One sweep process at a time holds the folder.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import functools
import json
import traceback
from pathlib import Path
from typing import Any, Iterator

from edgecv.errors import OutputPathError
from edgecv.runfolder import sha256_file, sha256_json, write_json_atomic

from .grid import SweepPlan
from .point import Point, PointExport
from .results import SWEEP_SCHEMA

RESULT_FILES = ("sweep.json", "sweep.md", "sweep.html")


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def _weights_digest(weights: str | None) -> str | None:
    """A retrained checkpoint written over the same path is other weights."""
    if weights is None or not Path(weights).is_file():
        return None
    st = Path(weights).stat()
    return _file_digest(weights, st.st_mtime_ns, st.st_size)


def point_fingerprint(point: Point, plan: SweepPlan) -> str:
    """What a finished point's figures depend on; a change makes the point run again."""
    return sha256_json(
        {
            "point": point.to_dict(),
            "weights_sha256": _weights_digest(point.weights),
            "backends": list(plan.backends),
            "threads": list(plan.threads),
            "iterations": plan.iterations,
            "warmup": plan.warmup,
            "data": None if plan.data is None else plan.data.to_dict(),
        }
    )


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class SweepStore:
    """Open with :meth:`open` (takes the folder's lock) and :meth:`close` it, or use ``with``."""

    def __init__(self, root: str | Path, plan: SweepPlan):
        self.root = Path(root).expanduser()
        self.plan = plan
        self.runs_root = self.root / "runs"
        self.points_dir = self.root / "points"
        self._lock: Any = None

    def open(self) -> "SweepStore":
        if self.root.exists() and not self.root.is_dir():
            raise OutputPathError(f"--out {self.root} is a file, not a folder")
        try:
            self.points_dir.mkdir(parents=True, exist_ok=True)
            self.runs_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(f"cannot create {self.root}: {exc.strerror}") from None
        self._lock = open(self.root / ".lock", "a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise OutputPathError(f"{self.root} is in use by another edgecv sweep") from None
        write_json_atomic(self.root / "plan.json", {"schema": SWEEP_SCHEMA, "created": _now(), **self.plan.to_dict()})
        # The results of an earlier run go until this one writes its own: an interrupted rerun
        # must not leave a sweep.json that answers for another plan.
        for name in RESULT_FILES:
            (self.root / name).unlink(missing_ok=True)
        return self

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "SweepStore":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _path(self, point: Point) -> Path:
        return self.points_dir / f"{point.key}.json"

    def record(self, point: Point) -> dict[str, Any] | None:
        path = self._path(point)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # unreadable: the point runs again

    def finished(self, point: Point) -> dict[str, Any] | None:
        """The point's record when it is done under the current plan; None when it must run."""
        rec = self.record(point)
        if rec and rec.get("status") == "done" and rec.get("fingerprint") == point_fingerprint(point, self.plan):
            return rec
        return None

    def pending(self) -> list[Point]:
        return [p for p in self.plan.points if self.finished(p) is None]

    def run_dir(self, point: Point) -> Path:
        """Where the point's run folder lives in this sweep (an executor on other nodes unpacks it here)."""
        return self.runs_root / point.run_name

    def record_done(
        self,
        point: Point,
        export: PointExport,
        accuracy: dict[str, dict[str, Any]],
        rows: list[dict[str, Any]],
        wall_s: dict[str, float] | None = None,
    ) -> None:
        write_json_atomic(
            self._path(point),
            {
                "status": "done",
                "key": point.key,
                "fingerprint": point_fingerprint(point, self.plan),
                "finished": _now(),
                "point": point.to_dict(),
                "export": export.to_dict(),
                "accuracy": accuracy,
                "rows": rows,
                "wall_s": wall_s or {},
            },
        )

    def record_failed(self, point: Point, stage: str, error: BaseException | str) -> None:
        if isinstance(error, BaseException):
            message, kind = str(error) or type(error).__name__, type(error).__name__
            trace = getattr(error, "worker_traceback", None) or "".join(traceback.format_exception(error))
        else:
            message, kind, trace = str(error), None, None
        write_json_atomic(
            self._path(point),
            {
                "status": "failed",
                "key": point.key,
                "fingerprint": point_fingerprint(point, self.plan),
                "finished": _now(),
                "point": point.to_dict(),
                "error": {"stage": stage, "type": kind, "message": message, "traceback": trace},
            },
        )

    def records(self) -> Iterator[tuple[Point, dict[str, Any] | None]]:
        """Each point of the plan with its record (None: never finished)."""
        for p in self.plan.points:
            yield p, self.record(p)
