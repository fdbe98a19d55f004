"""``edgecv.export``: run the registered stages into a run folder and write its manifest.

Stages are reused when the manifest of an earlier run in the same folder holds the same key (the
stage's options and library versions, the upstream stages, edgecv's source) and the files it lists
still have the recorded hashes; ``force=True`` rebuilds everything.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from edgecv import __version__
from edgecv.errors import EdgecvError, InvalidOptionError, StageError, WeightsError
from edgecv.models.spec import InputSpec
from edgecv.runfolder import (
    MANIFEST_NAME,
    SCHEMA,
    ArtifactRecord,
    file_record,
    prepare_run_dir,
    read_manifest,
    sha256_file,
    sha256_json,
    verification_headline,
    write_json_atomic,
)

from .options import ExportOptions, batch_suffix, default_run_name
from .reference import VerificationInputs, torch_outputs, verification_inputs
from .stages import Stage, ordered_stages


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


def _edgecv_warning(category: type[Warning]) -> bool:
    return category.__module__.split(".", 1)[0] == "edgecv"


class _WarningLog(Reporter):
    """Wraps the caller's reporter for one export: every edgecv warning, whether a stage reports it or
    library code raises it with :func:`warnings.warn` (the checkpoint's head re-initialised, small
    calibration sets), reaches the reporter once and the manifest's ``warnings``."""

    def __init__(self, reporter: Reporter):
        self.inner = reporter
        self.messages: list[str] = []
        self._forwarding = False

    def stage_start(self, stage: Stage) -> None:
        self.inner.stage_start(stage)

    def stage_end(self, stage: Stage, status: str, wall_s: float, info: dict[str, Any]) -> None:
        self.inner.stage_end(stage, status, wall_s, info)

    def progress(self, description: str, completed: int, total: int | None) -> None:
        self.inner.progress(description, completed, total)

    def warn(self, message: str, category: type[Warning] = UserWarning) -> None:
        if message in self.messages:
            return
        self.messages.append(message)
        self._forwarding = True
        try:
            self.inner.warn(message, category)
        finally:
            self._forwarding = False

    def record(self, messages: list[str]) -> None:
        """Messages already shown (a reused stage's) that the manifest must still list."""
        self.messages.extend(m for m in messages if m not in self.messages)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        # The caller's filters still decide what is shown at all (entering catch_warnings resets the
        # "once per location" registries, so each export reports its warnings afresh).
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def route(message, category, filename, lineno, file=None, line=None):
                if self._forwarding or not _edgecv_warning(category):
                    shown(message, category, filename, lineno, file, line)
                else:
                    self.warn(str(message), category)

            warnings.showwarning = route
            yield


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
        "timings_s": info.get("timings_s", {}),
        "peak_rss_mb": info.get("peak_rss_mb"),
        "report": str(run_dir / "calibration" / "report.json"),
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


def _resolve_model(model: str | nn.Module, options: ExportOptions, input_spec: InputSpec | None):
    """Returns (model_info for the manifest, spec, factory building the nn.Module, run name)."""
    if isinstance(model, nn.Module):
        spec = input_spec or getattr(model, "input_spec", None)
        if spec is None:
            raise InvalidOptionError("exporting your own nn.Module needs an input_spec (edgecv.models.InputSpec)")
        if options.batch != 1:
            spec = replace(spec, batch=options.batch)
        name = getattr(model, "model_name", None) or type(model).__name__.lower()
        info = {
            "name": name,
            "custom": True,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "task": spec.task,
            "random_weights": None,
            "state_sha256": _state_hash(model),
        }
        if spec.task == "detection":
            # What eval, predict and the INT8 stage need to read the detector's outputs.
            post = getattr(model, "detection_options", None)
            info["postprocess"] = post.to_dict() if post is not None else None
            info["background_class"] = getattr(model, "background_class", None)
            info["float_scopes"] = list(getattr(model, "float_scopes", ()))
            info["num_classes"] = getattr(model, "num_classes", None)
        run = f"{name}-r{spec.height}x{spec.width}{batch_suffix(options.batch, options.dynamic_batch)}"
        return info, spec, (lambda: model.eval()), run

    from edgecv.models.registry import (
        apply_alias,
        check_resolution,
        create_model,
        get_entry,
        validate_options,
    )

    entry = get_entry(model)
    alias_width, alias_variant = apply_alias(model, options.width_mult, options.variant)
    width = entry.default_width_mult if alias_width is None else alias_width
    resolution = entry.default_resolution if options.resolution is None else options.resolution
    num_classes = entry.default_num_classes if options.num_classes is None else options.num_classes
    variant = {**entry.default_variant_options, **alias_variant}
    validate_options(entry, num_classes, width, resolution, variant)
    resolution = check_resolution(resolution, entry)
    postprocess = None
    if entry.task == "detection":
        postprocess = options.detection_options()
        if postprocess.nms and options.exporter == "dynamo":
            raise InvalidOptionError(
                "the dynamo exporter cannot export NMS (pytorch issue 141568); use --exporter torchscript "
                "(the default) or --no-nms"
            )
    elif options.detection_flags_set():
        raise InvalidOptionError(
            f"{entry.name} is a {entry.task} model: --conf-thres, --iou-thres, --max-det, --no-nms and "
            "--agnostic-nms apply to detectors only"
        )
    weights = None
    weights_sha = None
    if options.weights is not None:
        wpath = Path(options.weights).expanduser()
        if not wpath.is_file():
            raise WeightsError(
                f"weights file {wpath} does not exist" if not wpath.exists() else f"weights path {wpath} is not a file"
            )
        weights, weights_sha = str(wpath.resolve()), sha256_file(wpath)
    factory = functools.partial(
        create_model,
        entry.name,
        num_classes=num_classes,
        width_mult=width,
        resolution=resolution,
        weights=weights,
        postprocess=postprocess,
        **variant,
    )
    # Build once now: bad weights must fail before anything is written.
    built = factory()
    spec = built.input_spec if options.batch == 1 else replace(built.input_spec, batch=options.batch)
    info = {
        "name": entry.name,
        "task": entry.task,
        "num_classes": num_classes,
        "width_mult": float(width),
        "resolution": built.model_config["resolution"],
        **variant,
        "weights": weights,
        "weights_sha256": weights_sha,
        "random_weights": weights is None,
    }
    if postprocess is not None:
        info["postprocess"] = built.detection_options.to_dict()
        info["background_class"] = built.background_class
        info["float_scopes"] = list(built.float_scopes)
    run = default_run_name(entry.name, float(width), resolution, variant, options.batch, options.dynamic_batch)
    return info, spec, (lambda: built), run


def _stamp_artifacts(ctx: ExportContext, stage: Stage, info: dict[str, Any]) -> None:
    """Write task, input spec, model record and precision into each new artifact (before its hash is
    recorded), so a file copied out of the run folder still knows how to be fed and read."""
    from edgecv.artifact_metadata import build_metadata, stamp

    for rec in stage.artifacts(ctx, info):
        meta = build_metadata(
            ctx.spec,
            model=ctx.model_info,
            precision=rec.precision,
            intended_for=rec.intended_for,
            version=__version__,
            target_cpu=rec.extra.get("target_cpu", ""),
        )
        stamp(ctx.run_dir / rec.path, meta)


def _state_hash(model: nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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
    log = _WarningLog(reporter or Reporter())
    with log.capture():
        return _export(model, out, input_spec, log, runs_root, opts)


def _export(
    model: str | nn.Module,
    out: str | Path | None,
    input_spec: InputSpec | None,
    reporter: _WarningLog,
    runs_root: str | Path,
    opts: ExportOptions,
) -> ExportResult:
    model_info, spec, factory, run_name = _resolve_model(model, opts, input_spec)
    if "tensorrt" in opts.backends:
        from .tensorrt import require_tensorrt

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
    if model_info.get("custom"):
        # Your own module: outputs it returns but does not declare are refused before anything is written.
        ctx.reference_outputs()
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
        "warnings": reporter.messages,
        "caches": [],
        "stale_files": [],
    }
    vouched = _vouched(prev)

    def save() -> None:
        # Until this run finishes, the earlier run's files it has not replaced stay listed as stale, so
        # an interrupted re-export still knows to remove them next time.
        kept = set(manifest["files"]) | set(manifest["caches"])
        manifest["stale_files"] = sorted(vouched - kept)
        write_json_atomic(run_dir / MANIFEST_NAME, manifest)

    chain: dict[str, str] = {}
    for stage in ordered_stages():
        if not stage.enabled(ctx):
            continue
        upstream = {name: chain.get(name) for name in stage.after}
        key = sha256_json({"stage": stage.name, "key": stage.key(ctx), "after": upstream, "edgecv": _edgecv_build()})
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
                save()
                raise
            except MemoryError as exc:
                raise StageError(stage.name, "out of memory") from exc
            status, wall = "done", time.perf_counter() - start
            _stamp_artifacts(ctx, stage, info)
        ctx.stage_info[stage.name] = info
        for rel in stage.outputs(ctx):
            manifest["files"][rel] = file_record(run_dir, rel)
        for rec in stage.artifacts(ctx, info):
            manifest["artifacts"].append(rec.to_dict())
        if status == "done":
            for message in info.get("warnings", []):
                reporter.warn(message)  # once each: what the stage already reported is not repeated
        else:
            reporter.record(info.get("warnings", []))
        if "calibration" in info:
            manifest["calibration"] = info["calibration"]
        cache = (info.get("ranges") or {}).get("cache")
        if cache:  # the activation-range cache and the key file that vouches for it
            manifest["caches"] += [cache, Path(cache).with_suffix(".meta.json").as_posix()]
        manifest["stages"][stage.name] = {"status": status, "wall_s": round(wall, 3), "key": key, "info": info}
        # After every stage, so an interrupted export still records what finished.
        save()
        reporter.stage_end(stage, status, wall, info)
    # A run folder holds only what its manifest vouches for: what an earlier export with other options
    # wrote and this one did not goes (files the earlier manifest did not list are never touched).
    _remove_files(run_dir, manifest["stale_files"])
    vouched.clear()
    save()
    return ExportResult(run_dir, manifest)


def _vouched(prev: dict[str, Any] | None) -> set[str]:
    """Files an earlier manifest of this folder answers for: artifacts, caches, and the stale files
    an interrupted run had yet to remove."""
    if not prev:
        return set()
    listed = [*prev.get("files", {}), *prev.get("caches", []), *prev.get("stale_files", [])]
    return {rel for rel in listed if isinstance(rel, str)}


def _remove_files(run_dir: Path, rels: list[str]) -> None:
    root = run_dir.resolve()
    for rel in rels:
        path = run_dir / rel
        # A manifest is data: a path that leaves the folder (``..``, a link out) is never followed.
        if path.name == MANIFEST_NAME or path.is_symlink() or root not in path.resolve().parents:
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
        parent = path.parent
        while parent.resolve() != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
