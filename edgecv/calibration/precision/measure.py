"""What a precision plan measures, on the engine and thread count the artifact is for.

:class:`OrtCosts` profiles a graph per kernel with ONNX Runtime's profiler and times whole graphs
in interleaved rounds (the order rotates each round, so a change in the machine's load hits every
candidate alike). Each graph has one session: the one that was profiled is timed afterwards
(ending the profile switches the profiler off). Timing stops early once every candidate but the
fastest is clearly slower. A kernel's cost is its fastest profiled run and a graph's the median over
rounds of each round's fastest run: other work on the machine only ever makes a run slower.

A plan takes any object with the same two methods (:class:`CostSource`), so tests pass a table.
"""

from __future__ import annotations

import bisect
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

PROFILE_RUNS = 8
WARMUP_RUNS = 3


class CostSource(Protocol):
    threads: int
    clock: str  # what graph_times measures: "wall", or "thread CPU time" at one thread
    # engine: str, when present, names the engine measured ("onnxruntime" when absent)

    def kernel_times(self, model: Path, label: str) -> dict[str, float]:
        """ms per run of each kernel (ONNX Runtime) or layer (OpenVINO) the engine ran for ``model``
        (``label``: "fp32" or "int8"), named as the engine names it."""

    def graph_times(self, candidates: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """Whole-graph time of each candidate (a :class:`~.plan.Candidate`, whose ``path`` is the
        graph): ``{"typical_ms", "median_ms", "min_ms", "runs"}`` per candidate name; plans
        compare ``typical_ms`` (see :func:`typical_ms`)."""


def _feed(session) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feed = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
        feed[arg.name] = rng.random(shape, dtype=np.float32)
    return feed


class WholeGraphTimer:
    """What every cost source shares: ``threads``, and whole graphs timed in interleaved rounds.
    ``rounds``: at most this many rounds of ``iterations`` runs each; ``margin``: after
    ``min_rounds`` rounds a candidate this fraction slower than the best (:func:`typical_ms`) is
    timed no more. ``_now``: the clock :func:`interleaved_times` reads."""

    clock = "wall"
    _now = staticmethod(time.perf_counter)

    def __init__(self, threads: int, rounds: int = 7, iterations: int = 10, min_rounds: int = 3, margin: float = 0.05):
        self.threads = threads
        self.rounds, self.iterations, self.min_rounds, self.margin = rounds, iterations, min_rounds, margin

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _time(self, runs: Mapping[str, Callable[[], Any]]) -> dict[str, dict[str, float]]:
        return interleaved_times(runs, self.rounds, self.iterations, self.min_rounds, self.margin, self._now)


class OrtCosts(WholeGraphTimer):
    """ONNX Runtime CPU sessions with ``threads`` intra-op threads (the timing settings as in
    :class:`WholeGraphTimer`)."""

    def __init__(self, threads: int, **timing: Any):
        super().__init__(threads, **timing)
        # With one thread ONNX Runtime computes on the calling thread, whose CPU time is the latency
        # minus the time other work on the machine held the core; with more, wall time is all there is.
        if threads == 1:
            self.clock, self._now = "thread CPU time", time.thread_time
        self._sessions: dict[str, Any] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecv-profile-")

    def close(self) -> None:
        self._sessions.clear()
        self._tmp.cleanup()

    def _session(self, path: Path, profile: bool = False):
        key = str(path)
        if key not in self._sessions:
            import onnxruntime as ort

            from edgecv.int8_kernels import configure_onnxruntime

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            if profile:
                options.enable_profiling = True
                options.profile_file_prefix = str(Path(self._tmp.name) / path.stem)
            configure_onnxruntime(options, str(path))
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._sessions[key] = (session, _feed(session))
        return self._sessions[key]

    def kernel_times(self, model: Path, label: str = "") -> dict[str, float]:
        session, feed = self._session(model, profile=True)
        for _ in range(WARMUP_RUNS):
            session.run(None, feed)
        # The profiler records every run since the session started; warm-up runs are dropped below.
        for _ in range(PROFILE_RUNS):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
        starts = runs[WARMUP_RUNS:] if len(runs) > WARMUP_RUNS else runs[:1] or [0]
        per_run: dict[str, list[float]] = {}
        for e in events:
            name = e.get("name", "")
            if e.get("cat") == "Node" and name.endswith("_kernel_time") and e["ts"] >= starts[0]:
                run = bisect.bisect_right(starts, e["ts"]) - 1
                times = per_run.setdefault(name.removesuffix("_kernel_time"), [0.0] * len(starts))
                times[run] += e["dur"] / 1e3
        # Each kernel's fastest run: other work on the machine only ever makes a kernel slower.
        return {kernel: min(times) for kernel, times in per_run.items()}

    def graph_times(self, candidates: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        runs = {name: self._session(Path(c.path)) for name, c in candidates.items()}
        return self._time({name: functools.partial(session.run, None, feed) for name, (session, feed) in runs.items()})


def interleaved_times(
    runs: Mapping[str, Callable[[], Any]],
    rounds: int,
    iterations: int,
    min_rounds: int,
    margin: float,
    now: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, float]]:
    """Each of ``runs`` (one inference each) timed in at most ``rounds`` rounds of ``iterations``
    runs, the order rotating each round; after ``min_rounds`` rounds a graph ``margin`` slower than
    the best is timed no more (:func:`summarize` per graph)."""
    for run in runs.values():
        run()
    timed: dict[str, list[list[float]]] = {name: [] for name in runs}
    alive = list(runs)
    for r in range(rounds):
        for name in alive[r % len(alive) :] + alive[: r % len(alive)]:
            times = []
            for _ in range(iterations):
                start = now()
                runs[name]()
                times.append((now() - start) * 1e3)
            timed[name].append(times)
        if r + 1 >= min_rounds:
            alive = _still_close(alive, timed, margin)
            if len(alive) == 1:
                break
    return {name: summarize(r) for name, r in timed.items()}


def typical_ms(rounds: list[list[float]]) -> float:
    """The median over rounds of each round's fastest run: other work on the machine makes runs
    slower, never faster, so a round's fastest run is the graph's own cost as nearly as that round
    could see it, and the median over rounds keeps one lucky round from deciding. (Measured on a
    2-core machine at load 13–17: the median run took 8–15× the fastest.)"""
    return statistics.median(min(r) for r in rounds)


def summarize(rounds: list[list[float]]) -> dict[str, float]:
    flat = [t for r in rounds for t in r]
    return {
        "typical_ms": typical_ms(rounds),
        "median_ms": statistics.median(flat),
        "min_ms": min(flat),
        "runs": len(flat),
    }


def _still_close(names: list[str], rounds: Mapping[str, list[list[float]]], margin: float) -> list[str]:
    """The candidates still within ``margin`` of the best (by :func:`typical_ms`): the rest are
    clearly slower and need no more runs."""
    typical = {n: typical_ms(rounds[n]) for n in names}
    best = min(typical.values())
    return [n for n in names if typical[n] <= best * (1 + margin)]
