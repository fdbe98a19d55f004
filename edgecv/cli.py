"""The ``edgecv`` command. Thin: parses flags, calls the library, renders the result.

Errors a user can cause are :class:`edgecv.errors.UserInputError` and leave with exit code 2 and a
one-line message; a failing stage leaves with exit code 1. No traceback reaches the user unless
``EDGECV_DEBUG=1`` is set.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand

from edgecv.errors import EdgecvError, InvalidOptionError

app = typer.Typer(
    name="edgecv",
    help="Turn PyTorch vision models into verified, calibrated edge engines and measure them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _page_width(stream: Any) -> Optional[int]:
    # Piped output gets a wide page rather than rich's 80 columns, so tables and messages stay whole
    # in logs (a COLUMNS the user set still wins).
    return None if stream.isatty() or os.environ.get("COLUMNS") else 160


class PlainUsage(TyperCommand):
    """Usage lines read ``edgecv export [OPTIONS] MODEL``, as in man pages (newer typer writes a
    required argument as ``{MODEL}``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [re.sub(r"^\{(.*)\}(\.\.\.)?$", r"\1\2", p) for p in super().collect_usage_pieces(ctx)]


def _show_version(value: bool) -> None:
    if value:
        from edgecv import __version__

        sys.stdout.write(f"edgecv {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="print edgecv's version and exit"
    ),
) -> None:
    """Turn PyTorch vision models into verified, calibrated edge engines and measure them."""


# Human-readable output goes to stderr so `--json` output on stdout stays machine-readable.
console = Console(stderr=True, highlight=False, width=_page_width(sys.stderr))
out_console = Console(highlight=False, width=_page_width(sys.stdout))


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> Text:
    # A Text, not markup: messages quote the user's paths and `pip install edgecv[tensorrt]`, whose
    # brackets rich would otherwise eat as style tags.
    return Text.assemble(("error:", "bold red"), " ", message)


def fail(message: str, code: int) -> "typer.Exit":
    console.print(error_line(message), soft_wrap=True)
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


def _print_notes(results: list[Any]) -> None:
    """Each distinct note of ``results`` once, under the table."""
    for note in dict.fromkeys(n for r in results for n in r.notes):
        console.print(f"note: {note}", markup=False, soft_wrap=True)


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
            row["name"] + marker,
            _format_count(row["params"]),
            _format_count(row["macs"]),
            "×".join(map(str, row["input_shape"][1:])),
            ", ".join([f"α={row['width_mult']:g}", *(f"{k}={v}" for k, v in row["options"].items())]),
            get_entry(row["name"]).variants_text(),
            ", ".join(row["aliases"]),
        )
    return table


def _matching_models(name: str) -> list[str]:
    """The model ``name`` names (an alias such as torchvision's ``mobilenet_v2``), else every model
    whose name holds it or matches it as a glob; none at all is the registry's unknown-model error."""
    from edgecv.errors import UserInputError
    from edgecv.models.registry import list_models, resolve_name

    try:
        return [resolve_name(name)]
    except UserInputError:
        matches = list_models(name)
        if not matches:
            raise
        return matches


@app.command("models", cls=PlainUsage)
def models_cmd(
    name: Optional[str] = typer.Argument(
        None, metavar="NAME", help="only this model (a name or alias such as mobilenet_v2), or those matching it"
    ),
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
        from edgecv.models.describe import describe_model, describe_models
        from edgecv.models.registry import apply_alias, check_resolution, check_width_mult

        wm = _parse_flag(width_mult, float, "--width-mult", "a number")
        res = _parse_flag(resolution, int, "--resolution", "an integer")
        if name is None:
            rows = describe_models(width_mult=wm, resolution=res)
        else:
            names = _matching_models(name)
            if wm is not None:
                wm = check_width_mult(wm)
            if res is not None:
                check_resolution(res)
            if len(names) == 1:  # torchvision's shufflenet_v2_x0_5 is shown at its α
                wm, _ = apply_alias(name, wm, {})
            rows = [describe_model(n, wm, res) for n in names]
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


_NOISY_LIBRARIES = r"(torch|onnx|onnxruntime|onnxscript|onnxsim|nncf|openvino|numpy|PIL|matplotlib)(\.|$)"


def _quiet_library_warnings() -> None:
    import warnings

    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=_NOISY_LIBRARIES)
    try:
        from torch.jit import TracerWarning

        warnings.filterwarnings("ignore", category=TracerWarning)
    except ImportError:  # pragma: no cover - torch without TorchScript
        pass


def _parse_batches(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """``"1,4,8"`` → ``(1, 4, 8)``; ``None`` or empty → ``None`` (the scenario's batch)."""
    if text is None or not text.strip():
        return None
    batches = []
    for part in text.split(","):
        try:
            batches.append(int(part.strip()))
        except ValueError:
            raise InvalidOptionError(f"--batch takes positive integers separated by commas, got {text!r}") from None
    if any(b < 1 for b in batches):
        raise InvalidOptionError(f"--batch takes positive integers separated by commas, got {text!r}")
    return tuple(dict.fromkeys(batches))


def _split_list(text: Optional[str]) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


@app.command("export", cls=PlainUsage)
def export_cmd(
    model: str = typer.Argument(..., metavar="MODEL", help="zoo model name or alias (see `edgecv models`)"),
    width_mult: Optional[float] = typer.Option(
        None, "--width-mult", "-a", help="width multiplier α (default: the model's, see `edgecv models`)"
    ),
    resolution: Optional[str] = typer.Option(
        None,
        "--resolution",
        "-r",
        metavar="INT|HxW",
        help="input side or height×width (e.g. 224, 384x640); the model's strides decide what is allowed",
    ),
    num_classes: Optional[int] = typer.Option(
        None,
        "--num-classes",
        help="classes of the head, background included for SSD (default: the model's, 1000 / 91 / 80)",
    ),
    weights: Optional[Path] = typer.Option(None, "--weights", help="state_dict or checkpoint file"),
    groups: Optional[int] = typer.Option(None, "--groups", help="ShuffleNet V1 groups g"),
    variant: Optional[str] = typer.Option(
        None, "--variant", help="member of a family (mobilenetv3: large|small; yolox: nano|tiny|s)"
    ),
    backbone: Optional[str] = typer.Option(
        None, "--backbone", help="a detector's feature extractor (ssdlite: mobilenetv3|mobilenetv2)"
    ),
    conf_thres: Optional[float] = typer.Option(
        None, "--conf-thres", help="detectors: score threshold baked into the NMS (0.25; use 0.001 for COCO-style mAP)"
    ),
    iou_thres: Optional[float] = typer.Option(None, "--iou-thres", help="detectors: NMS IoU threshold (0.45)"),
    max_det: Optional[int] = typer.Option(
        None, "--max-det", help="detectors: detections kept per image, outputs padded to it (100)"
    ),
    no_nms: bool = typer.Option(
        False, "--no-nms", help="detectors: export decoded boxes and per-class scores, without NMS"
    ),
    agnostic_nms: bool = typer.Option(False, "--agnostic-nms", help="detectors: class-agnostic NMS"),
    max_batch: Optional[int] = typer.Option(
        None,
        "--max-batch",
        help="TensorRT: the optimisation profile's largest batch (with --dynamic-batch; default 32)",
    ),
    dla_core: Optional[int] = typer.Option(
        None, "--dla-core", help="TensorRT: build for this DLA core (Jetson Orin), falling back to the GPU"
    ),
    workspace: Optional[int] = typer.Option(
        None, "--workspace", metavar="MIB", help="TensorRT: builder workspace limit in MiB"
    ),
    trt_weak_typing: bool = typer.Option(
        False, "--trt-weak-typing", help="TensorRT 10 only: weakly typed build with --fp16/--int8 builder flags"
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help="run folder (default runs/<model>-w<α>-r<res>, + -b<N> or -dyn for other batch settings)",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset"),
    batch: int = typer.Option(1, "--batch", help="static batch size"),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="export with a dynamic batch axis"),
    exporter: str = typer.Option("torchscript", "--exporter", help="torchscript | dynamo"),
    fp16: bool = typer.Option(False, "--fp16", help="also write FP16 OpenVINO IR; TensorRT engines in FP16"),
    int8: bool = typer.Option(False, "--int8", help="calibrate and write INT8 artifacts"),
    calib: Optional[str] = typer.Option(None, "--calib", help="image folder, list file, or .npy/.npz array"),
    calib_size: int = typer.Option(300, "--calib-size", help="calibration images"),
    calib_method: Optional[str] = typer.Option(
        None, "--calib-method", help="minmax | entropy | percentile (default: percentile)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed for sampling and verification inputs"),
    sensitivity: bool = typer.Option(False, "--sensitivity", help="rank layers by INT8 sensitivity"),
    keep_fp32: int = typer.Option(0, "--keep-fp32", help="leave the N most sensitive layers in float"),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="comma-separated node names to keep in float"),
    target_cpu: str = typer.Option(
        "auto",
        "--target-cpu",
        metavar="auto|x86-vnni|x86-avx2|arm64",
        help="CPU the INT8 artifacts will run on (auto: this one); x86-avx2 uses 7-bit weights",
    ),
    backend: Optional[str] = typer.Option(
        None,
        "--backend",
        help="engines to build, comma-separated: onnxruntime,openvino,tensorrt (default onnxruntime,openvino)",
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
            num_classes=num_classes,
            width_mult=width_mult,
            resolution=resolution,
            weights=str(weights) if weights else None,
            opset=opset,
            batch=batch,
            dynamic_batch=dynamic_batch,
            exporter=exporter,
            fp16=fp16,
            int8=int8,
            calib=calib,
            calib_size=calib_size,
            calib_method=calib_method or DEFAULT_CALIB_METHOD,
            seed=seed,
            sensitivity=sensitivity,
            keep_fp32=keep_fp32,
            exclude=_split_list(exclude),
            atol=atol,
            rtol=rtol,
            force=force,
            target_cpu=target_cpu,
        )
        chosen = {"groups": groups, "variant": variant, "backbone": backbone}
        if any(v is not None for v in chosen.values()):
            options["variant"] = {k: v for k, v in chosen.items() if v is not None}
        options.update(
            conf_thres=conf_thres,
            iou_thres=iou_thres,
            max_det=max_det,
            nms=not no_nms,
            agnostic_nms=agnostic_nms,
            max_batch=max_batch,
            dla_core=dla_core,
            workspace_bytes=workspace * (1 << 20) if workspace is not None else None,
            trt_weak_typing=trt_weak_typing,
        )
        if backend is not None:
            options["backends"] = _split_list(backend)
        reporter = RichReporter(console)
        with warnings.catch_warnings():
            # edgecv's warnings reach the terminal and the manifest through the reporter; what the
            # libraries underneath warn about (deprecations, tracer notes) is not the user's to act on.
            _quiet_library_warnings()
            result = export(model, out=out, reporter=reporter, **options)
        if as_json:
            emit_json(result.summary())
        else:
            out_console.print(artifact_table(result))
            ranking = sensitivity_table(result)
            if ranking is not None:
                out_console.print(ranking)
            if int8:
                from edgecv.int8_kernels import describe_target

                out_console.print(describe_target(target_cpu), markup=False)
            out_console.print(f"manifest: {result.run_dir / 'manifest.json'}", markup=False)

    guarded(run)


# --- edgecv benchmark / edgecv report ------------------------------------------------------------
# (implemented in the section below)


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
        None, "--threads", metavar="N", help="CPU threads per backend (default: each backend's own)"
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
        from edgecv.report import write_report
        from edgecv.report.console import results_table
        from edgecv.runtime.benchmark import BenchSettings, PlanOptions, benchmark_target
        from edgecv.runtime.rich_progress import RichObserver

        settings = BenchSettings(
            warmup=_parse_flag(warmup, int, "--warmup", "an integer"),
            iterations=_parse_flag(iterations, int, "--iterations", "an integer"),
            duration=_parse_flag(duration, float, "--duration", "a number of seconds"),
            scenario=scenario,
            shape=shape,
            requests=_parse_flag(requests, int, "--requests", "an integer"),
        )
        plan = PlanOptions(
            batches=_parse_batches(batch),
            threads=_parse_flag(threads, int, "--threads", "an integer"),
            backends=_split_list(backend) or None,
            precision=precision,
            isolate=not in_process,
        )
        with RichObserver(console) as observer:
            result = benchmark_target(target, settings, plan, observer=observer)
        from edgecv.evaluate.run import attach_accuracy

        doc = attach_accuracy(result.to_dict())  # figures `edgecv eval` recorded in the run folder
        written = write_report(doc, report) if report is not None else {}
        if as_json:
            emit_json(doc)
        else:
            out_console.print(results_table(doc))
            # The table points at these ("see notes"); the report files hold them too.
            _print_notes(result.results)
        for name, path in written.items():
            console.print(f"{name}: {path}", markup=False)

    guarded(run)


@app.command("report", cls=PlainUsage)
def report_cmd(
    results: list[Path] = typer.Argument(
        ...,
        metavar="RESULTS",
        help="results.json files (or the folders holding them) of `edgecv benchmark --report`; the first is the reference",
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="DIR", help="write the report (one file) or comparison (several) to DIR"
    ),
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
            console.print(f"{name}: {path}", markup=False)

    guarded(run)


# --- edgecv check / bundle / import-trtexec (TensorRT without a GPU here) ---------------------------


def _print_preflight(reports: list[Any]) -> None:
    for report in reports:
        out_console.print(f"{report.artifact} (TensorRT {report.trt_version}): {report.summary()}", markup=False)
        for finding in report.findings:
            out_console.print(f"  {finding}", markup=False, soft_wrap=True)


@app.command("check")
def check_cmd(
    artifact: Path = typer.Argument(..., help="ONNX file, or a run folder (checks each ONNX meant for TensorRT)"),
    target: str = typer.Option("tensorrt", "--target", help="the engine to check for: tensorrt"),
    trt_version: str = typer.Option(
        "10.3", "--trt-version", metavar="X.Y", help="TensorRT version to check against (JetPack 6: 10.3)"
    ),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", help="top of the dynamic-batch profile"),
    as_json: bool = typer.Option(False, "--json", help="print the findings as JSON on stdout"),
) -> None:
    """Preflight: what in an ONNX graph would stop (exit 1) or slow (warnings, exit 0) a TensorRT build."""

    def run() -> int:
        from edgecv.errors import InvalidOptionError
        from edgecv.export.trt_preflight import check_target

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
        "10.3", "--trt-version", metavar="X.Y", help="TensorRT version to preflight against"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the bundle summary as JSON on stdout"),
) -> None:
    """Write what a Jetson board needs to build and benchmark TensorRT engines from RUN."""

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
    as_json: bool = typer.Option(False, "--json", help="print the results document on stdout"),
) -> None:
    """Turn trtexec logs into an edgecv results file for `edgecv report`."""

    def run() -> None:
        from edgecv.deploy.trtexec_log import import_logs, merge_results

        doc = merge_results(import_logs(logs), merge)
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
                out_console.print(
                    f"{r['artifact']} ({r['backend']}, batch {r['batch']}): median {lat['median_ms']} ms, "
                    f"p90 {lat['p90_ms']} ms, {r['throughput_ips']:.1f} items/s",
                    markup=False,
                )
            if out is not None:
                console.print(f"results: {out}")

    guarded(run)


@app.command("predict")
def predict_cmd(
    target: str = typer.Argument(..., help="artifact (.onnx .xml .engine), run folder, or zoo model name"),
    images: list[Path] = typer.Argument(..., help="pictures to run"),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", metavar="DIR", help="detectors: write each picture with its boxes drawn to DIR"
    ),
    backend: Optional[str] = typer.Option(None, "--backend", help="runtime to use (default: from the file suffix)"),
    precision: Optional[str] = typer.Option(None, "--precision", help="OpenVINO compute precision f32|bf16|fp16"),
    as_json: bool = typer.Option(False, "--json", help="print the predictions as JSON on stdout"),
) -> None:
    """Run an artifact on pictures: top-5 classes, or detections in original-image pixels (drawn with --out)."""

    def run() -> None:
        from rich.table import Table

        from edgecv.evaluate.predict import predict_images

        preds = predict_images(target, images, out_dir=out, backend=backend, precision=precision)
        if as_json:
            emit_json([p.to_dict() for p in preds])
            return
        for p in preds:
            table = Table(title=f"{p.image} ({p.width}×{p.height})", title_justify="left")
            if p.task == "classification":
                for col in ("class", "name", "probability"):
                    table.add_column(col, justify="right" if col != "name" else "left")
                for c in p.classes:
                    table.add_row(str(c["label"]), c["name"], f"{c['probability']:.3f}")
            else:
                for col in ("label", "name", "score", "x1", "y1", "x2", "y2"):
                    table.add_column(col, justify="left" if col == "name" else "right")
                for d in p.detections:
                    table.add_row(str(d["label"]), d["name"], f"{d['score']:.3f}", *(f"{v:.1f}" for v in d["box"]))
                if not p.detections:
                    table.caption = "no detection above the threshold baked into the artifact"
            out_console.print(table)
            if p.drawn:
                console.print(f"drawn: {p.drawn}", markup=False)

    guarded(run)


# --- edgecv data / edgecv eval -------------------------------------------------------------------

data_app = typer.Typer(
    help="Make evaluation data sets.", no_args_is_help=True, add_completion=False, rich_markup_mode=None
)
app.add_typer(data_app, name="data")


@data_app.command("shapes")
def data_shapes_cmd(
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="folder to write the data set to"),
    images: str = typer.Option(
        "200", "--images", metavar="N", help="pictures in all; a fifth of them form the val split"
    ),
    size: str = typer.Option(
        "160", "--size", metavar="S", help="picture width in pixels (heights vary from 3/4 S to S)"
    ),
    seed: str = typer.Option("0", "--seed", metavar="K", help="the same seed writes the same bytes"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON on stdout"),
) -> None:
    """Write a shapes detection set (COCO train/val) and an ImageFolder of its object crops."""

    def run() -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from edgecv.evaluate.shapes import generate_shapes

        n = _parse_flag(images, int, "--images", "an integer")
        with Progress(TextColumn("shapes"), BarColumn(), MofNCompleteColumn(), console=console, transient=True) as bar:
            task = bar.add_task("shapes", total=n)
            summary = generate_shapes(
                out,
                images=n,
                size=_parse_flag(size, int, "--size", "an integer"),
                seed=_parse_flag(seed, int, "--seed", "an integer"),
                progress=lambda done, total: bar.update(task, completed=done),
            )
        info = summary.to_dict()
        if as_json:
            emit_json(info)
            return
        for split in ("train", "val"):
            out_console.print(
                f"{split}: {info['images'][split]} images, {info['objects'][split]} objects → {info['coco'][split]}; "
                f"{info['crops'][split]} crops → {info['imagefolder'][split]}",
                markup=False,
                soft_wrap=True,
            )
        out_console.print(
            "categories: " + ", ".join(f"{c['id']} {c['name']}" for c in info["categories"]), markup=False
        )

    guarded(run)


def _eval_table(doc: dict[str, Any]) -> Any:
    from rich.table import Table

    from edgecv.report.format import precision_label

    def pct(v: Any) -> str:
        return "—" if v is None else f"{100 * v:.2f}"

    def delta(v: Any) -> str:
        return "—" if v is None else f"{100 * v:+.2f} pt"

    detection = doc["task"] == "detection"
    data = doc["data"]
    table = Table(title=f"{doc['target']['path']} on {data['path']} ({data['images']} images)", title_justify="left")
    metric_cols = ("mAP", "mAP@.5", "mAP@.75", "AR@100") if detection else ("top-1 %", "top-5 %")
    for col in ("artifact", "backend", "precision", *metric_cols, "Δ vs FP32", "ms / call"):
        table.add_column(col, justify="left" if col in ("artifact", "backend", "precision") else "right", no_wrap=True)
    if detection:
        table.add_column("conf", justify="right")
    for r in doc["results"]:
        acc, m = r["accuracy"], r["metrics"]
        keys = ("map", "map50", "map75", "ar100") if detection else ("top1", "top5")
        cells = [
            r["artifact"],
            r["backend"],
            precision_label(r),
            *(pct(m.get(k)) for k in keys),
            delta(acc.get("delta")) + (f" ({r['reference']})" if r.get("reference") else ""),
            "—" if r.get("median_ms") is None else f"{r['median_ms']:.2f}",
        ]
        if detection:
            cells.append("—" if doc.get("conf_thres") is None else f"{doc['conf_thres']:g}")
        table.add_row(*cells)
    return table


@app.command("eval", cls=PlainUsage)
def eval_cmd(
    target: str = typer.Argument(
        ..., metavar="TARGET", help="artifact, run folder (every artifact in it), or zoo model name with --weights"
    ),
    data: Path = typer.Option(
        ...,
        "--data",
        metavar="PATH",
        help="ImageFolder, .npz of inputs and labels, COCO annotation .json, or a folder holding a COCO .json and its images",
    ),
    images: Optional[Path] = typer.Option(
        None, "--images", metavar="DIR", help="the images a COCO annotation file names"
    ),
    limit: Optional[str] = typer.Option(
        None, "--limit", metavar="N", help="evaluate the first N images only (a quick look)"
    ),
    weights: Optional[Path] = typer.Option(None, "--weights", help="weights of the zoo model TARGET"),
    num_classes: Optional[str] = typer.Option(
        None, "--num-classes", metavar="N", help="zoo model TARGET: classes of the head (default: from the data)"
    ),
    width_mult: Optional[str] = typer.Option(
        None, "--width-mult", "-a", metavar="FLOAT", help="zoo model TARGET: width multiplier"
    ),
    resolution: Optional[str] = typer.Option(
        None, "--resolution", "-r", metavar="RES", help="zoo model TARGET: input side or HxW"
    ),
    backend: Optional[str] = typer.Option(None, "--backend", help="only these backends' artifacts, comma-separated"),
    category_map: Optional[str] = typer.Option(
        None,
        "--category-map",
        metavar="MAP",
        help="model label → COCO category id: 0:1,1:3,... or a JSON file (default: label i is the i-th category by id, after background)",
    ),
    label_offset: Optional[str] = typer.Option(
        None,
        "--label-offset",
        metavar="K",
        help="label of the first category (default 1 for models with background class 0, else 0)",
    ),
    report: Optional[Path] = typer.Option(
        None,
        "--report",
        metavar="DIR",
        help="write results.json (merged into a benchmark's there), report.md, report.html and eval.json to DIR",
    ),
    save_predictions: Optional[Path] = typer.Option(
        None, "--save-predictions", metavar="FILE", help="write the COCO results JSON that was scored"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the evaluation as JSON on stdout"),
) -> None:
    """Measure accuracy (top-1/top-5, or COCO mAP) of every artifact on your data."""

    def run() -> None:
        import warnings

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from edgecv.evaluate.run import EvalObserver, evaluate, write_eval_report
        from edgecv.evaluate.run import save_predictions as save_preds
        from edgecv.models.spec import parse_resolution

        res = None
        if resolution is not None:
            res = _parse_flag(resolution, parse_resolution, "--resolution", "an integer or HxW")
        zoo = {
            "num_classes": _parse_flag(num_classes, int, "--num-classes", "an integer"),
            "width_mult": _parse_flag(width_mult, float, "--width-mult", "a number"),
            "resolution": res,
        }

        class Bar(EvalObserver):
            def __init__(self, progress: Progress):
                self.progress, self.tasks = progress, {}

            def start(self, label: str, total: int) -> None:
                self.tasks[label] = self.progress.add_task(label, total=total)

            def advance(self, label: str, n: int) -> None:
                self.progress.advance(self.tasks[label], n)

            def skipped(self, label: str, reason: str) -> None:
                self.progress.console.print(f"skipped {label}: {reason}", markup=False, soft_wrap=True)

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with warnings.catch_warnings(), Progress(*columns, console=console, transient=True) as progress:
            _quiet_library_warnings()
            result = evaluate(
                target,
                data,
                images=images,
                limit=_parse_flag(limit, int, "--limit", "an integer"),
                weights=weights,
                backends=_split_list(backend) or None,
                category_map=category_map,
                label_offset=_parse_flag(label_offset, int, "--label-offset", "an integer"),
                zoo_options=zoo,
                observer=Bar(progress),
            )
        doc = result.to_dict()
        written = write_eval_report(result, report) if report is not None else {}
        if save_predictions is not None:
            for i, path in enumerate(save_preds(result, save_predictions)):
                written[f"predictions {result.results[i].artifact}"] = path
        if as_json:
            emit_json(doc)
        else:
            out_console.print(_eval_table(doc))
            _print_notes(result.results)
        for message in result.warnings:
            console.print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)
        for name, path in written.items():
            console.print(f"{name}: {path}", markup=False)

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
        hint = (
            f" (see `edgecv {exc.ctx.command_path.split(' ', 1)[-1]} --help`)"
            if exc.ctx and " " in exc.ctx.command_path
            else ""
        )
        console.print(error_line(f"{exc.format_message()}{hint}"), soft_wrap=True)
        sys.exit(2)
    except (Abort, KeyboardInterrupt):
        console.print(error_line("interrupted"))
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
