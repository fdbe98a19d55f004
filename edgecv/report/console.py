"""Terminal rendering with rich: the results and comparison tables (the benchmark's live progress is
:mod:`edgecv.runtime.rich_progress`; the report reads results documents, not the runtime)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .compare import comparison_rows, difference_rows, ratio_note
from .format import machine_line, results_columns
from .markdown import NUMERIC


def results_table(doc: dict[str, Any]) -> Table:
    target = (doc.get("target") or {}).get("path", "")
    scenario = (doc.get("settings") or {}).get("scenario")
    table = Table(
        title=Text(f"{target} · {scenario}"),
        title_justify="left",
        caption=Text(machine_line(doc)),
        caption_justify="left",
    )
    columns, rows = results_columns(doc["results"])
    for key, header in columns:
        table.add_column(
            header,
            justify="right" if key in NUMERIC else "left",
            no_wrap=key not in ("fidelity", "intended_for"),
            # wrapped, but never to a letter a line: "built for" explains a slow row in a few words
            min_width=14 if key in ("fidelity", "intended_for") else None,
        )
    for row in rows:
        table.add_row(*(Text(row[k]) for k, _ in columns))
    return table


def comparison_table(comparison: dict[str, Any]) -> Group:
    """The results against the first run, then what differs between the runs."""
    columns, rows = comparison_rows(comparison)
    table = Table(
        title=Text(f"compared against {comparison['baseline']}"),
        title_justify="left",
        caption=ratio_note(comparison),
        caption_justify="left",
    )
    for key, header in columns:
        table.add_column(
            Text(header), justify="right" if key.startswith(("median", "ratio")) or key == "batch" else "left"
        )
    for row in rows:
        table.add_row(*(Text(row[k]) for k, _ in columns))
    diff_columns, diff_rows = difference_rows(comparison)
    if not diff_rows:
        return Group(table, Text("same settings, machine and versions in every run"))
    diffs = Table(title="what differs between the runs", title_justify="left")
    for _key, header in diff_columns:
        diffs.add_column(Text(header))
    for row in diff_rows:
        diffs.add_row(*(Text(row[k]) for k, _ in diff_columns))
    return Group(table, diffs)
