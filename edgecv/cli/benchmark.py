"""`edgecv benchmark` and `edgecv report`: timing runs and their reports."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgecv.cli.common import (
    PlainUsage,
    app,
    console,
    emit_json,
    guarded,
    out_console,
    parse_batches,
    parse_counts,
    parse_flag,
    print_notes,
    split_list,
)
from edgecv.errors import InvalidOptionError


@app.command("benchmark", cls=PlainUsage)
def benchmark_cmd(
    target: str = typer.Argument(
        ..., metavar="TARGET", help="run folder, artifact (.onnx .xml .engine .pt) or zoo model name"
    ),
    warmup: str = typer.Option("10", "--warmup", metavar="N", help="untimed calls before timing"),
    iterations: Optional[str] = typer.Option(
        None, "--iterations", "-n", metavar="N", help="timed calls per batch (default 200)"
    ),
    duration: Optional[str] = typer.Option(
        None, "--duration", metavar="S", help="time each batch for S seconds instead"
    ),
    batch: Optional[str] = typer.Option(
        None, "--batch", "-b", metavar="B[,B...]", help="batch size or sweep, e.g. 1,4,8 (default: the scenario's)"
    ),
    threads: Optional[str] = typer.Option(
        None,
        "--threads",
        metavar="N[,N...]",
        help="CPU threads per backend, or a sweep, e.g. 1,2,4: every CPU artifact at each (default: each backend's own)",
    ),
    max_accuracy_drop: Optional[str] = typer.Option(
        None,
        "--max-accuracy-drop",
        metavar="D",
        help="accuracy budget in points (top-1, or mAP@[.5:.95] for detectors) against FP32 for the recommended "
        "artifact, judged on `edgecv eval` figures (default: the budget the export recorded, else none)",
    ),
    shape: Optional[str] = typer.Option(
        None,
        "--shape",
        metavar="NxCxHxW",
        help="input shape for artifacts that leave it open, e.g. 1x3x224x224 (NAME:… for one input)",
    ),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="only these backends, comma-separated: onnxruntime,openvino,tensorrt,torch"
    ),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="OpenVINO compute precision f32|bf16|fp16 (default: OpenVINO's, bf16 on AMX CPUs)"
    ),
    device: Optional[str] = typer.Option(
        None,
        "--device",
        metavar="DEVICE",
        help="where to run: PyTorch cpu|cuda[:N], ONNX Runtime cpu|cuda|tensorrt, OpenVINO CPU|GPU[.N]|NPU|AUTO, "
        "TensorRT cuda[:N]; one for every backend, or BACKEND=DEVICE,… (torch=cuda,openvino=GPU)",
    ),
    scenario: str = typer.Option(
        "single-stream",
        "--scenario",
        help="single-stream (headline p90) | offline (largest batch, headline throughput) | throughput "
        "(several inferences in flight: OpenVINO's THROUGHPUT hint, concurrent ONNX Runtime runs)",
    ),
    requests: Optional[str] = typer.Option(
        None,
        "--requests",
        metavar="N",
        help="throughput scenario: inferences in flight (default: the backend's choice)",
    ),
    report: Optional[Path] = typer.Option(
        None, "--report", metavar="DIR", help="write results.json, report.md and report.html to DIR"
    ),
    in_process: bool = typer.Option(
        False, "--in-process", help="run every artifact in this process (faster; no per-artifact peak memory)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the results document as JSON on stdout"),
) -> None:
    """Time every artifact of a run folder (with PyTorch as the baseline), or one artifact."""

    def run() -> None:
        from edgecv.cli.progress import BenchmarkBars
        from edgecv.cli.tables import recommendation_text, results_table
        from edgecv.report import write_report
        from edgecv.report.recommend import add_recommendation, check_budget, recorded_budget
        from edgecv.runtime.benchmark import BenchSettings, PlanOptions, benchmark_target

        budget, source = None, None
        if max_accuracy_drop is not None:
            budget, source = (
                check_budget(parse_flag(max_accuracy_drop, float, "--max-accuracy-drop", "a number")),
                "flag",
            )

        settings = BenchSettings(
            warmup=parse_flag(warmup, int, "--warmup", "an integer"),
            iterations=parse_flag(iterations, int, "--iterations", "an integer"),
            duration=parse_flag(duration, float, "--duration", "a number of seconds"),
            scenario=scenario,
            shape=shape,
            requests=parse_flag(requests, int, "--requests", "an integer"),
        )
        plan = PlanOptions(
            batches=parse_batches(batch),
            threads=parse_threads(threads),
            backends=split_list(backend) or None,
            precision=precision,
            isolate=not in_process,
            device=device,
        )
        with BenchmarkBars(console) as observer:
            result = benchmark_target(target, settings, plan, observer=observer)
        from edgecv.evaluate.records import attach_accuracy

        doc = attach_accuracy(result.to_dict())  # figures `edgecv eval` recorded in the run folder
        if budget is None:
            budget = recorded_budget(target)
            source = "manifest" if budget is not None else None
        add_recommendation(doc, budget, source)
        written = write_report(doc, report) if report is not None else {}
        if as_json:
            emit_json(doc)
        else:
            out_console.print(results_table(doc))
            # The table points at these ("see notes"); the report files hold them too.
            print_notes(result.results)
            out_console.print(recommendation_text(doc["recommendation"]))
        for name, path in written.items():
            console.print(f"{name}: {path}", markup=False)

    guarded(run)


def parse_threads(text: Optional[str]) -> int | tuple[int, ...] | None:
    """``--threads 2`` → 2; ``--threads 1,2,4`` → a sweep."""
    counts = parse_counts(text, "--threads")
    return counts[0] if counts and len(counts) == 1 else counts


@app.command("report", cls=PlainUsage)
def report_cmd(
    results: list[Path] = typer.Argument(
        ...,
        metavar="RESULTS",
        help="results.json files (or the folders holding them) of `edgecv benchmark --report`, or two or more `edgecv sweep` folders; the first is the reference",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="DIR", help="write the report (one file) or comparison (several) to DIR"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON on stdout"),
) -> None:
    """Re-render one benchmark run, or merge several and compare them with the first."""

    def run() -> None:
        from rich.console import Group

        from edgecv.cli.tables import comparison_table, recommendation_text, results_table
        from edgecv.report import compare_files, read_results, write_comparison, write_report
        from edgecv.report.recommend import recommendation_of
        from edgecv.report.sweep_compare import sweep_path

        sweeps = [sweep_path(p) is not None for p in results]
        if any(sweeps):
            if not all(sweeps) or len(results) < 2:
                raise InvalidOptionError(
                    "compare two or more sweeps (their folders or sweep.json), or results.json files"
                )
            return _report_sweeps(results, out, as_json)
        if len(results) == 1:
            doc = read_results(results[0])
            doc["recommendation"] = recommendation_of(doc)  # computed for files written before it was recorded
            written = write_report(doc, out) if out is not None else {}
            document, table = doc, Group(results_table(doc), recommendation_text(doc["recommendation"]))
        else:
            comparison = compare_files(results)
            written = write_comparison(comparison, out) if out is not None else {}
            document, table = comparison, comparison_table(comparison)
        if as_json:
            emit_json(document)
        else:
            out_console.print(table)
        for name, path in written.items():
            console.print(f"{name}: {path}", markup=False)

    guarded(run)


def _report_sweeps(paths: list[Path], out: Optional[Path], as_json: bool) -> None:
    from edgecv.cli.tables import FittedTable
    from edgecv.report import write_sweep_comparison
    from edgecv.report.sweep_compare import compare_sweeps, sweep_comparison_rows

    comparison = compare_sweeps(paths)
    written = write_sweep_comparison(comparison, out) if out is not None else {}
    if as_json:
        emit_json(comparison)
    else:
        columns, cells = sweep_comparison_rows(comparison)
        for s in comparison["sweeps"]:
            console.print(f"{s['label']}: {s['machine']}", markup=False, soft_wrap=True)
        out_console.print(
            FittedTable(columns=columns, rows=cells, keys=("point",), right=frozenset(k for k, _ in columns[2:]))
        )
    for name, path in written.items():
        console.print(f"{name}: {path}", markup=False)
