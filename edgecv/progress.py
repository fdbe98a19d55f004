"""The one progress protocol of edgecv's long calls (export, benchmark, eval, calibration): a task
starts, advances, ends, and notes may come in between. The library only emits these events and stays
quiet by default; the CLI renders them (:mod:`edgecv.cli.progress`).

Each library call names its events in its own terms (an export's stage, a benchmark's job); those
observers subclass :class:`Observer` and by default turn their events into these four, so one
renderer of the four serves every command."""

from __future__ import annotations

from typing import Callable


class Observer:
    def start(self, task: str, total: float | None = None, detail: str = "") -> None:
        """``task`` begins; ``total`` is how far it counts (None: unknown)."""

    def advance(self, task: str, completed: float, total: float | None = None, detail: str = "") -> None:
        """``task`` has got to ``completed`` (of ``total``, when it changed or was unknown)."""

    def note(self, message: str) -> None:
        """Something the user should read, between the progress lines."""

    def end(self, task: str, status: str = "done") -> None:
        """``task`` is finished (``status``: done, reused, skipped, failed)."""


# A step of a long task, as calibration reports it: (what it is doing, done so far, out of).
StepProgress = Callable[[str, int, "int | None"], None]
