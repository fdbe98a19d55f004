"""Typed exceptions of edgecv.

Two families, because the CLI maps them to different exit codes:

* :class:`UserInputError` (exit code 2): something the user asked for or handed in is wrong
  (unknown model, bad option value, missing/corrupt weights, unusable calibration data, a shape
  mismatch). They subclass :class:`ValueError` so library callers can catch them idiomatically.
* :class:`StageError` (exit code 1): a stage of the pipeline failed on valid input (the ONNX
  exporter crashed, verification against PyTorch was above tolerance).
"""

from __future__ import annotations


class EdgecvError(Exception):
    """Base class of every error edgecv raises on purpose."""

    exit_code = 1


class UserInputError(EdgecvError, ValueError):
    """The user's input is invalid; the message says what to change."""

    exit_code = 2


class UnknownModelError(UserInputError):
    def __init__(self, name: str, suggestions: list[str] | None = None):
        self.name = name
        self.suggestions = list(suggestions or [])
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown model '{name}'{hint} (see `edgecv models`)")


class InvalidOptionError(UserInputError):
    """An option value is outside what the model or stage accepts."""


class WeightsError(UserInputError):
    """Weights are missing, unreadable, or do not fit the model."""


class CalibrationDataError(UserInputError):
    """Calibration data is missing, empty, unreadable or of the wrong shape."""


class InputMismatchError(UserInputError):
    """An array handed to a runtime does not match the model's input (shape or dtype)."""


class ArtifactError(UserInputError):
    """A path is not an artifact edgecv can load (missing, unknown kind, corrupt)."""


class BackendUnavailableError(UserInputError):
    """A backend was asked for but its package (or device) is not present."""

    def __init__(self, backend: str, package: str | None = None, reason: str | None = None):
        self.backend = backend
        self.package = package
        msg = f"backend '{backend}' is not available"
        if reason:
            msg += f": {reason}"
        if package:
            msg += f" (install it with `pip install {package}`)"
        super().__init__(msg)


class OutputPathError(UserInputError):
    """The output location is a file, not writable, or otherwise unusable."""


class StageError(EdgecvError):
    """A pipeline stage failed on valid input."""

    exit_code = 1

    def __init__(self, stage: str, message: str):
        self.stage = stage
        super().__init__(f"stage '{stage}' failed: {message}")


class VerificationError(StageError):
    """An artifact's outputs differ from PyTorch's beyond tolerance."""

    def __init__(self, stage: str, message: str, figures: dict | None = None):
        self.figures = figures or {}
        super().__init__(stage, message)
