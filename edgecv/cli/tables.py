"""Tables that fit the terminal: the benchmark's results and comparison tables, read from results
documents (never from the runtime), and :class:`FittedTable`, which every command's tables use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from edgecv.report.compare import comparison_rows, difference_rows, numeric_columns, speedup_note
from edgecv.report.format import machine_line, results_columns, stability_notes, swept_threads
from edgecv.report.markdown import NUMERIC
from edgecv.report.recommendation_text import recommendation_lines

# Per column: one space of padding either side and its right border; plus the table's left border.
_COLUMN_FRAME = 3


@dataclass
class FittedTable:
    """A table that never cuts a value. Cells wrap between words, never inside one; where the
    console is too narrow even for that, the columns that matter least move to a further table,
    which repeats the ``keys`` columns so its rows can still be told apart."""

    columns: Sequence[tuple[str, str]]  # (key, header), in display order
    rows: list[dict[str, str]]
    keys: Sequence[str] = ("artifact",)
    priority: Sequence[str] = ()  # the other columns, most needed first (unlisted ones last)
    right: frozenset[str] = frozenset()  # right-justified columns
    title: str = ""
    caption: str = ""
    notes: Sequence[str] = ()

    def word_width(self, key: str, header: str) -> int:
        texts = [header, *(row[key] for row in self.rows)]
        return max((cell_len(word) for text in texts for word in text.split()), default=1)

    def line_width(self, key: str, header: str) -> int:
        return max(cell_len(text) for text in [header, *(row[key] for row in self.rows)])

    def parts(self, width: int) -> list[list[tuple[str, str]]]:
        """The columns of each table, in display order, packed into ``width`` by priority."""
        need = {k: self.word_width(k, h) + _COLUMN_FRAME for k, h in self.columns}
        rank = {k: i for i, k in enumerate(self.priority)}
        pending = sorted((k for k, _ in self.columns if k not in self.keys), key=lambda k: rank.get(k, len(rank)))
        base = 1 + sum(need[k] for k in self.keys if k in need)
        groups: list[set[str]] = []
        while pending or not groups:
            used, group, later = base, set(), []
            for key in pending:
                # The first column of a table goes in even when too wide: rich then folds it.
                if used + need[key] <= width or not group:
                    group.add(key)
                    used += need[key]
                else:
                    later.append(key)
            groups.append(group)
            pending = later
        return [[(k, h) for k, h in self.columns if k in self.keys or k in group] for group in groups]

    def widths(self, columns: Sequence[tuple[str, str]], width: int) -> list[int]:
        """Each column's width: its longest word at least, then what is left of ``width`` to the
        columns that wrap most (rich's own shrinking ignores minimum widths and cuts numbers)."""
        low = [self.word_width(k, h) for k, h in columns]
        high = [max(lo, self.line_width(k, h)) for lo, (k, h) in zip(low, columns)]
        sizes = list(low)
        spare = width - 1 - _COLUMN_FRAME * len(columns) - sum(sizes)
        while spare > 0:
            short = [i for i in range(len(sizes)) if sizes[i] < high[i]]
            if not short:
                break
            widest_need = max(short, key=lambda i: high[i] - sizes[i])
            sizes[widest_need] += 1
            spare -= 1
        return sizes

    def table(self, columns: Sequence[tuple[str, str]], width: int, first: bool, last: bool) -> Table:
        table = Table(
            title=Text(self.title if first else f"{self.title} (continued)") if self.title else None,
            title_justify="left",
            caption=Text(self.caption) if last and self.caption else None,
            caption_justify="left",
        )
        for (key, header), size in zip(columns, self.widths(columns, width)):
            table.add_column(
                Text(header),
                justify="right" if key in self.right else "left",
                width=size,
                overflow="fold",  # a last resort that keeps every character, unlike rich's "…"
            )
        for row in self.rows:
            table.add_row(*(Text(row[k]) for k, _ in columns))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        parts = self.parts(options.max_width)
        for i, columns in enumerate(parts):
            yield self.table(columns, options.max_width, first=i == 0, last=i == len(parts) - 1)
        for note in self.notes:
            yield Text(f"note: {note}")


# What a reader of the results needs first; the rest may move to a second table on a narrow console.
RESULTS_PRIORITY = (
    "backend",
    "precision",
    "median_ms",
    "p90_ms",
    "accuracy",
    "accuracy_delta",
    "speedup",
    "throughput",
    "fidelity",
    "size_mb",
    "intended_for",
)


def results_table(doc: dict[str, Any]) -> FittedTable:
    target = (doc.get("target") or {}).get("path", "")
    scenario = (doc.get("settings") or {}).get("scenario")
    columns, rows = results_columns(doc["results"])
    return FittedTable(
        columns=columns,
        rows=rows,
        keys=("artifact", "batch", "threads") if swept_threads(doc["results"]) else ("artifact", "batch"),
        priority=RESULTS_PRIORITY,
        right=frozenset(NUMERIC),
        title=f"{target} · {scenario}",
        caption=machine_line(doc),
        notes=stability_notes(doc["results"]),
    )


def recommendation_text(rec: dict[str, Any]) -> Text:
    """The recommendation under the results table: each pick, its alternatives indented, then the
    INT8 verdicts."""
    return Text("recommendation:\n" + "\n".join(f"  {line}" for line in recommendation_lines(rec)))


def comparison_table(comparison: dict[str, Any]) -> Group:
    """The results against the first run, then what differs between the runs."""
    columns, rows = comparison_rows(comparison)
    table = Table(
        title=Text(f"compared against {comparison['baseline']}"),
        title_justify="left",
        caption=speedup_note(comparison),
        caption_justify="left",
    )
    numeric = numeric_columns(columns)
    for key, header in columns:
        table.add_column(Text(header), justify="right" if key in numeric else "left")
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
