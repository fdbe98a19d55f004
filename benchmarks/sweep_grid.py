"""The sweep goal: a 3 × 4 × 2 MobileNetV2 grid (α 0.5/0.75/1.0 × resolution 128/160/192/224 ×
FP32/INT8, ONNX Runtime and OpenVINO) through `edgecv sweep`, from nothing and then rerun.

Targets on 2 cores: ≤ 15 min from nothing, ≤ 1 min rerun (every point reused). The machine's CPU,
core count and load average before and after each run are printed next to the times, since a
shared machine's load changes both.
Run: ``python benchmarks/sweep_grid.py [--out DIR] [--jobs 1] [--iterations 100] [--calib-size 300]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FROM_NOTHING_S = 15 * 60
RERUN_S = 60


def sweep(out: Path, jobs: int, iterations: int, calib_size: int) -> tuple[float, dict]:
    cmd = [
        sys.executable, "-m", "edgecv.cli", "sweep", "mobilenetv2",
        "--width-mult", "0.5,0.75,1.0", "--resolution", "128,160,192,224", "--precision", "fp32,int8",
        "--backend", "onnxruntime,openvino", "--threads", "1", "--iterations", str(iterations),
        "--calib-size", str(calib_size), "--max-latency", "10ms", "--jobs", str(jobs), "--out", str(out), "--json",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"edgecv sweep exited with {proc.returncode}")
    return wall, json.loads(proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="sweep folder (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--calib-size", type=int, default=300)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="edgecv-sweep-")) / "sweep"
    results = {}
    for name in ("from nothing", "rerun"):
        load_before = os.getloadavg()[0]
        wall, doc = sweep(out, args.jobs, args.iterations, args.calib_size)
        results[name] = wall
        print(
            f"{name}: {wall:.1f} s, {len(doc['rows'])} rows, {len(doc['failed'])} failed; "
            f"load average {load_before:.1f} → {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print(f"machine: {doc['machine'].get('cpu')} · {doc['machine'].get('cores')} · sweep folder {out}")
    print(f"recommended under {doc['constraint']}: {doc['recommendation']['choice']}")
    ok = results["from nothing"] <= FROM_NOTHING_S and results["rerun"] <= RERUN_S
    print(f"targets (≤ {FROM_NOTHING_S} s, ≤ {RERUN_S} s): {'met' if ok else 'missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
