"""Terminal rendering with rich: benchmark progress and the results and comparison tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from edgecv.runtime.benchmark import BenchJob, BenchObserver, BenchResult

from .compare import comparison_rows, difference_rows, ratio_note
from .format import machine_line, results_columns
from .markdown import NUMERIC


def _batch_text(batch: int | None) -> str:
    return "auto" if batch is None else str(batch)


class RichObserver(BenchObserver):
    """One progress bar per artifact and batch; skipped artifacts are printed as they are found."""

    def __init__(self, console: Console):
        self.console = console
        self.progress_bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[calls]} calls"),
            # Redrawing competes with the timed backend for the same few cores: redraw rarely.
            TimeElapsedColumn(), console=console, transient=False, refresh_per_second=2,
        )
        self._tasks: dict[tuple[str, int | None], TaskID] = {}
        # Started with the first job, so an error before any (a bad path) is one line, not a blank one too.
        self._started = False

    def __enter__(self) -> "RichObserver":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            self.progress_bar.stop()

    def job_start(self, job: BenchJob) -> None:
        if not self._started:
            self.progress_bar.start()
            self._started = True
        for batch in job.batches:
            self._tasks[(job.label, batch)] = self.progress_bar.add_task(
                f"{escape(job.label)} [dim]({escape(job.backend)}, batch {_batch_text(batch)})[/]", total=1.0, calls=0
            )

    def progress(self, job: BenchJob, batch: int | None, done: int, fraction: float) -> None:
        task = self._tasks.get((job.label, batch))
        if task is not None:
            self.progress_bar.update(task, completed=fraction, calls=done)

    def job_end(self, job: BenchJob, results: list[BenchResult]) -> None:
        for batch in job.batches:
            task = self._tasks.get((job.label, batch))
            if task is not None:
                self.progress_bar.update(task, completed=1.0)

    def skipped(self, label: str, reason: str) -> None:
        self.progress_bar.console.print(Text.assemble(("skipped", "yellow"), f" {label}: {reason}"), soft_wrap=True)


def results_table(doc: dict[str, Any]) -> Table:
    target = (doc.get("target") or {}).get("path", "")
    scenario = (doc.get("settings") or {}).get("scenario")
    table = Table(title=Text(f"{target} · {scenario}"), title_justify="left", caption=Text(machine_line(doc)),
                  caption_justify="left")
    columns, rows = results_columns(doc["results"])
    for key, header in columns:
        table.add_column(header, justify="right" if key in NUMERIC else "left", no_wrap=key not in ("fidelity", "intended_for"))
    for row in rows:
        table.add_row(*(Text(row[k]) for k, _ in columns))
    return table


def comparison_table(comparison: dict[str, Any]) -> Group:
    """The results against the first run, then what differs between the runs."""
    columns, rows = comparison_rows(comparison)
    table = Table(title=Text(f"compared against {comparison['baseline']}"), title_justify="left",
                  caption=ratio_note(comparison), caption_justify="left")
    for key, header in columns:
        table.add_column(Text(header), justify="right" if key.startswith(("median", "ratio")) or key == "batch" else "left")
    for row in rows:
        table.add_row(*(Text(row[k]) for k, _ in columns))
    diff_columns, diff_rows = difference_rows(comparison)
    if not diff_rows:
        return Group(table, Text("same settings, machine and versions in every run"))
    diffs = Table(title="what differs between the runs", title_justify="left")
    for key, header in diff_columns:
        diffs.add_column(Text(header))
    for row in diff_rows:
        diffs.add_row(*(Text(row[k]) for k, _ in diff_columns))
    return Group(table, diffs)
