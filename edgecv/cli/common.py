"""What every ``edgecv`` command shares: the typer app, the two consoles, JSON output, flag parsing, and
the guard that turns edgecv's typed errors into one line and an exit code.

Errors a user can cause are :class:`edgecv.errors.UserInputError` and leave with exit code 2 and a
one-line message; a failing stage leaves with exit code 1. No traceback reaches the user unless
``EDGECV_DEBUG=1`` is set.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand

from edgecv.errors import EdgecvError, InvalidOptionError

app = typer.Typer(
    name="edgecv",
    help="Turn PyTorch vision models into verified, calibrated edge engines and measure them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _page_width(stream: Any) -> Optional[int]:
    # Piped output gets a wide page rather than rich's 80 columns, so tables and messages stay whole
    # in logs (a COLUMNS the user set still wins).
    return None if stream.isatty() or os.environ.get("COLUMNS") else 160


class PlainUsage(TyperCommand):
    """Usage lines read ``edgecv export [OPTIONS] MODEL``, as in man pages (newer typer writes a
    required argument as ``{MODEL}``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [re.sub(r"^\{(.*)\}(\.\.\.)?$", r"\1\2", p) for p in super().collect_usage_pieces(ctx)]


def _show_version(value: bool) -> None:
    if value:
        from edgecv.version import __version__

        sys.stdout.write(f"edgecv {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="print edgecv's version and exit"
    ),
) -> None:
    """Turn PyTorch vision models into verified, calibrated edge engines and measure them."""


# Human-readable output goes to stderr so `--json` output on stdout stays machine-readable.
console = Console(stderr=True, highlight=False, width=_page_width(sys.stderr))
out_console = Console(highlight=False, width=_page_width(sys.stdout))


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> Text:
    # A Text, not markup: messages quote the user's paths and `pip install edgecv[tensorrt]`, whose
    # brackets rich would otherwise eat as style tags.
    return Text.assemble(("error:", "bold red"), " ", message)


def fail(message: str, code: int) -> "typer.Exit":
    console.print(error_line(message), soft_wrap=True)
    return typer.Exit(code)


def guarded(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and turn edgecv's typed errors into a message and an exit code."""
    try:
        return fn()
    except EdgecvError as exc:
        if os.environ.get("EDGECV_DEBUG"):
            raise
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None


def print_notes(results: list[Any]) -> None:
    """Each distinct note of ``results`` once, under the table."""
    for note in dict.fromkeys(n for r in results for n in r.notes):
        console.print(f"note: {note}", markup=False, soft_wrap=True)


def parse_flag(text: Optional[str], convert: Callable[[str], Any], flag: str, expected: str) -> Any:
    # Parsed here rather than by click so a typo gives the one-line exit-2 message of every
    # other bad value instead of click's usage block.
    if text is None:
        return None
    try:
        return convert(text)
    except ValueError:
        from edgecv.errors import InvalidOptionError

        raise InvalidOptionError(f"{flag} must be {expected}, got {text!r}") from None


_NOISY_LIBRARIES = r"(torch|onnx|onnxruntime|onnxscript|onnxsim|nncf|openvino|numpy|PIL|matplotlib)(\.|$)"


def quiet_library_warnings() -> None:
    import warnings

    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", module=_NOISY_LIBRARIES)
    try:
        from torch.jit import TracerWarning

        warnings.filterwarnings("ignore", category=TracerWarning)
    except ImportError:  # pragma: no cover - torch without TorchScript
        pass


def parse_counts(text: Optional[str], flag: str) -> Optional[tuple[int, ...]]:
    """``"1,4,8"`` → ``(1, 4, 8)`` (repeats dropped); ``None`` or empty → ``None``."""
    if text is None or not text.strip():
        return None
    counts = []
    for part in text.split(","):
        try:
            counts.append(int(part.strip()))
        except ValueError:
            raise InvalidOptionError(f"{flag} takes positive integers separated by commas, got {text!r}") from None
    if any(c < 1 for c in counts):
        raise InvalidOptionError(f"{flag} takes positive integers separated by commas, got {text!r}")
    return tuple(dict.fromkeys(counts))


def parse_batches(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """``--batch``: one size or a sweep; ``None``: the scenario's batch."""
    return parse_counts(text, "--batch")


def split_list(text: Optional[str]) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def main() -> None:
    try:
        from click.exceptions import Abort, UsageError
    except ImportError:  # newer typer carries its own copy of click
        from typer._click.exceptions import UsageError  # type: ignore[no-redef]
        from typer.exceptions import Abort  # type: ignore[no-redef,assignment]
    try:
        rv = app(standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            console.print(exc.format_message(), highlight=False, markup=False)
            sys.exit(2)
        # A bad flag or value: one line and exit 2, not click's usage block.
        hint = (
            f" (see `edgecv {exc.ctx.command_path.split(' ', 1)[-1]} --help`)"
            if exc.ctx and " " in exc.ctx.command_path
            else ""
        )
        console.print(error_line(f"{exc.format_message()}{hint}"), soft_wrap=True)
        sys.exit(2)
    except (Abort, KeyboardInterrupt):
        console.print(error_line("interrupted"))
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
