"""``python -m edgecv.runtime.worker``: time one benchmark job in a fresh process.

Reads ``{"job": BenchJob, "settings": BenchSettings}`` as JSON on stdin and writes JSON lines on
stdout: ``progress`` events, one ``result`` per batch, or an ``error`` carrying edgecv's error type
so the parent raises the same one. Libraries that print to stdout are redirected to stderr, so
the event stream stays parseable.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from edgecv.errors import EdgecvError


def main() -> int:
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def emit(event: str, **payload: Any) -> None:
        events.write(json.dumps({"event": event, **payload}) + "\n")

    from .benchmark import BenchJob, BenchSettings, run_job
    from .memory import peak_rss_mb

    request = json.load(sys.stdin)
    try:
        job = BenchJob(**request["job"])
        settings = BenchSettings(**request["settings"])
        results = run_job(job, settings, progress=lambda batch, done, fraction: emit(
            "progress", batch=batch, done=done, fraction=fraction
        ))
    except EdgecvError as exc:
        emit("error", type=type(exc).__name__, message=str(exc))
        return exc.exit_code
    # The kernel updates its high-water mark lazily; a reading taken later can exceed it slightly.
    peak = max((v for v in (peak_rss_mb(), *(r.memory.get("rss_loaded_mb") for r in results)) if v is not None), default=None)
    for result in results:
        result.memory["peak_rss_mb"] = peak
        emit("result", result=result.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
