"""`edgecv export`: flags built from ExportOptions' fields, the pipeline, the artifact table."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from edgecv.cli.common import (
    PlainUsage,
    app,
    console,
    emit_json,
    guarded,
    out_console,
    quiet_library_warnings,
)
from edgecv.export.options import ExportOptions, Flag


def _flags() -> list[tuple[str, str, Flag]]:
    """(parameter name, field name, flag) of each flag, in ExportOptions' field order."""
    found = []
    for f in dataclasses.fields(ExportOptions):
        for flag in f.metadata.get("flags", ()):
            found.append((flag.key or f.name, f.name, flag))
    return found


def _parameter(name: str, flag: Flag) -> inspect.Parameter:
    default = flag.default
    if flag.type is bool:
        default = bool(default)
    annotation = flag.type if default is not None else Optional[flag.type]
    option = typer.Option(default, *flag.names, metavar=flag.metavar, help=flag.help)
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=option, annotation=annotation)


def options_from_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The ExportOptions fields the parsed flags set; an absent flag leaves its field's default."""
    options: dict[str, Any] = {}
    for param, field_name, flag in _flags():
        value = values.get(param)
        if value is None:
            continue
        if flag.key is not None:
            options.setdefault(field_name, {})[flag.key] = value
        else:
            options[field_name] = flag.parse(value) if flag.parse else value
    return options


def _with_export_flags(fn: Callable[..., None]) -> Callable[..., None]:
    """Gives ``fn(model, out, as_json, **flags)`` a signature typer reads: MODEL, then one option per
    ExportOptions flag, then --out and --json, which belong to the command rather than the export."""
    own = list(inspect.signature(fn).parameters.values())
    model, rest = own[0], [p for p in own[1:] if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params = [model, *(_parameter(name, flag) for name, _, flag in _flags()), *rest]
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


@app.command("export", cls=PlainUsage)
@_with_export_flags
def export_cmd(
    model: str = typer.Argument(..., metavar="MODEL", help="zoo model name or alias (see `edgecv models`)"),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help="run folder (default runs/<model>[-<variant or backbone>]-w<α>-r<res>, + -b<N> or -dyn for other batch settings)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the manifest summary as JSON on stdout"),
    **flags: Any,
) -> None:
    """Export MODEL to verified, simplified ONNX (+ OpenVINO IR, + INT8 with --int8) in a run folder."""

    def run() -> None:
        import warnings

        from edgecv.cli.export_tables import artifact_table, budget_table, sensitivity_table
        from edgecv.cli.progress import RichReporter
        from edgecv.export.pipeline import export

        options = options_from_flags(flags)
        reporter = RichReporter(console)
        with warnings.catch_warnings():
            # edgecv's warnings reach the terminal and the manifest through the reporter; what the
            # libraries underneath warn about (deprecations, tracer notes) is not the user's to act on.
            quiet_library_warnings()
            result = export(model, out=out, reporter=reporter, **options)
        if as_json:
            emit_json(result.summary())
        else:
            out_console.print(artifact_table(result))
            ranking = sensitivity_table(result)
            if ranking is not None:
                out_console.print(ranking)
            budget = budget_table(result)
            if budget is not None:
                out_console.print(budget)
            if options.get("int8"):
                from edgecv.int8_kernels import describe_target

                out_console.print(describe_target(options.get("target_cpu", "auto")), markup=False)
            out_console.print(f"manifest: {result.run_dir / 'manifest.json'}", markup=False)

    guarded(run)
