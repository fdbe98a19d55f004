"""The benchmark's live progress in the terminal: one rich progress bar per artifact and batch."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from .benchmark import BenchJob, BenchObserver, BenchResult


def _batch_text(batch: int | None) -> str:
    return "auto" if batch is None else str(batch)


class RichObserver(BenchObserver):
    """One progress bar per artifact and batch; skipped artifacts are printed as they are found."""

    def __init__(self, console: Console):
        self.console = console
        self.progress_bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[calls]} calls"),
            # Redrawing competes with the timed backend for the same few cores: redraw rarely.
            TimeElapsedColumn(),
            console=console,
            transient=False,
            refresh_per_second=2,
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
