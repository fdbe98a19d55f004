"""How an export reports: :class:`Reporter`, the progress protocol's export events (a stage is a
task), and the warning log that routes every edgecv warning of one export to the reporter once and
into the manifest."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from edgecv.progress import Observer

from .stage import Stage


class Reporter(Observer):
    """An export's progress: each stage is a task, a long stage's steps advance it. The default
    stays quiet but still surfaces warnings through :mod:`warnings`."""

    _stage = ""

    def stage_start(self, stage: Stage) -> None:
        self._stage = stage.name
        self.start(stage.name, detail=stage.title)

    def stage_end(self, stage: Stage, status: str, wall_s: float, info: dict[str, Any]) -> None:
        self.end(stage.name, status)

    def warn(self, message: str, category: type[Warning] = UserWarning) -> None:
        warnings.warn(message, category, stacklevel=3)

    def progress(self, description: str, completed: int, total: int | None) -> None:
        self.advance(self._stage, completed, total, detail=description)


class RandomWeightsWarning(UserWarning):
    """No --weights: the engine runs, but its outputs mean nothing. Fine for timing only."""


def _edgecv_warning(category: type[Warning]) -> bool:
    return category.__module__.split(".", 1)[0] == "edgecv"


class WarningLog(Reporter):
    """Wraps the caller's reporter for one export: every edgecv warning, whether a stage reports it or
    library code raises it with :func:`warnings.warn` (the checkpoint's head re-initialised, small
    calibration sets), reaches the reporter once and the manifest's ``warnings``."""

    def __init__(self, reporter: Reporter):
        self.inner = reporter
        self.messages: list[str] = []
        self._forwarding = False

    def stage_start(self, stage: Stage) -> None:
        self.inner.stage_start(stage)

    def stage_end(self, stage: Stage, status: str, wall_s: float, info: dict[str, Any]) -> None:
        self.inner.stage_end(stage, status, wall_s, info)

    def progress(self, description: str, completed: int, total: int | None) -> None:
        self.inner.progress(description, completed, total)

    def warn(self, message: str, category: type[Warning] = UserWarning) -> None:
        if message in self.messages:
            return
        self.messages.append(message)
        self._forwarding = True
        try:
            self.inner.warn(message, category)
        finally:
            self._forwarding = False

    def record(self, messages: list[str]) -> None:
        """Messages already shown (a reused stage's) that the manifest must still list."""
        self.messages.extend(m for m in messages if m not in self.messages)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        # The caller's filters still decide what is shown at all (entering catch_warnings resets the
        # "once per location" registries, so each export reports its warnings afresh).
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def route(message, category, filename, lineno, file=None, line=None):
                if self._forwarding or not _edgecv_warning(category):
                    shown(message, category, filename, lineno, file, line)
                else:
                    self.warn(str(message), category)

            warnings.showwarning = route
            yield
