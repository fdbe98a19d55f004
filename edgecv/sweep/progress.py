"""A sweep's progress, apart from the executors so the command line can render it without
importing them (``edgecv`` starts on every command; the sweep's machinery loads only for a sweep)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecv.progress import Observer

if TYPE_CHECKING:  # pragma: no cover
    from .point import Point

SWEEP_TASK = "sweep"


class SweepObserver(Observer):
    """A sweep's progress as one task: points finished out of the total, with how many run and
    failed in its detail (a renderer adds the ETA)."""

    def __init__(self) -> None:
        self.total = self.done = self.failed = 0
        self.running: set[str] = set()

    def _detail(self) -> str:
        return f"{self.done} done · {len(self.running)} running · {self.failed} failed"

    def _update(self) -> None:
        self.advance(SWEEP_TASK, self.done + self.failed, detail=self._detail())

    def sweep_start(self, total: int, reused: int) -> None:
        self.total, self.done = total, reused
        self.start(SWEEP_TASK, total, self._detail())
        self._update()
        if reused:
            self.note(f"{reused} of {total} points already finished: reused")

    def point_stage(self, point: Point, stage: str) -> None:
        self.running.add(point.key)
        self._update()

    def point_done(self, point: Point) -> None:
        self.running.discard(point.key)
        self.done += 1
        self._update()

    def point_failed(self, point: Point, stage: str, message: str) -> None:
        self.running.discard(point.key)
        self.failed += 1
        self.note(f"{point.key}: {stage} failed: {message}")
        self._update()

    def sweep_end(self) -> None:
        self.end(SWEEP_TASK, "failed" if self.failed else "done")
