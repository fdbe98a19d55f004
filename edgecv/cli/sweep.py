"""`edgecv sweep`: export, evaluate and time a grid of models, and say which to ship."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgecv.cli.common import PlainUsage, app, console, emit_json, fail, guarded, out_console, parse_flag
from edgecv.cli.progress import RichBars
from edgecv.sweep.progress import SweepObserver

SWEEP_BARS = dict(
    columns=(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ),
    transient=False,
    refresh_per_second=2,
)


class SweepBars(SweepObserver, RichBars):
    """Points done out of the total, with how many run and failed, and the time left."""

    def __init__(self) -> None:
        SweepObserver.__init__(self)
        RichBars.__init__(self, console, **SWEEP_BARS)


def _sweep_table(doc: dict[str, Any]) -> Any:
    from edgecv.cli.tables import FittedTable
    from edgecv.sweep.report import COLUMNS, NUMERIC, rows_by_latency, table_cells

    return FittedTable(
        columns=COLUMNS,
        rows=[table_cells(r, doc) for r in rows_by_latency(doc)],
        keys=("point",),
        priority=("backend", "p90", "accuracy", "published", "threads", "mark", "median", "macs", "params"),
        right=frozenset(NUMERIC),
        title=f"constraint: {doc['constraint']} · ★ recommended · ◆ Pareto front",
    )


def _executor(ray: Optional[str], on: Optional[str], jobs: Optional[int]) -> Any:
    from edgecv.errors import InvalidOptionError

    if ray is None:
        from edgecv.sweep.executor import LocalExecutor

        if on is not None:
            raise InvalidOptionError("--on places benchmarks on the nodes of a Ray cluster: give --ray too")
        return LocalExecutor(jobs=jobs or 1)
    from edgecv.sweep.ray_executor import RayExecutor

    if not ray.strip():
        raise InvalidOptionError("--ray takes a cluster address (host:port) or 'local'")
    return RayExecutor(address=ray, on=on, jobs=jobs)


@app.command("sweep", cls=PlainUsage)
def sweep_cmd(
    models: Optional[str] = typer.Argument(
        None, metavar="MODEL[,MODEL…]", help="zoo models to sweep (or models = [...] in --grid)"
    ),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="the sweep folder (rerun to resume)"),
    grid: Optional[Path] = typer.Option(
        None, "--grid", metavar="TOML", help="the grid and settings from a TOML file (flags override it)"
    ),
    width_mult: Optional[str] = typer.Option(None, "--width-mult", "-a", metavar="A[,A…]", help="width multipliers"),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r", metavar="R[,R…]", help="input sides or HxW"),
    precision: Optional[str] = typer.Option(None, "--precision", metavar="P[,P…]", help="fp32,fp16,int8 (fp32)"),
    backend: Optional[str] = typer.Option(
        None,
        "--backend",
        metavar="E[,E…]",
        help="engines to build and time: onnxruntime,openvino,tensorrt (onnxruntime)",
    ),
    threads: Optional[str] = typer.Option(
        None, "--threads", metavar="N[,N…]", help="CPU threads to time with (default: each engine's own)"
    ),
    weights: Optional[str] = typer.Option(
        None,
        "--weights",
        metavar="PATH",
        help="weights, or a template such as 'ckpt/{model}_a{width_mult}.pth' ({resolution}, {variant} too); "
        "points without a file are timed only",
    ),
    num_classes: Optional[str] = typer.Option(None, "--num-classes", metavar="N", help="classes of the head"),
    data: Optional[Path] = typer.Option(None, "--data", metavar="PATH", help="evaluation data (as `edgecv eval`)"),
    images: Optional[Path] = typer.Option(None, "--images", metavar="DIR", help="the images a COCO .json names"),
    limit: Optional[str] = typer.Option(None, "--limit", metavar="N", help="evaluate the first N images only"),
    calib: Optional[str] = typer.Option(None, "--calib", metavar="PATH", help="INT8 calibration images"),
    calib_size: Optional[str] = typer.Option(None, "--calib-size", metavar="N", help="calibration images (300)"),
    max_latency: Optional[str] = typer.Option(
        None, "--max-latency", metavar="TIME", help="recommend the most accurate point within it, e.g. 10ms (p90)"
    ),
    min_accuracy: Optional[str] = typer.Option(
        None, "--min-accuracy", metavar="PCT", help="recommend the fastest point reaching it, e.g. 70"
    ),
    iterations: Optional[str] = typer.Option(None, "--iterations", "-n", metavar="N", help="timed calls (200)"),
    warmup: Optional[str] = typer.Option(None, "--warmup", metavar="N", help="untimed calls first (10)"),
    jobs: Optional[str] = typer.Option(
        None, "--jobs", "-j", metavar="N", help="exports at once (1; with --ray: as many as the cluster's CPUs)"
    ),
    ray: Optional[str] = typer.Option(
        None, "--ray", metavar="ADDRESS", help="run on a Ray cluster (or 'local'); needs edgecv[ray]"
    ),
    on: Optional[str] = typer.Option(
        None, "--on", metavar="DEVICE", help="with --ray: time on the nodes labelled edgecv/device=DEVICE"
    ),
    as_json: bool = typer.Option(False, "--json", help="print sweep.json on stdout"),
) -> None:
    """Export, evaluate and time every point of a grid; recommend one under a constraint."""

    def run() -> None:
        import warnings

        from edgecv.cli.common import quiet_library_warnings
        from edgecv.sweep.report import recommendation_lines
        from edgecv.sweep.run import make_plan, run_sweep

        settings = {
            "models": models,
            "width_mult": width_mult,
            "resolution": resolution,
            "precision": precision,
            "backend": backend,
            "threads": threads,
            "weights": weights,
            "num_classes": parse_flag(num_classes, int, "--num-classes", "an integer"),
            "data": None if data is None else str(data),
            "images": None if images is None else str(images),
            "limit": parse_flag(limit, int, "--limit", "an integer"),
            "calib": calib,
            "calib_size": parse_flag(calib_size, int, "--calib-size", "an integer"),
            "max_latency": max_latency,
            "min_accuracy": parse_flag(min_accuracy, float, "--min-accuracy", "a percentage"),
            "iterations": parse_flag(iterations, int, "--iterations", "an integer"),
            "warmup": parse_flag(warmup, int, "--warmup", "an integer"),
        }
        n_jobs = None if jobs is None else parse_flag(jobs, int, "--jobs", "an integer")
        if n_jobs is not None and n_jobs < 1:
            from edgecv.errors import InvalidOptionError

            raise InvalidOptionError(f"--jobs must be ≥ 1, got {n_jobs}")
        plan = make_plan(settings, grid)
        executor = _executor(ray, on, n_jobs)
        with warnings.catch_warnings(), SweepBars() as bars:
            quiet_library_warnings()
            doc, written = run_sweep(plan, out, executor, bars)
        if as_json:
            emit_json(doc)
        else:
            out_console.print(_sweep_table(doc))
            for line in recommendation_lines(doc):
                out_console.print(line, markup=False, soft_wrap=True)
        for name, path in written.items():
            console.print(f"{name}: {path}", markup=False)
        if doc["failed"]:
            raise fail(f"{len(doc['failed'])} of {len(plan.points)} points failed (see {written['md']})", 1)

    guarded(run)
