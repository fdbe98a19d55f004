"""The sweep as one call: settings (flags, a TOML grid, or both; flags win) → plan → executor →
``sweep.json``, ``sweep.md``, ``sweep.html`` in the sweep folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecv.errors import InvalidOptionError

from .executor import Executor, LocalExecutor, SweepObserver
from .grid import GridSpec, SweepPlan, build_points, parse_latency, positive_threads, read_grid_toml, split_values
from .point import EvalData
from .report import write_reports
from .results import sweep_document
from .store import SweepStore


def _threads(value: Any) -> int | None:
    return None if str(value).strip().lower() == "auto" else positive_threads(value)


def make_plan(settings: dict[str, Any], grid_file: str | Path | None = None) -> SweepPlan:
    """The plan from ``settings`` (the flags' values, None where not given) over the TOML grid's.

    Keys: models, width_mult, resolution, precision, backend, threads (comma text or lists),
    weights, num_classes, calib, calib_size, data, images, limit, max_latency, min_accuracy,
    iterations, warmup, export (a dict of further ExportOptions fields)."""
    merged: dict[str, Any] = read_grid_toml(grid_file) if grid_file is not None else {}
    merged.update({k: v for k, v in settings.items() if v is not None and v != ()})
    models = split_values(merged.get("models"), str, "MODEL", "model names")
    if not models:
        raise InvalidOptionError("name the models to sweep (MODEL[,MODEL…] or models = [...] in --grid)")
    spec = GridSpec(
        models=models,
        width_mult=split_values(merged.get("width_mult"), float, "--width-mult", "numbers") or [None],
        resolution=split_values(merged.get("resolution"), _resolution, "--resolution", "sides or HxW") or [None],
        precision=split_values(merged.get("precision"), str.lower, "--precision", "fp32|fp16|int8") or ["fp32"],
        backend=split_values(merged.get("backend"), str, "--backend", "engine names") or ["onnxruntime"],
        threads=split_values(merged.get("threads"), _threads, "--threads", "positive integers or auto") or [None],
        weights=merged.get("weights"),
        num_classes=merged.get("num_classes"),
        calib=merged.get("calib"),
        calib_size=merged.get("calib_size"),
        export=dict(merged.get("export") or {}),
    )
    max_latency = parse_latency(merged.get("max_latency"))
    min_accuracy = merged.get("min_accuracy")
    if max_latency is not None and min_accuracy is not None:
        raise InvalidOptionError("give --max-latency or --min-accuracy, not both")
    if min_accuracy is not None and not 0 < float(min_accuracy) <= 100:
        raise InvalidOptionError(f"--min-accuracy is a percentage in (0, 100], got {min_accuracy}")
    data = None
    if merged.get("data") is not None:
        path = Path(str(merged["data"])).expanduser()
        if not path.exists():
            raise InvalidOptionError(f"--data {merged['data']}: no such file or folder")
        data = EvalData(str(path), merged.get("images"), merged.get("limit"))
    for key in ("iterations", "warmup", "limit"):
        value = merged.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < (key != "warmup")):
            raise InvalidOptionError(f"--{key} must be a whole number ≥ {int(key != 'warmup')}, got {value!r}")
    return SweepPlan(
        points=build_points(spec),
        backends=tuple(spec.backend),
        threads=tuple(spec.threads),
        data=data,
        iterations=merged.get("iterations"),
        warmup=merged.get("warmup"),
        max_latency_ms=max_latency,
        min_accuracy=None if min_accuracy is None else float(min_accuracy),
    )


def _resolution(text: Any) -> Any:
    from edgecv.models.spec import parse_resolution

    return parse_resolution(text)


def run_sweep(
    plan: SweepPlan, out: str | Path, executor: Executor | None = None, observer: SweepObserver | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Run what is not finished yet, then write the reports; returns (sweep.json's document, paths)."""
    observer = observer or SweepObserver()
    with SweepStore(out, plan) as store:
        (executor or LocalExecutor()).run(plan, store, observer)
        doc = sweep_document(plan, store.records())
        return doc, write_reports(doc, store.root)
