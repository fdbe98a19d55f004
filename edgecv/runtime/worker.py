"""One benchmark job in a fresh process, so its peak RSS and cold start belong to that artifact alone.

Both sides of the protocol live here. The parent (:func:`run_in_subprocess`) starts
``python -m edgecv.runtime.worker`` and writes ``{"job": BenchJob, "settings": BenchSettings}`` as
JSON on its stdin; the worker (:func:`main`) writes JSON lines on stdout: ``progress`` events, one
``result`` per batch, or an ``error`` carrying edgecv's error type, which the parent raises again
as the same class so the CLI exits with the same code. Libraries that print to stdout in the worker
are redirected to stderr, so the event stream stays parseable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecv import errors
from edgecv.errors import EdgecvError, StageError

if TYPE_CHECKING:  # pragma: no cover
    from .benchmark import BenchObserver
    from .plan import BenchJob
    from .timing import BenchResult, BenchSettings


def _rebuild_error(payload: dict[str, Any]) -> EdgecvError:
    """The worker's typed error as the same class here."""
    cls = getattr(errors, payload.get("type", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, EdgecvError)):
        return StageError("benchmark", payload.get("message", "the benchmark worker failed"))
    exc = cls.__new__(cls)  # the subclasses' __init__ signatures differ; the message is what counts
    exc.args = (payload.get("message", ""),)
    return exc


def run_in_subprocess(job: "BenchJob", settings: "BenchSettings", observer: "BenchObserver") -> "list[BenchResult]":
    """Run ``job`` in a fresh interpreter and return its results (memory scope ``subprocess``)."""
    from .timing import BenchResult

    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    results: list[BenchResult] = []
    error: dict[str, Any] | None = None
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgecv.runtime.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
        stdin, stdout = proc.stdin, proc.stdout
        if stdin is None or stdout is None:  # pragma: no cover - both are PIPE above
            raise StageError("benchmark", "could not talk to the benchmark worker")
        try:
            stdin.write(json.dumps({"job": asdict(job), "settings": asdict(settings)}))
            stdin.close()
            for line in stdout:
                event = json.loads(line)
                if event["event"] == "progress":
                    observer.progress(job, event["batch"], event["done"], event["fraction"])
                elif event["event"] == "result":
                    results.append(BenchResult.from_dict(event["result"]))
                elif event["event"] == "error":
                    error = event
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if error is not None:
            raise _rebuild_error(error)
        if code != 0:
            stderr.seek(0)
            tail = [ln for ln in stderr.read().strip().splitlines() if ln.strip()][-1:] or ["no output"]
            raise StageError("benchmark", f"the worker timing {job.label} exited with code {code}: {tail[0]}")
    for result in results:
        result.memory["scope"] = "subprocess"
    return results


def main() -> int:
    events = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def emit(event: str, **payload: Any) -> None:
        events.write(json.dumps({"event": event, **payload}) + "\n")

    from .job import run_job
    from .memory import peak_rss_mb
    from .plan import BenchJob
    from .timing import BenchSettings

    request = json.load(sys.stdin)
    try:
        job = BenchJob(**request["job"])
        settings = BenchSettings(**request["settings"])
        results = run_job(
            job,
            settings,
            progress=lambda batch, done, fraction: emit("progress", batch=batch, done=done, fraction=fraction),
        )
    except EdgecvError as exc:
        emit("error", type=type(exc).__name__, message=str(exc))
        return exc.exit_code
    # The kernel updates its high-water mark lazily; a reading taken later can exceed it slightly.
    readings = [peak_rss_mb(), *(r.memory.get("rss_loaded_mb") for r in results)]
    peak = max((v for v in readings if v is not None), default=None)
    for result in results:
        result.memory["peak_rss_mb"] = peak
        emit("result", result=result.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
