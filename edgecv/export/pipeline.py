"""``edgecv.export``: run the registered stages into a run folder and write its manifest.

Stages are reused when the manifest of an earlier run in the same folder holds the same key and the
files it lists still have the recorded hashes; ``force=True`` rebuilds everything.
"""

from __future__ import annotations

import datetime as _dt
import functools
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

from edgecv import __version__
from edgecv.errors import EdgecvError, InvalidOptionError, StageError, WeightsError
from edgecv.models.spec import InputSpec

from .manifest import MANIFEST_NAME, SCHEMA, ArtifactRecord, read_manifest
from .options import ExportOptions, default_run_name
from .reference import VerificationInputs, torch_outputs, verification_inputs
from .runfolder import file_record, prepare_run_dir, sha256_file, sha256_json, write_json_atomic
from .stages import STAGES, Stage


class Reporter:
    """Receives progress; the CLI renders it with rich, the library default stays quiet but
    still surfaces warnings through :mod:`warnings`."""

    def stage_start(self, stage: Stage) -> None: ...

    def stage_end(self, stage: Stage, status: str, wall_s: float, info: dict[str, Any]) -> None: ...

    def warn(self, message: str, category: type[Warning] = UserWarning) -> None:
        warnings.warn(message, category, stacklevel=3)

    def progress(self, description: str, completed: int, total: int | None) -> None: ...


class RandomWeightsWarning(UserWarning):
    """No --weights: the engine runs, but its outputs mean nothing. Fine for timing only."""


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
    stage_info: dict[str, dict[str, Any]] = field(default_factory=dict)

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
            self._inputs = verification_inputs(
                self.spec, batch=o.batch, dynamic_batch=o.dynamic_batch, seed=o.seed
            )
        return self._inputs

    def calibration_data(self):
        if self._calibration is None:
            from edgecv.calibration.data import load_calibration

            o = self.options
            # Calibration and hold-out sets use the export's batch-1 preprocessing.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._calibration = load_calibration(o.calib, replace(self.spec, batch=1), size=o.calib_size, seed=o.seed)
            for message in self._calibration.report.warnings:
                self.reporter.warn(message)
        return self._calibration

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
                    "verification": _headline(a.get("verification")),
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
        "timings_s": info.get("timings_s", {}),
        "peak_rss_mb": info.get("peak_rss_mb"),
        "report": str(run_dir / "calibration" / "report.json"),
    }


def _artifact_size(files: dict[str, Any], rel: str) -> int | None:
    """Bytes of an artifact, with OpenVINO's weights (.bin) counted next to its .xml."""
    sizes = [files.get(r, {}).get("size_bytes") for r in (rel, str(Path(rel).with_suffix(".bin")))]
    known = [s for s in sizes if s is not None]
    return sum(known) if known else None


def _headline(verification: dict | None) -> dict | None:
    if not verification or not verification.get("outputs"):
        return None
    outs = verification["outputs"]
    return {
        "passed": verification.get("passed"),
        "max_abs": max(o["max_abs"] for o in outs),
        "cosine": min(o["cosine"] for o in outs),
        "top1_agreement": min((o["top1_agreement"] for o in outs if o["top1_agreement"] is not None), default=None),
    }


def _versions() -> dict[str, Any]:
    from edgecv.sysinfo import backend_versions

    return backend_versions()


def _machine() -> dict[str, Any]:
    from edgecv.sysinfo import machine_info, openvino_default_precision

    info = machine_info()
    info["openvino_default_precision"] = openvino_default_precision()
    return info


def _resolve_model(model: str | nn.Module, options: ExportOptions, input_spec: InputSpec | None):
    """Returns (model_info for the manifest, spec, factory building the nn.Module, run name)."""
    if isinstance(model, nn.Module):
        spec = input_spec or getattr(model, "input_spec", None)
        if spec is None:
            raise InvalidOptionError("exporting your own nn.Module needs an input_spec (edgecv.models.InputSpec)")
        if options.batch != 1:
            spec = replace(spec, batch=options.batch)
        name = getattr(model, "model_name", None) or type(model).__name__.lower()
        info = {"name": name, "custom": True, "class": f"{type(model).__module__}.{type(model).__qualname__}",
                "random_weights": None, "state_sha256": _state_hash(model)}
        run = f"{name}-r{spec.height}x{spec.width}"
        return info, spec, (lambda: model.eval()), run

    from edgecv.models.registry import create_model, get_entry, validate_options

    entry = get_entry(model)
    width = entry.default_width_mult if options.width_mult is None else options.width_mult
    resolution = entry.default_resolution if options.resolution is None else options.resolution
    variant = {**entry.default_variant_options, **options.variant}
    validate_options(entry, options.num_classes, width, resolution, variant)
    weights = None
    weights_sha = None
    if options.weights is not None:
        wpath = Path(options.weights).expanduser()
        if not wpath.is_file():
            raise WeightsError(f"weights file {wpath} does not exist" if not wpath.exists() else f"weights path {wpath} is not a file")
        weights, weights_sha = str(wpath.resolve()), sha256_file(wpath)
    factory = functools.partial(
        create_model, entry.name, num_classes=options.num_classes, width_mult=width,
        resolution=resolution, weights=weights, **variant,
    )
    # Build once now: bad weights must fail before anything is written.
    built = factory()
    spec = built.input_spec if options.batch == 1 else replace(built.input_spec, batch=options.batch)
    info = {
        "name": entry.name, "num_classes": options.num_classes, "width_mult": float(width),
        "resolution": resolution, **variant, "weights": weights, "weights_sha256": weights_sha,
        "random_weights": weights is None,
    }
    return info, spec, (lambda: built), default_run_name(entry.name, float(width), resolution, variant)


def _state_hash(model: nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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
    **options: Any,
) -> ExportResult:
    """Export a zoo model (by name) or your own ``nn.Module`` (with ``input_spec``) into a run folder.

    Options are the fields of :class:`ExportOptions` (``width_mult``, ``resolution``, ``int8``, …).
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
    reporter = reporter or Reporter()
    model_info, spec, factory, run_name = _resolve_model(model, opts, input_spec)
    if "tensorrt" in opts.backends:
        from .tensorrt import require_tensorrt

        require_tensorrt()
    early_warnings = []
    if model_info.get("random_weights"):
        early_warnings.append("no --weights given: the model has random weights; its engines are for timing only")
        reporter.warn(early_warnings[-1], RandomWeightsWarning)
    ctx = ExportContext(
        run_dir=Path(out) if out is not None else Path(runs_root) / run_name, options=opts, spec=spec,
        model_info=model_info, versions=_versions(), machine=_machine(), reporter=reporter, _model_factory=factory,
    )
    if opts.int8:
        # Bad calibration data is the user's to fix: refuse it before the run folder is even made.
        ctx.calibration_data()
    run_dir = ctx.run_dir = prepare_run_dir(ctx.run_dir)

    prev = None
    if (run_dir / MANIFEST_NAME).exists():
        try:
            prev = read_manifest(run_dir)
        except EdgecvError:
            prev = None  # a corrupt manifest only means nothing can be reused
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
        "warnings": early_warnings,
    }
    chain: dict[str, str] = {}
    for stage in STAGES:
        if not stage.enabled(ctx):
            continue
        upstream = {name: chain.get(name) for name in stage.after}
        key = sha256_json({"stage": stage.name, "key": stage.key(ctx), "after": upstream, "edgecv": __version__})
        chain[stage.name] = key
        reporter.stage_start(stage)
        reused = _reusable(key, prev, stage, ctx)
        start = time.perf_counter()
        if reused is not None:
            info, status = reused.get("info", {}), "reused"
            wall = reused.get("wall_s", 0.0)
        else:
            try:
                info = stage.run(ctx)
            except EdgecvError:
                manifest["stages"][stage.name] = {"status": "failed", "key": key}
                write_json_atomic(run_dir / MANIFEST_NAME, manifest)
                raise
            except MemoryError as exc:
                raise StageError(stage.name, "out of memory") from exc
            status, wall = "done", time.perf_counter() - start
        ctx.stage_info[stage.name] = info
        for rel in stage.outputs(ctx):
            manifest["files"][rel] = file_record(run_dir, rel)
        for rec in stage.artifacts(ctx, info):
            manifest["artifacts"].append(rec.to_dict())
        manifest["warnings"].extend(info.get("warnings", []))
        if "calibration" in info:
            manifest["calibration"] = info["calibration"]
        manifest["stages"][stage.name] = {"status": status, "wall_s": round(wall, 3), "key": key, "info": info}
        # After every stage, so an interrupted export still records what finished.
        write_json_atomic(run_dir / MANIFEST_NAME, manifest)
        reporter.stage_end(stage, status, wall, info)
    return ExportResult(run_dir, manifest)
