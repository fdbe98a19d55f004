"""Read one trtexec log (TensorRT 8 to 11) into the figures of its run; :mod:`.trtexec_results` turns
runs into edgecv's benchmark results, so ``edgecv report cpu.json jetson.json`` compares a board with
a CPU.

What trtexec prints has kept one shape since TensorRT 8 (``samples/common/sampleReporting.cpp``)::

    &&&& RUNNING TensorRT.trtexec [TensorRT v100300] [b26] # trtexec --loadEngine=model.fp16.engine ...
    [I] TensorRT version: 10.3.0
    [I] Selected Device: Orin
    [I] Compute Capability: 8.7
    [I] Timing trace has 5230 queries over 3.00 s
    [I] === Performance summary ===
    [I] Throughput: 1743.2 qps
    [I] Latency: min = 0.55 ms, max = 0.71 ms, mean = 0.57 ms, median = 0.57 ms, percentile(90%) = 0.58 ms, ...
    [I] Enqueue Time: ...      [I] H2D Latency: ...      [I] GPU Compute Time: ...      [I] D2H Latency: ...

Up to TensorRT 8.5 the summary gives one percentile (``--percentile``, 99 by default:
``percentile(99%) = ...``) and an ``End-to-End Host Latency`` line; 8.6 on gives 90, 95 and 99.
A statistic the log does not give is absent (``None``), never zero.

The packed version in the RUNNING line is MAJOR·1000+MINOR·100+PATCH up to TensorRT 9 and
MAJOR·10000+MINOR·100+PATCH from 10 on (``NvInferRuntimeBase.h``); the ``[b…]`` build tag appears
from 11. Each line may carry a ``[date-time]`` prefix.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from edgecv.errors import ArtifactError
from edgecv.tensorrt.installation import parse_version

STAT_NAMES = {
    "Latency": "latency",
    "End-to-End Host Latency": "end_to_end",
    "Enqueue Time": "enqueue",
    "H2D Latency": "h2d",
    "GPU Compute Time": "gpu_compute",
    "D2H Latency": "d2h",
}
_PREFIX = r"^(?:\[[^\]]*\]\s*)*"  # "[11/28/2026-10:00:00] [I] " and the like
_STAT = re.compile(_PREFIX + "(" + "|".join(map(re.escape, STAT_NAMES)) + r"):\s*(min = .*)$")
_PAIR = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*([-+\d.eE]+)\s*ms")
_RUNNING = re.compile(r"&&&& RUNNING TensorRT\.trtexec \[TensorRT v(\d+)\](?:\s*\[b(\d+)\])?\s*#\s*(.*)$")
_FIELDS = {
    "throughput_qps": re.compile(_PREFIX + r"Throughput:\s*([\d.eE+-]+)\s*qps"),
    "trt_version": re.compile(_PREFIX + r"TensorRT version:\s*([\d.]+)"),
    "device": re.compile(_PREFIX + r"Selected Device:\s*(.+?)\s*$"),
    "compute_capability": re.compile(_PREFIX + r"Compute Capability:\s*([\d.]+)"),
    "trace": re.compile(_PREFIX + r"Timing trace has (\d+) queries over ([\d.]+) s"),
    "warmup_ms": re.compile(_PREFIX + r"Warmup completed \d+ queries over ([\d.]+) ms"),
    "walltime_s": re.compile(_PREFIX + r"Total Host Walltime:\s*([\d.eE+-]+)\s*s"),
    "gpu_total_s": re.compile(_PREFIX + r"Total GPU Compute Time:\s*([\d.eE+-]+)\s*s"),
}
_SUMMARY = re.compile(r"=== Performance summary ===")


def _stats(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, pct, value in _PAIR.findall(text):
        if pct:
            p = float(pct)
            out[f"p{p:g}_ms".replace(".", "_")] = float(value)
        else:
            out[f"{key}_ms"] = float(value)
    return out


def _command(line: str | None) -> dict[str, Any]:
    """What the trtexec command line says about the run (engine, batch, precision flags, modes)."""
    if not line:
        return {}
    try:
        argv = shlex.split(line)
    except ValueError:
        argv = line.split()
    opts: dict[str, Any] = {}
    for arg in argv[1:]:
        key, _, value = arg.lstrip("-").partition("=")
        opts[key] = value if value else True
    return opts


def parse_trtexec_log(text: str, source: str = "log") -> dict[str, Any]:
    """The figures of one trtexec run; :class:`ArtifactError` if ``text`` is not a trtexec log with a
    performance summary."""
    running = next((m for m in map(_RUNNING.search, text.splitlines()) if m), None)
    if not _SUMMARY.search(text) and running is None:
        raise ArtifactError(
            f"{source} is not a trtexec log (no '&&&& RUNNING TensorRT.trtexec' line, no performance summary)"
        )
    if not _SUMMARY.search(text):
        failed = "&&&& FAILED" in text
        raise ArtifactError(f"{source}: trtexec {'failed' if failed else 'stopped'} before its performance summary")
    run: dict[str, Any] = {"stats": {}}
    summary = text[_SUMMARY.search(text).start() :]
    for line in summary.splitlines():
        m = _STAT.search(line.strip())
        if m and STAT_NAMES[m.group(1)] not in run["stats"]:
            run["stats"][STAT_NAMES[m.group(1)]] = _stats(m.group(2))
    for key, pattern in _FIELDS.items():
        m = next((x for x in map(pattern.search, text.splitlines()) if x), None)
        if m is None:
            continue
        if key == "trace":
            run["queries"], run["trace_s"] = int(m.group(1)), float(m.group(2))
        elif key in ("device", "trt_version", "compute_capability"):
            run[key] = m.group(1)
        else:
            run[key] = float(m.group(1))
    if "latency" not in run["stats"] or "throughput_qps" not in run:
        raise ArtifactError(f"{source}: the trtexec performance summary lacks its Throughput or Latency line")
    if running:
        run.setdefault("trt_version", ".".join(map(str, parse_version("v" + running.group(1)))))
        run["command"] = running.group(3).strip()
    run["options"] = _command(run.get("command"))
    return run
