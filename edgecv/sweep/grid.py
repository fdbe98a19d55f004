"""The grid of a sweep: lists of models, width multipliers, resolutions, precisions, engines and
thread counts (from flags or a small TOML file) → the points to export, evaluate and time.

A point is one model at one α, resolution and precision; its key names it in the sweep folder.
Points that differ only in precision share one export (one run folder holds FP32 and INT8), so
their export options are the union of what the group needs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from edgecv.errors import InvalidOptionError

from .point import EvalData, Point

PRECISIONS = ("fp32", "fp16", "int8")
# What a TOML grid may set: the list axes, the settings of the whole sweep, and [export] options.
GRID_KEYS = ("models", "width_mult", "resolution", "precision", "backend", "threads")
SETTING_KEYS = ("weights", "data", "images", "limit", "calib", "calib_size", "num_classes", "max_latency")
SETTING_KEYS += ("min_accuracy", "iterations", "warmup")


@dataclass
class GridSpec:
    """What the user asked for, before it is checked against the models."""

    models: list[str]
    width_mult: list[float | None] = field(default_factory=lambda: [None])
    resolution: list[Any] = field(default_factory=lambda: [None])
    precision: list[str] = field(default_factory=lambda: ["fp32"])
    backend: list[str] = field(default_factory=lambda: ["onnxruntime"])
    threads: list[int | None] = field(default_factory=lambda: [None])
    weights: str | None = None  # a path or a template: {model}, {width_mult}, {resolution}, {variant}
    num_classes: int | None = None
    calib: str | None = None
    calib_size: int | None = None
    export: dict[str, Any] = field(default_factory=dict)  # further ExportOptions fields


@dataclass
class SweepPlan:
    """Everything a sweep will do, decided before anything runs (executors only carry it out)."""

    points: list[Point]
    backends: tuple[str, ...]
    threads: tuple[int | None, ...]
    data: EvalData | None = None
    iterations: int | None = None
    warmup: int | None = None
    max_latency_ms: float | None = None
    min_accuracy: float | None = None

    def export_groups(self) -> dict[str, list[Point]]:
        """Points by the run folder they share (one export each), in grid order."""
        groups: dict[str, list[Point]] = {}
        for p in self.points:
            groups.setdefault(p.run_name, []).append(p)
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {
            "points": [p.key for p in self.points],
            "backends": list(self.backends),
            "threads": list(self.threads),
            "data": None if self.data is None else self.data.to_dict(),
            "iterations": self.iterations,
            "warmup": self.warmup,
            "max_latency_ms": self.max_latency_ms,
            "min_accuracy": self.min_accuracy,
        }


def split_values(text: str | Sequence[Any] | None, convert: Any, flag: str, expected: str) -> list[Any]:
    """``"0.5,0.75"`` (or a TOML list) → converted values, each a one-line error when it is not."""
    if text is None:
        return []
    items = [x.strip() for x in text.split(",") if x.strip()] if isinstance(text, str) else list(text)
    out = []
    for item in items:
        try:
            out.append(convert(item))
        except (TypeError, ValueError):
            raise InvalidOptionError(f"{flag} takes {expected} separated by commas, got {item!r}") from None
    return list(dict.fromkeys(out))


def parse_latency(text: str | float | int | None) -> float | None:
    """``10ms``, ``10``, ``2.5 ms`` or ``0.01s`` → milliseconds."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|us|µs)?\s*", str(text))
        if not m:
            raise InvalidOptionError(f"--max-latency takes a time such as 10ms, got {text!r}")
        value = float(m.group(1)) * {"ms": 1.0, None: 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}[m.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise InvalidOptionError(f"--max-latency must be a time > 0, got {text!r}")
    return value


def positive_threads(value: Any) -> int:
    n = int(value)
    if n < 1:
        raise ValueError(value)
    return n


def read_grid_toml(path: str | Path) -> dict[str, Any]:
    """A TOML grid: the list axes and sweep settings at top level, ExportOptions under [export]."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidOptionError(f"--grid {path}: no such file")
    try:
        doc = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f"--grid {path}: not valid TOML ({exc})") from None
    unknown = set(doc) - set(GRID_KEYS) - set(SETTING_KEYS) - {"export"}
    if unknown:
        known = ", ".join((*GRID_KEYS, *SETTING_KEYS, "[export]"))
        raise InvalidOptionError(f"--grid {path}: unknown key(s) {', '.join(sorted(unknown))} (known: {known})")
    if "export" in doc and not isinstance(doc["export"], dict):
        raise InvalidOptionError(f"--grid {path}: [export] must be a table of export options")
    return doc


def _weights_for(template: str | None, values: dict[str, Any]) -> str | None:
    """The point's weights file, or None when the template names no file for it (timing only)."""
    if template is None:
        return None
    try:
        path = Path(template.format(**values)).expanduser()
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidOptionError(
            f"--weights {template!r}: unknown field {exc}; use {{model}}, {{width_mult}}, {{resolution}}, {{variant}}"
        ) from None
    return str(path) if path.is_file() else None


def build_points(spec: GridSpec) -> list[Point]:
    """Every combination, checked against each model (a value a model does not take is an error
    before anything runs), with the export options of each run-folder group made equal."""
    from edgecv.export.options import BACKENDS, ExportOptions, default_run_name, format_width
    from edgecv.models.registry import resolve_options
    from edgecv.models.spec import format_resolution

    bad = [p for p in spec.precision if p not in PRECISIONS]
    if bad:
        raise InvalidOptionError(f"--precision takes {', '.join(PRECISIONS)}, got {', '.join(bad)}")
    unknown = [b for b in spec.backend if b not in BACKENDS]
    if unknown:
        raise InvalidOptionError(f"unknown backend {', '.join(unknown)} (choose from {', '.join(BACKENDS)})")
    extra = set(spec.export) - set(ExportOptions.__dataclass_fields__)
    if extra:
        raise InvalidOptionError(f"unknown export option(s): {', '.join(sorted(extra))}")
    points: list[Point] = []
    for model in spec.models:
        for wm in spec.width_mult:
            for res in spec.resolution:
                opts = resolve_options(model, num_classes=spec.num_classes, width_mult=wm, resolution=res)
                name = opts.entry.name
                run_name = default_run_name(name, opts.width_mult, opts.resolution, opts.variant)
                variant = "-".join(str(v) for _, v in sorted(opts.variant.items()))
                template_values = {
                    "model": name,
                    "width_mult": format_width(opts.width_mult),
                    "resolution": format_resolution(opts.resolution),
                    "variant": variant,
                }
                weights = _weights_for(spec.weights, template_values)
                for precision in spec.precision:
                    points.append(
                        Point(
                            key=f"{run_name}-{precision}",
                            model=name,
                            width_mult=opts.width_mult,
                            resolution=opts.resolution,
                            variant=dict(opts.variant),
                            precision=precision,
                            num_classes=opts.num_classes,
                            weights=weights,
                            run_name=run_name,
                            task=opts.entry.task,
                        )
                    )
    if not points:
        raise InvalidOptionError("the grid is empty: name at least one model")
    if spec.weights is not None and all(p.weights is None for p in points):
        # Some points without a file are timed only; none with one is a wrong path, not a plan.
        raise InvalidOptionError(f"--weights {spec.weights}: no such file for any point of the grid")
    _fill_export_options(points, spec)
    return points


def _fill_export_options(points: Iterable[Point], spec: GridSpec) -> None:
    from edgecv.export.options import ExportOptions

    groups: dict[str, list[Point]] = {}
    for p in points:
        groups.setdefault(p.run_name, []).append(p)
    for group in groups.values():
        precisions = {p.precision for p in group}
        first = group[0]
        options: dict[str, Any] = {
            **spec.export,
            "width_mult": first.width_mult,
            "resolution": first.resolution,
            "num_classes": first.num_classes,
            "variant": dict(first.variant),
            "weights": first.weights,
            "backends": tuple(spec.backend),
            "int8": "int8" in precisions,
            "fp16": "fp16" in precisions or bool(spec.export.get("fp16")),
        }
        if options["int8"]:
            if spec.calib is not None:
                options["calib"] = spec.calib
            if spec.calib_size is not None:
                options["calib_size"] = spec.calib_size
            counts = [t for t in spec.threads if t is not None]
            # INT8's speed plan keeps in float what is slower at a thread count: the one the sweep
            # times, when it times one (with several, the export's default, this machine's cores).
            if len(counts) == 1 and spec.export.get("int8_speed", True) and "threads" not in spec.export:
                options["threads"] = counts[0]
        try:
            ExportOptions(**options).validate()
        except TypeError as exc:
            raise InvalidOptionError(f"export options: {exc}") from None
        for p in group:
            p.export_options = dict(options)
