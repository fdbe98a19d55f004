"""Stand-ins for the board's tools (trtexec, nvpmodel, jetson_clocks, tegrastats, edgecv) that the
bundle's scripts call, written into a bin folder that goes first on PATH.

The fake trtexec knows which options each TensorRT major has (``samples/common/sampleOptions.cpp``
of 8.6, 10.3 and 11.1): an option the version lacks fails the run as trtexec does ("Unknown option"),
so a script that passes ``--fp16`` to TensorRT 11 or ``--stronglyTyped`` to 8.6 fails its test.
Every call's argv is appended to ``$FAKE_LOG`` as one JSON line.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

TRTEXEC = r"""#!@@PYTHON@@
import json, os, sys
args = sys.argv[1:]
version = os.environ.get("FAKE_TRT_VERSION", "10.3.0")
major, minor, patch = (int(p) for p in version.split(".")[:3])
packed = major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch
tag = f"[TensorRT v{packed}]" + (" [b12]" if major >= 11 else "")
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({"tool": "trtexec", "version": version, "args": args}) + "\n")
print(f"&&&& RUNNING TensorRT.trtexec {tag} # trtexec " + " ".join(args))
if "--help" in args:
    print("=== Model Options ===")
    sys.exit(0)
common = {"onnx", "saveEngine", "loadEngine", "timingCacheFile", "memPoolSize", "skipInference", "minShapes",
          "optShapes", "maxShapes", "shapes", "useDLACore", "allowGPUFallback", "warmUp", "duration", "iterations"}
per_major = {
    8: {"fp16", "int8", "useCudaGraph", "noDataTransfers"},
    10: {"fp16", "int8", "stronglyTyped", "useCudaGraph", "noDataTransfers"},
    11: {"stronglyTyped", "useCudaGraph", "noDataTransfers", "includeDataTransfers", "noCudaGraph"},
}
known = common | per_major[major]
for a in args:
    name = a.lstrip("-").split("=")[0]
    if name not in known:
        print(f"[E] Unknown option: {a}")
        print(f"&&&& FAILED TensorRT.trtexec {tag}")
        sys.exit(1)
opts = dict(a.lstrip("-").split("=", 1) if "=" in a else (a.lstrip("-"), "") for a in args)
print("[I] === Device Information ===")
print("[I] Selected Device: Orin")
print("[I] Compute Capability: 8.7")
print(f"[I] TensorRT version: {version}")
if "saveEngine" in opts:
    with open(opts["saveEngine"], "wb") as f:
        f.write(b"plan from fake trtexec")
    if "timingCacheFile" in opts:
        with open(opts["timingCacheFile"], "ab") as f:
            f.write(b"x")
if "loadEngine" in opts:
    print("[I] Timing trace has 100 queries over 1.0 s")
    print("[I] === Performance summary ===")
    print("[I] Throughput: 100 qps")
    print("[I] Latency: min = 1 ms, max = 3 ms, mean = 2 ms, median = 2 ms, percentile(90%) = 2.5 ms, percentile(95%) = 2.7 ms, percentile(99%) = 2.9 ms")
    print("[I] GPU Compute Time: min = 0.9 ms, max = 2.9 ms, mean = 1.9 ms, median = 1.9 ms, percentile(90%) = 2.4 ms, percentile(95%) = 2.6 ms, percentile(99%) = 2.8 ms")
print(f"&&&& PASSED TensorRT.trtexec {tag}")
"""

SIMPLE = r"""#!/bin/sh
echo "{\"tool\": \"@@NAME@@\", \"args\": \"$*\"}" >> "$FAKE_LOG"
@@BODY@@
"""

# `edgecv benchmark` needs TensorRT; here it answers a fixed results document. Everything else is the real CLI.
EDGECV = r"""#!@@PYTHON@@
import json, os, subprocess, sys
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({"tool": "edgecv", "args": sys.argv[1:]}) + "\n")
if sys.argv[1] == "benchmark":
    name = os.path.basename(sys.argv[2]).replace("model.", "tensorrt-").replace(".engine", "")
    print(json.dumps({"schema": "edgecv.results/1", "machine": {"cpu": "ARMv8 Processor rev 1 (v8l)", "arch": "aarch64"},
                      "versions": {"edgecv": "0.1.0"}, "skipped": [],
                      "results": [{"artifact": name, "backend": "tensorrt", "scenario": "single-stream", "batch": 1,
                                   "latency": {"count": 200, "median_ms": 2.1, "p90_ms": 2.6}, "throughput_ips": 470.0}]}))
    sys.exit(0)
sys.exit(subprocess.call([sys.executable, "-m", "edgecv.cli", *sys.argv[1:]]))
"""


def write_tools(bin_dir: Path, *, with_edgecv: bool = False) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    tools = {
        "trtexec": TRTEXEC.replace("@@PYTHON@@", sys.executable),
        "nvpmodel": SIMPLE.replace("@@NAME@@", "nvpmodel").replace("@@BODY@@", 'echo "NV Power Mode: MAXN"\necho 0'),
        "jetson_clocks": SIMPLE.replace("@@NAME@@", "jetson_clocks").replace("@@BODY@@", 'echo "SOC family:tegra234"'),
        "tegrastats": SIMPLE.replace("@@NAME@@", "tegrastats").replace(
            "@@BODY@@", 'while true; do echo "RAM 2000/30000MB GR3D_FREQ 99%"; sleep 0.2; done'
        ),
    }
    if with_edgecv:
        tools["edgecv"] = EDGECV.replace("@@PYTHON@@", sys.executable)
    for name, text in tools.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def env_for(bin_dir: Path, log: Path, version: str, **extra: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {
        **{k: v for k, v in os.environ.items() if k not in ("TRTEXEC", "DLA_CORE", "WEAK_TYPING", "PRECISIONS")},
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_LOG": str(log),
        "FAKE_TRT_VERSION": version,
        "PYTHONPATH": root,
        **extra,
    }
