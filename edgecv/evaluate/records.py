"""What ``edgecv eval`` found and where it goes: one row per artifact, the report, ``eval.json``
in the run folder (which ``edgecv benchmark --report`` reads back), the report files and the
scored predictions."""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.errors import ArtifactError, InvalidOptionError, OutputPathError
from edgecv.runfolder import EVAL_FILE, RESULTS_FILE, disk_digest, scored_accuracy, write_json_atomic

EVAL_SCHEMA = "edgecv.eval/1"
# The first calls of each artifact warm it up: results.json leaves them out of the latency.
WARMUP_CALLS = 3


@dataclass
class EvalResult:
    artifact: str
    backend: str
    path: str | None
    artifact_precision: str | None
    precision: str | None
    intended_for: str | None
    task: str
    metrics: dict[str, Any]
    batch: int
    samples_ms: list[float]
    load_s: float | None
    size_bytes: int | None
    record: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None
    delta: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return "top1" if self.task == "classification" else "map"

    def accuracy(self, data: dict[str, Any], conf_thres: float | None) -> dict[str, Any]:
        """The ``accuracy`` dict of a results.json row."""
        keys = ("top1", "top5") if self.task == "classification" else ("map", "map50", "map75", "ar100")
        acc = {"task": self.task, "metric": self.headline, "value": self.metrics.get(self.headline)}
        acc.update({k: self.metrics.get(k) for k in keys})
        acc.update(
            images=self.metrics.get("images"),
            data=data.get("path"),
            reference=self.reference,
            delta=self.delta.get(self.headline),
        )
        if self.task == "detection":
            acc.update(
                detections=self.metrics.get("detections"), conf_thres=conf_thres, delta_map50=self.delta.get("map50")
            )
        return acc

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "backend": self.backend,
            "path": self.path,
            "artifact_precision": self.artifact_precision,
            "precision": self.precision,
            "intended_for": self.intended_for,
            "task": self.task,
            "metrics": self.metrics,
            "reference": self.reference,
            "delta": self.delta,
            "batch": self.batch,
            "load_s": self.load_s,
            "median_ms": float(np.median(self.samples_ms)) if self.samples_ms else None,
            "size_bytes": self.size_bytes,
            "notes": self.notes,
        }


@dataclass
class EvalReport:
    target: dict[str, Any]
    data: dict[str, Any]
    task: str
    input_spec: dict[str, Any]
    results: list[EvalResult]
    mapping: dict[str, Any] | None = None
    conf_thres: float | None = None
    postprocess: dict[str, Any] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        from edgecv.version import __version__

        return {
            "schema": EVAL_SCHEMA,
            "created": self.created,
            "edgecv_version": __version__,
            "target": self.target,
            "data": self.data,
            "task": self.task,
            "input_spec": self.input_spec,
            "category_mapping": self.mapping,
            "conf_thres": self.conf_thres,
            "postprocess": self.postprocess,
            "results": [{**r.to_dict(), "accuracy": r.accuracy(self.data, self.conf_thres)} for r in self.results],
            "skipped": self.skipped,
            "warnings": self.warnings,
        }

    def results_document(self) -> dict[str, Any]:
        """An ``edgecv.results/1`` document: the latency is what the eval loop timed per call."""
        from edgecv.runfolder import RESULTS_SCHEMA
        from edgecv.runtime.stats import LatencyStats
        from edgecv.runtime.timing import BenchResult
        from edgecv.sysinfo import backend_versions, machine_info
        from edgecv.version import __version__

        rows = []
        for r in self.results:
            timed = r.samples_ms[WARMUP_CALLS:] if len(r.samples_ms) > 2 * WARMUP_CALLS else r.samples_ms
            if not timed:
                continue
            stats = LatencyStats.from_ns([int(s * 1e6) for s in timed])
            row = BenchResult(
                artifact=r.artifact,
                backend=r.backend,
                scenario="single-stream",
                batch=r.batch,
                latency=stats,
                throughput_ips=1000.0 * r.batch / stats.mean_ms if stats.mean_ms > 0 else None,
                samples_ms=timed,
                warmup=len(r.samples_ms) - len(timed),
                path=r.path,
                precision=r.precision,
                artifact_precision=r.artifact_precision,
                intended_for=r.intended_for,
                load_s=r.load_s,
                size_bytes=r.size_bytes,
                fidelity=dict(r.record.get("fidelity") or {}),
                notes=[
                    "latency: timed per call during `edgecv eval` on real images (no dedicated benchmark loop)",
                    *r.notes,
                ],
            ).to_dict()
            rows.append({**row, "accuracy": r.accuracy(self.data, self.conf_thres)})
        return {
            "schema": RESULTS_SCHEMA,
            "created": self.created,
            "edgecv_version": __version__,
            "target": self.target,
            "settings": {
                "scenario": "single-stream",
                "warmup": WARMUP_CALLS,
                "iterations": max((len(r["samples_ms"]) for r in rows), default=0),
                "duration": None,
                "isolation": "in-process, timed during edgecv eval",
                "source": "edgecv eval",
            },
            "machine": machine_info(),
            "versions": backend_versions(),
            "results": rows,
            "skipped": self.skipped,
        }


def record_eval(run_dir: Path, report: EvalReport) -> Path | None:
    """Keep the figures in ``<run>/eval.json`` (rows of the same data set merge by artifact), so a
    later ``edgecv benchmark --report`` shows them. Each row keeps the digest of the bytes it scored:
    once a re-export changes or removes its artifact, the row no longer counts."""
    path = run_dir / EVAL_FILE
    entries: dict[str, Any] = {}
    scored: dict[str, Any] = {}
    try:
        old = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        old = None
    if (
        isinstance(old, dict)
        and old.get("schema") == EVAL_SCHEMA
        and (old.get("data") or {}).get("path") == report.data.get("path")
    ):
        entries = scored_accuracy(run_dir)
        scored = {label: old["scored"][label] for label in entries}
    for r in report.results:
        rel = r.record.get("path")
        digest = disk_digest(run_dir, rel) if rel else None
        if digest is not None:
            entries[r.artifact] = r.accuracy(report.data, report.conf_thres)
            scored[r.artifact] = {"path": rel, "digest": digest}
    try:
        write_json_atomic(
            path,
            {
                "schema": EVAL_SCHEMA,
                "created": report.created,
                "data": report.data,
                "accuracy": entries,
                "scored": scored,
            },
        )
    except OSError as exc:
        warnings.warn(f"could not record the figures in {path}: {exc}", stacklevel=2)
        return None
    return path


def attach_accuracy(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the ``accuracy`` recorded by ``edgecv eval`` to the rows of a benchmark results document
    whose target is (or is inside) a run folder. Returns ``doc``."""
    target = Path(str((doc.get("target") or {}).get("path", "")))
    candidates = [target] + list(target.resolve().parents)[:2] if target.exists() else []
    for folder in candidates:
        path = folder / EVAL_FILE
        if folder.is_dir() and path.is_file():
            table = scored_accuracy(folder)  # only rows of the artifacts as the run folder holds them now
            for row in doc.get("results", []):
                if row.get("artifact") in table and not row.get("accuracy"):
                    row["accuracy"] = table[row["artifact"]]
            return doc
    return doc


def merge_into_results(doc: dict[str, Any], report: EvalReport) -> dict[str, Any]:
    """Put ``report``'s accuracy on the rows of an existing results document with the same
    artifact labels; rows only eval timed are added."""
    by_label = {r.artifact: r for r in report.results}
    seen = set()
    for row in doc.get("results", []):
        r = by_label.get(row.get("artifact"))
        if r is not None:
            row["accuracy"] = r.accuracy(report.data, report.conf_thres)
            seen.add(r.artifact)
    fresh = report.results_document()
    doc["results"] += [row for row in fresh["results"] if row["artifact"] not in seen]
    from edgecv.report.recommend import refresh_recommendation

    return refresh_recommendation(doc)  # the accuracy it was picked without is here now


def write_eval_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path]:
    """``results.json`` (merged into one a benchmark already wrote there), ``report.md``,
    ``report.html`` and ``eval.json`` in ``out_dir``."""
    from edgecv.report import read_results, write_report

    out = Path(out_dir).expanduser()
    existing = out / RESULTS_FILE
    doc = None
    if existing.is_file():
        try:
            doc = merge_into_results(read_results(existing), report)
        except ArtifactError:
            doc = None
    if doc is None:
        doc = report.results_document()
    written = write_report(doc, out)
    try:
        write_json_atomic(out / EVAL_FILE, report.to_dict())
    except OSError as exc:
        raise OutputPathError(f"cannot write {out / EVAL_FILE}: {exc.strerror or exc}") from None
    written[EVAL_FILE] = out / EVAL_FILE
    return written


def save_predictions(report: EvalReport, path: str | Path) -> list[Path]:
    """The COCO results JSON that was scored (one file per artifact: ``<stem>.<artifact>.json``
    when there are several)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(f"--save-predictions {path} is a folder; give a file name")
    if report.task != "detection":
        raise InvalidOptionError("--save-predictions writes COCO detection results; this is a classifier")
    written = []
    for r in report.results:
        target = (
            path if len(report.results) == 1 else path.with_name(f"{path.stem}.{r.artifact}{path.suffix or '.json'}")
        )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(r.predictions) + "\n")
        except OSError as exc:
            raise OutputPathError(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append(target)
    return written
