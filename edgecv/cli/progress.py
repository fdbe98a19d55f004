"""Progress in the terminal, the CLI's side of :mod:`edgecv.progress`: bars for the tasks of any
long call (a benchmark's artifacts, an eval's images), and the export's stage lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.status import Status
from rich.text import Text

from edgecv.progress import Observer
from edgecv.runtime.benchmark import BenchObserver

if TYPE_CHECKING:
    from edgecv.export.stages import Stage

# A benchmark's bars stay on screen, with the calls made so far; redrawing competes with the timed
# backend for the same few cores, so they redraw rarely.
BENCHMARK = dict(
    columns=(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn()),
    transient=False,
    refresh_per_second=2,
)
# An eval's bars count images and go once the table is printed.
EVAL = dict(
    columns=(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()),
    transient=True,
    refresh_per_second=10,
)


class RichBars(Observer):
    """One bar per task; notes are printed above the bars. Use as a context manager."""

    def __init__(self, console: Console, columns: Any, transient: bool, refresh_per_second: float):
        self.bars = Progress(*columns, console=console, transient=transient, refresh_per_second=refresh_per_second)
        self._tasks: dict[str, TaskID] = {}
        # Drawn from the first task on, so an error before any (a bad path) is one line, not a blank one too.
        self._started = False

    def __enter__(self) -> "RichBars":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._started:
            self.bars.stop()

    def start(self, task: str, total: float | None = None, detail: str = "") -> None:
        if not self._started:
            self.bars.start()
            self._started = True
        self._tasks[task] = self.bars.add_task(escape(task), total=total, detail=detail)

    def advance(self, task: str, completed: float, total: float | None = None, detail: str = "") -> None:
        if task in self._tasks:
            fields: dict[str, Any] = {"detail": detail} if detail else {}
            if total is not None:
                fields["total"] = total
            self.bars.update(self._tasks[task], completed=completed, **fields)

    def note(self, message: str) -> None:
        self.bars.console.print(message, markup=False, soft_wrap=True)

    def end(self, task: str, status: str = "done") -> None:
        if task in self._tasks:
            bar = self.bars.tasks[self._tasks[task]]
            if bar.total is not None:
                self.bars.update(self._tasks[task], completed=bar.total)


class BenchmarkBars(RichBars, BenchObserver):
    """A benchmark's jobs, each batch a bar (:class:`BenchObserver` names them)."""

    def __init__(self, console: Console):
        super().__init__(console, **BENCHMARK)


class RichReporter(Observer):
    """An export's stages: a spinner while one runs, then a line with its time (and, for the
    simplify and INT8 stages, what they did)."""

    def __init__(self, console: Console):
        self.console = console
        self._status: Status | None = None
        self._stage = ""

    def stage_start(self, stage: "Stage") -> None:
        self._stage = stage.name
        self._status = self.console.status(f"[bold]{escape(stage.name)}[/] {escape(stage.title)} …", spinner="dots")
        self._status.start()

    def progress(self, description: str, completed: int, total: int | None) -> None:
        if self._status is not None:
            count = f" {completed}/{total}" if total else (f" {completed}" if completed else "")
            # The stage stays named: a step of a long stage (INT8: minutes) says whose step it is.
            self._status.update(Text.assemble((self._stage, "bold"), f" · {description}{count} …"))

    def stage_end(self, stage: "Stage", status: str, wall_s: float, info: dict[str, Any]) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        mark = {"done": "[green]✓[/]", "reused": "[cyan]↺[/]"}.get(status, "[red]✗[/]")
        note = "reused from the earlier run" if status == "reused" else f"{wall_s:6.2f} s"
        extra = ""
        if stage.name == "simplify" and "nodes_before" in info:
            extra = f"  nodes {info['nodes_before']} → {info['nodes_after']}"
            if info.get("unfolded_nodes"):
                extra += f", {info['unfolded_nodes']} left unfolded (see manifest)"
        elif stage.name == "int8" and "timings_s" in info:
            from .export_tables import int8_note

            extra = "  " + int8_note(info)
        self.console.print(f" {mark} {escape(f'{stage.name:<14} {stage.title:<36} {note}{extra}')}", soft_wrap=True)

    def warn(self, message: str, category: type[Warning] = UserWarning) -> None:
        if self._status is not None:
            self._status.stop()
        # A Text, not markup: messages quote paths and package extras whose brackets rich would eat.
        self.console.print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)
        if self._status is not None:
            self._status.start()
