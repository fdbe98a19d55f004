"""Read trtexec logs (TensorRT 8 to 11) into edgecv's benchmark results (``edgecv.results/1``), so
``edgecv report cpu.json jetson.json`` compares a board with a CPU.

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

The packed version in the RUNNING line is MAJOR·1000+MINOR·100+PATCH up to TensorRT 9 and
MAJOR·10000+MINOR·100+PATCH from 10 on (``NvInferRuntimeBase.h``); the ``[b…]`` build tag appears
from 11. Each line may carry a ``[date-time]`` prefix.
"""

from __future__ import annotations

import datetime as _dt
import re
import shlex
from pathlib import Path
from typing import Any

from edgecv.errors import ArtifactError
from edgecv.tensorrt_info import parse_version

STAT_NAMES = {
    "Latency": "latency",
    "Enqueue Time": "enqueue",
    "H2D Latency": "h2d",
    "GPU Compute Time": "gpu_compute",
    "D2H Latency": "d2h",
}
_PREFIX = r"^(?:\[[^\]]*\]\s*)*"  # "[11/28/2026-10:00:00] [I] " and the like
_STAT = re.compile(_PREFIX + r"(Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency):\s*(min = .*)$")
_PAIR = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\))\s*=\s*([-+\d.eE]+)\s*ms")
_RUNNING = re.compile(r"&&&& RUNNING TensorRT\.trtexec \[TensorRT v(\d+)\](?:\s*\[b(\d+)\])?\s*#\s*(.*)$")
_FIELDS = {
    "throughput_qps": re.compile(_PREFIX + r"Throughput:\s*([\d.eE+-]+)\s*qps"),
    "trt_version": re.compile(_PREFIX + r"TensorRT version:\s*([\d.]+)"),
    "device": re.compile(_PREFIX + r"Selected Device:\s*(.+?)\s*$"),
    "compute_capability": re.compile(_PREFIX + r"Compute Capability:\s*([\d.]+)"),
    "trace": re.compile(_PREFIX + r"Timing trace has (\d+) queries over ([\d.]+) s"),
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


def _batch(opts: dict[str, Any]) -> int:
    shapes = opts.get("shapes") or opts.get("optShapes")
    if isinstance(shapes, str):
        first = shapes.split(",")[0]
        dims = first.rpartition(":")[2].split("x")
        if dims and dims[0].isdigit():
            return int(dims[0])
    return int(opts.get("batch", 1)) if str(opts.get("batch", "1")).isdigit() else 1


def _precision(opts: dict[str, Any], name: str) -> str | None:
    for p in ("int8", "fp16", "fp32"):
        if f".{p}." in name or name.endswith(f".{p}"):
            return p
    if opts.get("int8"):
        return "int8"
    if opts.get("fp16"):
        return "fp16"
    return None


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


def _latency(stats: dict[str, float], count: int | None) -> dict[str, Any]:
    return {
        "count": count,
        "min_ms": stats.get("min_ms"),
        "mean_ms": stats.get("mean_ms"),
        "median_ms": stats.get("median_ms"),
        "p90_ms": stats.get("p90_ms"),
        "p95_ms": stats.get("p95_ms"),
        "p99_ms": stats.get("p99_ms"),
        "max_ms": stats.get("max_ms"),
        "std_ms": None,
        "outliers": 0,
    }


def _mode(opts: dict[str, Any], major: int) -> str:
    """Whether the timed latency includes host↔device copies (trtexec's defaults changed in 11)."""
    if major >= 11:  # 11: no transfers and CUDA graphs by default (sampleOptions.cpp)
        transfers = bool(opts.get("includeDataTransfers"))
        graph = not opts.get("noCudaGraph")
    else:
        transfers = not opts.get("noDataTransfers")
        graph = bool(opts.get("useCudaGraph"))
    return ("with transfers" if transfers else "GPU only") + (", CUDA graph" if graph else "")


def to_results(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """An ``edgecv.results/1`` document holding one result per parsed trtexec log."""
    from edgecv import __version__

    results = []
    first = runs[0][1]
    for source, run in runs:
        opts = run.get("options", {})
        engine = str(opts.get("loadEngine") or opts.get("saveEngine") or opts.get("onnx") or Path(source).stem)
        name = Path(engine).name
        precision = _precision(opts, name)
        major = parse_version(run.get("trt_version", "10"))[0]
        batch = _batch(opts)
        mode = _mode(opts, major)
        stats = run["stats"]
        label = f"tensorrt-{precision}" if precision else Path(name).stem
        results.append(
            {
                "artifact": f"{label} [{mode}]",
                "backend": "trtexec",
                "scenario": "single-stream" if batch == 1 else "offline",
                "batch": batch,
                "latency": _latency(stats["latency"], run.get("queries")),
                # trtexec's qps counts inferences of the whole batch.
                "throughput_ips": run["throughput_qps"] * batch,
                "samples_ms": [],
                "warmup": None,
                "path": engine,
                "device": run.get("device"),
                "precision": precision,
                "artifact_precision": precision,
                "intended_for": "tensorrt",
                "notes": [
                    f"trtexec {mode}; GPU compute median {fmt_ms(stats.get('gpu_compute', {}).get('median_ms'))}"
                ],
                "trtexec": {
                    "mode": mode,
                    "log": source,
                    "command": run.get("command"),
                    **{k: v for k, v in stats.items()},
                    "walltime_s": run.get("walltime_s"),
                    "gpu_total_s": run.get("gpu_total_s"),
                },
            }
        )
    device = first.get("device") or "unknown GPU"
    cc = first.get("compute_capability")
    return {
        "schema": "edgecv.results/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgecv_version": __version__,
        "target": {"path": runs[0][0], "kind": "trtexec-log", "model": None},
        "settings": {
            "scenario": results[0]["scenario"],
            "timer": "trtexec (CUDA events)",
            "percentiles": "trtexec's",
            "batches": sorted({r["batch"] for r in results}),
        },
        "machine": {
            "cpu": f"{device} GPU" + (f" (compute capability {cc})" if cc else ""),
            "arch": "trtexec",
            "gpu": device,
            "compute_capability": cc,
        },
        "versions": {"tensorrt": first.get("trt_version")},
        "results": results,
        "skipped": [],
    }


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} ms"


def import_logs(paths: list[Path]) -> dict[str, Any]:
    runs = []
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ArtifactError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise ArtifactError(f"{path} is not readable: {exc}") from None
        runs.append((str(path), parse_trtexec_log(text, str(path))))
    if not runs:
        raise ArtifactError("no trtexec log given")
    return to_results(runs)


def merge_results(doc: dict[str, Any], others: list[Path]) -> dict[str, Any]:
    """Add the results of ``edgecv benchmark`` documents (run on the same board) to ``doc``: one file
    holds trtexec's figures and edgecv's own for the same engines."""
    from edgecv.report.schema import read_results

    for path in others:
        other = read_results(path)
        doc["results"].extend(other["results"])
        doc["skipped"].extend(other.get("skipped") or [])
        machine = other.get("machine") or {}
        if machine.get("cpu"):
            # The board's CPU from edgecv's own record; the GPU from trtexec's.
            doc["machine"] = {
                **machine,
                "gpu": doc["machine"].get("gpu"),
                "compute_capability": doc["machine"].get("compute_capability"),
            }
        doc["versions"] = {**(other.get("versions") or {}), **{k: v for k, v in doc["versions"].items() if v}}
    return doc
