"""``edgecv.export_model(...)``: run the export stages (the registered ones, or those passed in) into a run
folder and write its manifest.

Stages are reused when the manifest of an earlier run in the same folder holds the same key (the
stage's options and library versions, the upstream stages, edgecv's source) and the files it lists
still have the recorded hashes; ``force=True`` rebuilds everything.

A run folder holds exactly what its manifest lists. A re-export removes the earlier run's files it
does not reuse before it builds anything, so a failed, interrupted or killed export never leaves an
old artifact next to a manifest that no longer answers for it (files being written are listed as
``stale_files`` until done). One that would not make some of the earlier files again (fewer
backends, no INT8) refuses unless ``force=True``. Files the manifest never listed are left alone.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from edgecv.errors import EdgecvError, InvalidOptionError, StageError
from edgecv.models.spec import InputSpec
from edgecv.runfolder import (
    INT8_REPORT_FILE,
    MANIFEST_NAME,
    SCHEMA,
    ArtifactRecord,
    prepare_run_dir,
    prune_eval,
    read_manifest,
    sha256_file,
    sha256_json,
    verification_headline,
)
from edgecv.version import __version__

from .labels import class_names_for_export
from .ledger import Ledger, Step, refuse_to_drop, vouched
from .model_source import resolve_model
from .options import ExportOptions
from .reference import VerificationInputs, torch_outputs, verification_inputs
from .reporting import RandomWeightsWarning, Reporter, WarningLog
from .results import StageResult
from .stage import Stage, ordered_stages
from .stages import STAGES

R = TypeVar("R", bound=StageResult)


@dataclass
class ExportContext:
    run_dir: Path
    options: ExportOptions
    spec: InputSpec
    model_info: dict[str, Any]
    versions: dict[str, Any]
    machine: dict[str, Any]
    reporter: Reporter
    _model: nn.Module | None = None
    _model_factory: Any = None
    _inputs: VerificationInputs | None = None
    _reference: list | None = None
    _calibration: Any = None
    _validation: Any = None
    results: dict[str, StageResult] = field(default_factory=dict)  # by stage name, as they finish

    def result(self, kind: type[R]) -> R | None:
        """The result of the stage of this export that returns ``kind``; None when none ran."""
        return next((r for r in self.results.values() if type(r) is kind), None)

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            self._model = self._model_factory()
        return self._model

    def model_record(self) -> dict[str, Any]:
        return self.model_info

    def verification_inputs(self) -> VerificationInputs:
        if self._inputs is None:
            o = self.options
            self._inputs = verification_inputs(self.spec, batch=o.batch, dynamic_batch=o.dynamic_batch, seed=o.seed)
        return self._inputs

    def calibration_data(self):
        if self._calibration is None:
            from edgecv.calibration.data import load_calibration

            o = self.options
            # Calibration and hold-out sets use the export's batch-1 preprocessing.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._calibration = load_calibration(
                    o.calib, replace(self.spec, batch=1), size=o.calib_size, seed=o.seed
                )
            for message in self._calibration.report.warnings:
                self.reporter.warn(message)
        return self._calibration

    def accuracy_validation(self):
        """``--eval-data`` prepared for this model (:mod:`edgecv.evaluate.validation`); None
        without ``--max-accuracy-drop``. Data that does not fit the model is refused here."""
        if self._validation is None and self.options.max_accuracy_drop is not None:
            from edgecv.evaluate.validation import open_validation

            o = self.options
            batch = 1 if o.dynamic_batch else o.batch
            self._validation = open_validation(o.eval_data, self.spec, self.model_info, batch=batch)
        return self._validation

    def reference_outputs(self) -> list[dict]:
        if self._reference is None:
            self._reference = torch_outputs(self.model, self.spec, self.verification_inputs().batches)
        return self._reference


@dataclass
class ExportResult:
    run_dir: Path
    manifest: dict[str, Any]

    @property
    def artifacts(self) -> list[ArtifactRecord]:
        return [ArtifactRecord.from_dict(a) for a in self.manifest["artifacts"]]

    def path(self, name: str) -> Path:
        for a in self.artifacts:
            if a.name == name:
                return self.run_dir / a.path
        raise KeyError(f"no artifact named {name!r}; have {[a.name for a in self.artifacts]}")

    @property
    def paths(self) -> dict[str, Path]:
        return {a.name: self.run_dir / a.path for a in self.artifacts}

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "run_dir": str(self.run_dir),
            "model": m["model"],
            "stages": {k: {"status": v["status"], "wall_s": v.get("wall_s")} for k, v in m["stages"].items()},
            "artifacts": [
                {
                    "name": a["name"],
                    "path": str(self.run_dir / a["path"]),
                    "backend": a["backend"],
                    "precision": a["precision"],
                    "intended_for": a["intended_for"],
                    "size_bytes": _artifact_size(m["files"], a["path"]),
                    "verification": verification_headline(a.get("verification")),
                    "fidelity": a.get("fidelity") or None,
                }
                for a in m["artifacts"]
            ],
            "calibration": m.get("calibration"),
            "int8": _int8_summary(self.run_dir, m),
            "warnings": m.get("warnings", []),
        }


def _int8_summary(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    info = manifest.get("stages", {}).get("int8", {}).get("info")
    if not info:
        return None
    return {
        "method": info.get("method"),
        "excluded": info.get("excluded", []),
        "accuracy_budget": info.get("accuracy_budget"),
        "timings_s": info.get("timings_s", {}),
        "peak_rss_mb": info.get("peak_rss_mb"),
        "report": str(run_dir / INT8_REPORT_FILE),
    }


def _artifact_size(files: dict[str, Any], rel: str) -> int | None:
    """Bytes of an artifact, with OpenVINO's weights (.bin) counted next to its .xml."""
    sizes = [files.get(r, {}).get("size_bytes") for r in (rel, str(Path(rel).with_suffix(".bin")))]
    known = [s for s in sizes if s is not None]
    return sum(known) if known else None


def _versions() -> dict[str, Any]:
    from edgecv.sysinfo import backend_versions

    return backend_versions()


def _machine() -> dict[str, Any]:
    from edgecv.sysinfo import machine_info, openvino_default_precision

    info = machine_info()
    info["openvino_default_precision"] = openvino_default_precision()
    return info


@functools.lru_cache(maxsize=1)
def _edgecv_build() -> dict[str, str]:
    """edgecv's version and a digest of its source: an install from a branch keeps its version
    between commits, and a stage reused across a change of, say, the quantizer would be stale. (The
    libraries' versions are in the keys of the stages that call them.)"""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return {"version": __version__, "source": digest.hexdigest()}


def _reusable(stage_key: str, prev: dict[str, Any] | None, stage: Stage, ctx: ExportContext) -> dict | None:
    if not prev or ctx.options.force:
        return None
    rec = prev.get("stages", {}).get(stage.name)
    if not rec or rec.get("key") != stage_key or rec.get("status") not in ("done", "reused"):
        return None
    for rel in stage.outputs(ctx):
        p = ctx.run_dir / rel
        recorded = prev.get("files", {}).get(rel)
        if not p.is_file() or not recorded or recorded["size_bytes"] != p.stat().st_size:
            return None
        if sha256_file(p) != recorded["sha256"]:
            return None
    return rec


def export(
    model: str | nn.Module,
    out: str | Path | None = None,
    *,
    input_spec: InputSpec | None = None,
    reporter: Reporter | None = None,
    runs_root: str | Path = "runs",
    stages: list[Stage] | None = None,
    **options: Any,
) -> ExportResult:
    """Export a zoo model (by name) or your own ``nn.Module`` (with ``input_spec``) into a run folder.

    Options are the fields of :class:`ExportOptions` (``width_mult``, ``resolution``, ``int8``, …).
    ``stages``: the stages to run instead of the registered ones (:data:`edgecv.export.stages.STAGES`).
    Returns an :class:`ExportResult` with the artifact paths and figures.
    """
    unknown = set(options) - set(ExportOptions.__dataclass_fields__)
    if unknown:
        raise InvalidOptionError(f"unknown export option(s): {', '.join(sorted(unknown))}")
    if "backends" in options:
        options["backends"] = tuple(dict.fromkeys(("onnxruntime", *options["backends"])))
    if "exclude" in options:
        options["exclude"] = tuple(options["exclude"])
    opts = ExportOptions(**options)
    opts.validate()
    log = WarningLog(reporter or Reporter())
    with log.capture():
        return _export(
            model, out, input_spec, log, runs_root, opts, ordered_stages(STAGES if stages is None else stages)
        )


def _export(
    model: str | nn.Module,
    out: str | Path | None,
    input_spec: InputSpec | None,
    reporter: WarningLog,
    runs_root: str | Path,
    opts: ExportOptions,
    stages: list[Stage],
) -> ExportResult:
    model_info, spec, factory, run_name = resolve_model(model, opts, input_spec)
    names = class_names_for_export(opts, model_info, reporter.warn)
    if names is not None:
        model_info["class_names"] = names
    if "tensorrt" in opts.backends:
        from edgecv.tensorrt.build import require_tensorrt

        require_tensorrt()
    if model_info.get("random_weights"):
        reporter.warn(
            "no --weights given: the model has random weights; its engines are for timing only", RandomWeightsWarning
        )
    ctx = ExportContext(
        run_dir=Path(out) if out is not None else Path(runs_root) / run_name,
        options=opts,
        spec=spec,
        model_info=model_info,
        versions=_versions(),
        machine=_machine(),
        reporter=reporter,
        _model_factory=factory,
    )
    if opts.int8:
        # Bad calibration data is the user's to fix: refuse it before the run folder is even made.
        ctx.calibration_data()
        ctx.accuracy_validation()
    if model_info.get("custom"):
        # Your own module: outputs it returns but does not declare are refused before anything is written.
        ctx.reference_outputs()
    run_dir = ctx.run_dir = prepare_run_dir(ctx.run_dir)

    prev = _previous_manifest(run_dir)
    steps = _plan(ctx, prev, stages)
    refuse_to_drop(run_dir, prev, steps, ctx)
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgecv_version": __version__,
        "model": model_info,
        "options": opts.to_dict(),
        "input_spec": spec.to_dict(),
        "versions": ctx.versions,
        "machine": ctx.machine,
        "stages": {},
        "artifacts": [],
        "files": {},
        "calibration": None,
        "warnings": reporter.messages,
        "caches": [],
        "stale_files": [],
    }
    ledger = Ledger(run_dir, manifest, steps, ctx)
    for step in steps:
        if step.reused is not None:
            result = ctx.results[step.stage.name] = step.stage.result.from_info(step.reused.get("info", {}))
            ledger.record(step, "reused", result, step.reused.get("wall_s", 0.0))
    # Before anything is built, the earlier run's files this one does not reuse go (its eval figures
    # with them): whatever stops this export, the folder never holds a file its manifest does not list.
    ledger.pending |= vouched(prev)
    ledger.clean()
    prune_eval(run_dir, manifest)

    for step in steps:
        stage = step.stage
        reporter.stage_start(stage)
        if step.reused is not None:
            result = ctx.results[stage.name]
            reporter.record(result.warnings)
            reporter.stage_end(stage, "reused", step.reused.get("wall_s", 0.0), result.to_info())
            continue
        result, wall = _run_stage(ctx, step, ledger)
        for message in result.warnings:
            reporter.warn(message)  # once each: what the stage already reported is not repeated
        reporter.stage_end(stage, "done", wall, result.to_info())
    return ExportResult(run_dir, manifest)


def _previous_manifest(run_dir: Path) -> dict[str, Any] | None:
    if not (run_dir / MANIFEST_NAME).exists():
        return None
    try:
        return read_manifest(run_dir)
    except EdgecvError:
        return None  # a corrupt manifest only means nothing can be reused


def _plan(ctx: ExportContext, prev: dict[str, Any] | None, stages: list[Stage]) -> list[Step]:
    """The enabled stages in order, each with its key and whether the earlier run's result is reused:
    all known before anything is written, so a refused export changes nothing."""
    steps: list[Step] = []
    chain: dict[str, str] = {}
    for stage in stages:
        if not stage.enabled(ctx):
            continue
        upstream = {name: chain.get(name) for name in stage.after}
        key = sha256_json({"stage": stage.name, "key": stage.key(ctx), "after": upstream, "edgecv": _edgecv_build()})
        chain[stage.name] = key
        steps.append(Step(stage, key, _reusable(key, prev, stage, ctx)))
    return steps


def _run_stage(ctx: ExportContext, step: Step, ledger: Ledger) -> tuple[StageResult, float]:
    stage = step.stage
    # Listed as stale while the stage runs: if it is killed after renaming a file into place, the
    # next export still knows that file is not vouched for.
    ledger.pending |= {*stage.outputs(ctx), *stage.caches(ctx)}
    ledger.save()
    start = time.perf_counter()
    try:
        result = stage.run(ctx)
    except BaseException as exc:
        if isinstance(exc, (EdgecvError, MemoryError)):
            ledger.fail(step)
        ledger.clean()  # a stage that wrote some of its files and failed leaves none of them
        if isinstance(exc, MemoryError):
            raise StageError(stage.name, "out of memory") from exc
        raise
    wall = time.perf_counter() - start
    ctx.results[stage.name] = result
    ledger.record(step, "done", result, wall)
    ledger.save()  # after every stage, so an interrupted export still records what finished
    return result, wall
