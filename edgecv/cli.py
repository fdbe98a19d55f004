"""The ``edgecv`` command. Thin: parses flags, calls the library, renders the result.

Errors a user can cause are :class:`edgecv.errors.UserInputError` and leave with exit code 2 and a
one-line message; a failing stage leaves with exit code 1. No traceback reaches the user unless
``EDGECV_DEBUG=1`` is set.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from edgecv.errors import EdgecvError

app = typer.Typer(
    name="edgecv",
    help="Turn PyTorch vision models into verified, calibrated edge engines and measure them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Human-readable output goes to stderr so `--json` output on stdout stays machine-readable.
console = Console(stderr=True, highlight=False)
# Piped output gets a wide page rather than rich's 80 columns, so tables stay readable in logs.
out_console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int) -> "typer.Exit":
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


def guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and turn edgecv's typed errors into a message and an exit code."""
    try:
        return fn()
    except EdgecvError as exc:
        if os.environ.get("EDGECV_DEBUG"):
            raise
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


# --- edgecv models -------------------------------------------------------------------------------


def _parse_flag(text: Optional[str], convert: Callable[[str], Any], flag: str, expected: str) -> Any:
    # Parsed here rather than by click so a typo gives the one-line exit-2 message of every
    # other bad value instead of click's usage block.
    if text is None:
        return None
    try:
        return convert(text)
    except ValueError:
        from edgecv.errors import InvalidOptionError

        raise InvalidOptionError(f"{flag} must be {expected}, got {text!r}") from None


def _format_count(value: int) -> str:
    return f"{value / 1e9:.2f} G" if value >= 1e9 else f"{value / 1e6:.1f} M"


def _models_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    from edgecv.models import get_entry

    table = Table(title="edgecv model zoo (MACs per image)", title_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    table.add_column("input", no_wrap=True)
    table.add_column("options")
    table.add_column("variants")
    table.add_column("aliases")
    for row in rows:
        marker = " *" if row["note"] else ""
        table.add_row(
            row["name"] + marker, _format_count(row["params"]), _format_count(row["macs"]),
            "×".join(map(str, row["input_shape"][1:])),
            ", ".join([f"α={row['width_mult']:g}", *(f"{k}={v}" for k, v in row["options"].items())]),
            get_entry(row["name"]).variants_text(), ", ".join(row["aliases"]),
        )
    return table


@app.command("models")
def models_cmd(
    width_mult: Optional[str] = typer.Option(
        None, "--width-mult", "-a", metavar="FLOAT", help="size every model at width multiplier α"
    ),
    resolution: Optional[str] = typer.Option(
        None, "--resolution", "-r", metavar="INT", help="input side (ρ·224), multiple of 32"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON on stdout"),
) -> None:
    """List the model zoo with parameters and MACs at the chosen α and resolution."""

    def run() -> None:
        from edgecv.models.describe import describe_models

        rows = describe_models(
            width_mult=_parse_flag(width_mult, float, "--width-mult", "a number"),
            resolution=_parse_flag(resolution, int, "--resolution", "an integer"),
        )
        if as_json:
            emit_json(rows)
        else:
            out_console.print(_models_table(rows))
            for row in rows:
                if row["note"]:
                    out_console.print(f"* {row['name']}: {row['note']}", markup=False)

    guarded(run)


# --- edgecv export -------------------------------------------------------------------------------
# (implemented in the section below)


def _split_list(text: Optional[str]) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


@app.command("export")
def export_cmd(
    model: str = typer.Argument(..., help="zoo model name (see `edgecv models`)"),
    width_mult: Optional[float] = typer.Option(None, "--width-mult", "-a", help="width multiplier α"),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="input side (ρ·224), multiple of 32"),
    num_classes: int = typer.Option(1000, "--num-classes", help="classes of the head"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="state_dict or checkpoint file"),
    groups: Optional[int] = typer.Option(None, "--groups", help="ShuffleNet V1 groups g"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default runs/<model>-w<α>-r<res>)"),
    opset: int = typer.Option(17, "--opset", help="ONNX opset"),
    batch: int = typer.Option(1, "--batch", help="static batch size"),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="export with a dynamic batch axis"),
    exporter: str = typer.Option("torchscript", "--exporter", help="torchscript | dynamo"),
    fp16: bool = typer.Option(False, "--fp16", help="also write FP16 OpenVINO IR; TensorRT engines in FP16"),
    int8: bool = typer.Option(False, "--int8", help="calibrate and write INT8 artifacts"),
    calib: Optional[str] = typer.Option(None, "--calib", help="image folder, list file, or .npy/.npz array"),
    calib_size: int = typer.Option(300, "--calib-size", help="calibration images"),
    calib_method: Optional[str] = typer.Option(None, "--calib-method", help="minmax | entropy | percentile"),
    seed: int = typer.Option(0, "--seed", help="seed for sampling and verification inputs"),
    sensitivity: bool = typer.Option(False, "--sensitivity", help="rank layers by INT8 sensitivity"),
    keep_fp32: int = typer.Option(0, "--keep-fp32", help="leave the N most sensitive layers in float"),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="comma-separated node names to keep in float"),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="engines to build, comma-separated: onnxruntime,openvino,tensorrt (default onnxruntime,openvino)"
    ),
    atol: Optional[float] = typer.Option(None, "--atol", help="FP32 verification absolute tolerance (1e-4)"),
    rtol: Optional[float] = typer.Option(None, "--rtol", help="FP32 verification relative tolerance (1e-4)"),
    force: bool = typer.Option(False, "--force", help="rebuild every stage"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest summary as JSON on stdout"),
) -> None:
    """Export MODEL to verified, simplified ONNX (+ OpenVINO IR, + INT8 with --int8) in a run folder."""

    def run() -> None:
        import warnings

        from edgecv.export.options import DEFAULT_CALIB_METHOD
        from edgecv.export.pipeline import export
        from edgecv.export.progress import RichReporter, artifact_table, sensitivity_table

        options: dict[str, Any] = dict(
            num_classes=num_classes, width_mult=width_mult, resolution=resolution,
            weights=str(weights) if weights else None, opset=opset, batch=batch,
            dynamic_batch=dynamic_batch, exporter=exporter, fp16=fp16, int8=int8, calib=calib,
            calib_size=calib_size, calib_method=calib_method or DEFAULT_CALIB_METHOD, seed=seed,
            sensitivity=sensitivity, keep_fp32=keep_fp32, exclude=_split_list(exclude), atol=atol,
            rtol=rtol, force=force,
        )
        if groups is not None:
            options["variant"] = {"groups": groups}
        if backend is not None:
            options["backends"] = _split_list(backend)
        reporter = RichReporter(console)
        with warnings.catch_warnings():
            # Warnings reach the user through the reporter; library warnings from torch/onnx are noise.
            warnings.simplefilter("ignore")
            result = export(model, out=out, reporter=reporter, **options)
        if as_json:
            emit_json(result.summary())
        else:
            out_console.print(artifact_table(result))
            ranking = sensitivity_table(result)
            if ranking is not None:
                out_console.print(ranking)
            out_console.print(f"manifest: {result.run_dir / 'manifest.json'}")

    guarded(run)

# --- edgecv benchmark / edgecv report ------------------------------------------------------------
# (implemented in the section below)


@app.command("benchmark")
def benchmark_cmd(
    target: str = typer.Argument(..., help="run folder, artifact (.onnx .xml .engine .pt) or zoo model name"),
    warmup: str = typer.Option("10", "--warmup", metavar="N", help="untimed calls before timing"),
    iterations: Optional[str] = typer.Option(None, "--iterations", "-n", metavar="N", help="timed calls per batch (default 200)"),
    duration: Optional[str] = typer.Option(None, "--duration", metavar="S", help="time each batch for S seconds instead"),
    batch: Optional[str] = typer.Option(None, "--batch", "-b", metavar="B[,B...]", help="batch size or sweep, e.g. 1,4,8 (default: the scenario's)"),
    threads: Optional[str] = typer.Option(None, "--threads", metavar="N", help="CPU threads per backend (default: each backend's own)"),
    backend: Optional[str] = typer.Option(None, "--backend", help="only these backends, comma-separated: onnxruntime,openvino,tensorrt,torch"),
    precision: Optional[str] = typer.Option(None, "--precision", help="OpenVINO compute precision f32|bf16|fp16 (default: OpenVINO's, bf16 on AMX CPUs)"),
    scenario: str = typer.Option("single-stream", "--scenario", help="single-stream (headline p90) | offline (largest batch, headline throughput)"),
    report: Optional[Path] = typer.Option(None, "--report", metavar="DIR", help="write results.json, report.md and report.html to DIR"),
    in_process: bool = typer.Option(False, "--in-process", help="run every artifact in this process (faster; no per-artifact peak memory)"),
    as_json: bool = typer.Option(False, "--json", help="print the results document as JSON on stdout"),
) -> None:
    """Time every artifact of a run folder (with PyTorch as the baseline), or one artifact."""

    def run() -> None:
        from edgecv.report import write_report
        from edgecv.report.console import RichObserver, results_table
        from edgecv.runtime.benchmark import benchmark_target, parse_batches

        with RichObserver(console) as observer:
            result = benchmark_target(
                target,
                warmup=_parse_flag(warmup, int, "--warmup", "an integer"),
                iterations=_parse_flag(iterations, int, "--iterations", "an integer"),
                duration=_parse_flag(duration, float, "--duration", "a number of seconds"),
                batches=parse_batches(batch),
                threads=_parse_flag(threads, int, "--threads", "an integer"),
                backends=_split_list(backend) or None,
                precision=precision,
                scenario=scenario,
                isolate=not in_process,
                observer=observer,
            )
        doc = result.to_dict()
        written = write_report(doc, report) if report is not None else {}
        if as_json:
            emit_json(doc)
        else:
            out_console.print(results_table(doc))
        for name, path in written.items():
            console.print(f"{name}: {path}")

    guarded(run)


@app.command("report")
def report_cmd(
    results: list[Path] = typer.Argument(..., help="results.json files of `edgecv benchmark --report`; the first is the reference"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR", help="write the report (one file) or comparison (several) to DIR"),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON on stdout"),
) -> None:
    """Re-render one benchmark run, or merge several and compare them with the first."""

    def run() -> None:
        from edgecv.report import compare_files, read_results, write_comparison, write_report
        from edgecv.report.console import comparison_table, results_table

        if len(results) == 1:
            doc = read_results(results[0])
            written = write_report(doc, out) if out is not None else {}
            document, table = doc, results_table(doc)
        else:
            comparison = compare_files(results)
            written = write_comparison(comparison, out) if out is not None else {}
            document, table = comparison, comparison_table(comparison)
        if as_json:
            emit_json(document)
        else:
            out_console.print(table)
        for name, path in written.items():
            console.print(f"{name}: {path}")

    guarded(run)


def main() -> None:
    try:
        from click.exceptions import Abort, UsageError
    except ImportError:  # newer typer carries its own copy of click
        from typer._click.exceptions import UsageError  # type: ignore[no-redef]
        from typer.exceptions import Abort  # type: ignore[no-redef,assignment]
    try:
        rv = app(standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            console.print(exc.format_message(), highlight=False, markup=False)
            sys.exit(2)
        # A bad flag or value: one line and exit 2, not click's usage block.
        hint = f" (see `edgecv {exc.ctx.command_path.split(' ', 1)[-1]} --help`)" if exc.ctx and " " in exc.ctx.command_path else ""
        console.print(f"[bold red]error:[/] {exc.format_message()}{hint}", soft_wrap=True)
        sys.exit(2)
    except (Abort, KeyboardInterrupt):
        console.print("[bold red]error:[/] interrupted")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
