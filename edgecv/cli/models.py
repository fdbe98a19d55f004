"""List the model zoo: `edgecv models`."""

from __future__ import annotations

from typing import Any, Optional

import typer

from edgecv.cli.common import (
    PlainUsage,
    app,
    emit_json,
    guarded,
    out_console,
    parse_flag,
)


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
    """``name`` itself where it names one model (kept as given: an alias such as
    ``mobilenet_v3_small`` also picks options), else every model whose name holds it or matches it
    as a glob; none at all is the registry's unknown-model error."""
    from edgecv.errors import UserInputError
    from edgecv.models.registry import list_models, resolve_name

    try:
        resolve_name(name)
        return [name]
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
        from edgecv.models.registry import check_resolution, check_width_mult

        wm = parse_flag(width_mult, float, "--width-mult", "a number")
        res = parse_flag(resolution, int, "--resolution", "an integer")
        if name is None:
            rows = describe_models(width_mult=wm, resolution=res)
        else:
            names = _matching_models(name)
            if wm is not None:
                wm = check_width_mult(wm)
            if res is not None:
                check_resolution(res)
            rows = [describe_model(n, wm, res) for n in names]
        if as_json:
            emit_json(rows)
        else:
            out_console.print(_models_table(rows))
            for row in rows:
                if row["note"]:
                    out_console.print(f"* {row['name']}: {row['note']}", markup=False)

    guarded(run)
