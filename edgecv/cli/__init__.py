"""The ``edgecv`` command. Thin: parses flags, calls the library, renders the result.

One module per command group; importing them registers their commands on :data:`app` in the order
``edgecv --help`` lists them. Errors a user can cause are :class:`edgecv.errors.UserInputError` and
leave with exit code 2 and a one-line message; a failing stage leaves with exit code 1. No traceback
reaches the user unless ``EDGECV_DEBUG=1`` is set.
"""

# The order of these imports is the order `edgecv --help` lists the commands in.
from edgecv.cli.common import app, main  # isort: skip
from edgecv.cli import models, export, benchmark, deploy, predict, data, evaluate, sweep  # isort: skip  # noqa: E402

__all__ = ["app", "main"]
