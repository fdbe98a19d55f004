"""The run folder's ledger during an export: which files the manifest answers for, which an earlier
export left that this one will not make again, and removing what nobody vouches for."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecv.errors import OutputPathError
from edgecv.runfolder import MANIFEST_NAME, file_record, write_json_atomic

from .results import StageResult
from .stage import Stage

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import ExportContext


@dataclass
class Step:
    stage: Stage
    key: str
    reused: dict[str, Any] | None  # the earlier run's record of the stage, when it still holds


def refuse_to_drop(run_dir: Path, prev: dict[str, Any] | None, steps: list[Step], ctx: ExportContext) -> None:
    """An earlier export's files that this one would not make again (fewer backends, no --int8, its
    calibration cache) are work a re-export must not throw away unasked."""
    if not prev or ctx.options.force:
        return
    made = {rel for s in steps for rel in (*s.stage.outputs(ctx), *s.stage.caches(ctx))}
    listed = [*prev.get("files", {}), *prev.get("caches", [])]
    dropped = sorted({rel for rel in listed if rel not in made and inside(run_dir, rel) and (run_dir / rel).is_file()})
    if dropped:
        shown = ", ".join(dropped[:6]) + (f" and {len(dropped) - 6} more" if len(dropped) > 6 else "")
        raise OutputPathError(
            f"{run_dir} holds an earlier export with files this one would not make ({shown}); "
            "pass --force to replace that export, or choose another --out"
        )


class Ledger:
    """The manifest of the export in progress, assembled in stage order. A file this export may
    leave behind is listed (``files``, ``caches``) or, until it is, in ``stale_files``: after a
    failure, Ctrl-C or kill -9, the next export knows exactly what to remove."""

    def __init__(self, run_dir: Path, manifest: dict[str, Any], steps: list[Step], ctx: ExportContext):
        self.run_dir, self.manifest, self.ctx = run_dir, manifest, ctx
        self.order = [s.stage.name for s in steps]
        self.caches = [c for s in steps for c in s.stage.caches(ctx)]
        self.records: dict[str, dict[str, Any]] = {}
        self.pending: set[str] = set()

    def record(self, step: Step, status: str, result: StageResult, wall: float) -> None:
        stage, ctx = step.stage, self.ctx
        info = result.to_info()
        self.records[stage.name] = {
            "stage": {"status": status, "wall_s": round(wall, 3), "key": step.key, "info": info},
            "files": {rel: file_record(self.run_dir, rel) for rel in stage.outputs(ctx)},
            "artifacts": [rec.to_dict() for rec in stage.artifacts(ctx, result)],
        }
        if "calibration" in info:
            self.manifest["calibration"] = info["calibration"]

    def fail(self, step: Step) -> None:
        self.records[step.stage.name] = {"stage": {"status": "failed", "key": step.key}, "files": {}, "artifacts": []}

    def save(self) -> None:
        done = [self.records[name] for name in self.order if name in self.records]
        m = self.manifest
        m["stages"] = {name: self.records[name]["stage"] for name in self.order if name in self.records}
        m["files"] = {rel: rec for r in done for rel, rec in r["files"].items()}
        m["artifacts"] = [a for r in done for a in r["artifacts"]]
        m["caches"] = [c for c in self.caches if (self.run_dir / c).is_file()]
        m["stale_files"] = sorted(self.pending - set(m["files"]) - set(m["caches"]))
        write_json_atomic(self.run_dir / MANIFEST_NAME, m)

    def clean(self) -> None:
        """Remove what is pending and unlisted, then record that it is gone."""
        self.save()
        remove_files(self.run_dir, self.manifest["stale_files"])
        self.pending.clear()
        self.save()


def vouched(prev: dict[str, Any] | None) -> set[str]:
    """Files an earlier manifest of this folder answers for: artifacts, caches, and the stale files
    an interrupted run had yet to remove."""
    if not prev:
        return set()
    listed = [*prev.get("files", {}), *prev.get("caches", []), *prev.get("stale_files", [])]
    return {rel for rel in listed if isinstance(rel, str)}


def inside(run_dir: Path, rel: str) -> bool:
    """A manifest is data: a path that leaves the folder (``..``, a link out) or names the manifest
    itself is never acted on."""
    path = run_dir / rel
    return path.name != MANIFEST_NAME and not path.is_symlink() and run_dir.resolve() in path.resolve().parents


def remove_files(run_dir: Path, rels: list[str]) -> None:
    root = run_dir.resolve()
    for rel in rels:
        if not inside(run_dir, rel):
            continue
        path = run_dir / rel
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        parent = path.parent
        while parent.resolve() != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
