"""`edgecv check`, `bundle`, `import-trtexec`: TensorRT without a GPU here, the Jetson bundle, board logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from edgecv.cli.common import (
    app,
    console,
    emit_json,
    guarded,
    out_console,
)
from edgecv.errors import InvalidOptionError
from edgecv.tensorrt.installation import DEFAULT_TRT_VERSION


def _print_preflight(reports: list[Any]) -> None:
    for report in reports:
        # A note changes how the findings read (an artifact made for another engine): it comes first.
        for note in report.notes:
            out_console.print(f"note: {note}", markup=False, soft_wrap=True)
        out_console.print(f"{report.artifact} (TensorRT {report.trt_version}): {report.summary()}", markup=False)
        for finding in report.findings:
            out_console.print(f"  {finding}", markup=False, soft_wrap=True)


@app.command("check")
def check_cmd(
    artifact: Path = typer.Argument(..., help="ONNX file, or a run folder (checks each ONNX meant for TensorRT)"),
    target: str = typer.Option("tensorrt", "--target", help="the engine to check for: tensorrt"),
    trt_version: str = typer.Option(
        DEFAULT_TRT_VERSION,
        "--trt-version",
        metavar="X.Y",
        help=f"TensorRT version to check against (JetPack 6: {DEFAULT_TRT_VERSION})",
    ),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="top of the dynamic-batch profile"),
    as_json: bool = typer.Option(False, "--json", help="print the findings as JSON on stdout"),
) -> None:
    """Preflight: what in an ONNX graph would stop (exit 1) or slow (warnings, exit 0) a TensorRT build."""

    def run() -> int:
        from edgecv.tensorrt.run_folder_preflight import check_target

        if target != "tensorrt":
            raise InvalidOptionError(f"--target must be tensorrt, got {target!r}")
        reports = check_target(artifact, trt_version, max_batch=max_batch)
        if as_json:
            emit_json(
                {
                    "target": target,
                    "trt_version": trt_version,
                    "would_build": all(not r.errors for r in reports),
                    "reports": [r.to_dict() for r in reports],
                }
            )
        else:
            _print_preflight(reports)
        return max(r.exit_code for r in reports)

    code = guarded(run)
    if code:
        raise typer.Exit(code)


@app.command("bundle")
def bundle_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN", help="run folder written by `edgecv export`"),
    target: str = typer.Option("jetson", "--target", help="the board: jetson"),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="DIR|FILE.tar.gz", help="bundle folder or archive (default RUN/bundle-jetson)"
    ),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="top of the dynamic-batch profile (default 32)"),
    dla_core: Optional[int] = typer.Option(
        None, "--dla-core", metavar="N", help="build for DLA core N with GPU fallback"
    ),
    workspace: int = typer.Option(2048, "--workspace", metavar="MIB", help="TensorRT workspace limit in MiB"),
    trt_version: str = typer.Option(
        DEFAULT_TRT_VERSION, "--trt-version", metavar="X.Y", help="TensorRT version to preflight against"
    ),
    allow_preflight_errors: bool = typer.Option(
        False,
        "--allow-preflight-errors",
        help="write the bundle even if the preflight says TensorRT would refuse a file",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the bundle summary as JSON on stdout"),
) -> None:
    """Write what a Jetson board needs to build and benchmark TensorRT engines from RUN (exit 1, nothing
    written, when the preflight finds an error, unless --allow-preflight-errors)."""

    def run() -> None:
        from edgecv.deploy.bundle import make_bundle

        summary = make_bundle(
            run_dir,
            out,
            target=target,
            max_batch=max_batch,
            dla_core=dla_core,
            workspace_mib=workspace,
            trt_version=trt_version,
            allow_preflight_errors=allow_preflight_errors,
        )
        if summary["preflight_errors"]:
            console.print(
                f"warning: written with {summary['preflight_errors']} preflight error(s) (--allow-preflight-errors); "
                "see preflight.json: those engines will not build on the board",
                markup=False,
                soft_wrap=True,
            )
        if as_json:
            emit_json(summary)
        else:
            out_console.print(f"bundle: {summary['bundle']}", markup=False)
            for name in summary["files"]:
                out_console.print(f"  {name}", markup=False)
            out_console.print(
                f"preflight: {summary['preflight_errors']} error(s), {summary['preflight_warnings']} "
                "warning(s) (preflight.json); on the board: ./build_engine.sh && ./benchmark.sh",
                markup=False,
            )

    guarded(run)


@app.command("import-trtexec")
def import_trtexec_cmd(
    logs: list[Path] = typer.Argument(..., metavar="LOG...", help="trtexec output (TensorRT 8 to 11)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="results.json", help="write the results file here"),
    merge: list[Path] = typer.Option(
        [], "--merge", metavar="RESULTS", help="add an `edgecv benchmark --json` file from the same board"
    ),
    bundle: Optional[Path] = typer.Option(
        None,
        "--bundle",
        metavar="DIR",
        help="the `edgecv bundle` folder the engines were built from: `edgecv report` then matches each "
        "engine with its ONNX file's CPU figures",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the results document on stdout"),
) -> None:
    """Turn trtexec logs into an edgecv results file for `edgecv report`."""

    def run() -> None:
        from edgecv.deploy.trtexec_results import fmt_ms, import_logs, merge_results

        doc = merge_results(import_logs(logs, bundle), merge, bundle)
        if out is not None:
            from edgecv.errors import OutputPathError

            target = out.expanduser()
            if target.is_dir():
                raise OutputPathError(f"{target} is a folder; --out takes a file name")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.partial")
            tmp.write_text(json.dumps(doc, indent=2) + "\n")
            tmp.replace(target)
        if as_json:
            emit_json(doc)
        else:
            for r in doc["results"]:
                lat = r["latency"]
                source = f", built from {r['source_onnx']}" if r.get("source_sha256") else ""
                out_console.print(
                    f"{r['artifact']} ({r['backend']}, batch {r['batch']}{source}): median "
                    f"{fmt_ms(lat.get('median_ms'))}, p90 {fmt_ms(lat.get('p90_ms'))}, "
                    f"{r['throughput_ips']:.1f} items/s",
                    markup=False,
                )
            if out is not None:
                console.print(f"results: {out}")

    guarded(run)
