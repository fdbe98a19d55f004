"""How much does edgecv's runtime wrapper cost? MobileNetV2 1.0/224, batch 1.

* ONNX Runtime: edgecv's ``benchmark()`` (and a plain ``runtime(x)`` call, input checks included)
  against a bare ``session.run`` loop on an identically configured session. Target: medians within 3 %.
* OpenVINO: ``edgecv benchmark`` (its CLI, a process of its own like benchmark_app's) against
  OpenVINO's own ``benchmark_app`` (shipped with the openvino wheel) with the same settings: CPU, LATENCY hint, sync API, batch 1, same threads and
  precision. Target: medians within 5 %.

Methods are interleaved in short rounds (alternating which goes first), and the overhead is the
median over rounds of each round's ratio of medians: on a shared machine, load comes in bursts
that last seconds, and a ratio taken within one round sees the same burst on both sides.
Run: ``python benchmarks/wrapper_overhead.py [--rounds 15] [--iterations 150] [--check]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ORT_TARGET = 0.03
OPENVINO_TARGET = 0.05


def export_mobilenetv2(folder: Path) -> tuple[Path, Path]:
    """MobileNetV2 1.0/224 as static-batch ONNX and OpenVINO IR in ``folder``."""
    import openvino as ov
    import torch

    import edgecv

    model = edgecv.create_model("mobilenetv2").eval()
    onnx_path, xml_path = folder / "mobilenetv2.onnx", folder / "mobilenetv2.xml"
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.randn(1, 3, 224, 224),),
            str(onnx_path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
        )
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return onnx_path, xml_path


def _bare_ort_loop(session: Any, feed: dict[str, np.ndarray], warmup: int, iterations: int) -> list[int]:
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        session.run(None, feed)
        samples.append(time.perf_counter_ns() - start)
    return samples


def _checked_call_loop(runtime: Any, x: np.ndarray, warmup: int, iterations: int) -> list[int]:
    for _ in range(warmup):
        runtime(x)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        runtime(x)
        samples.append(time.perf_counter_ns() - start)
    return samples


def measure_onnxruntime(
    onnx_path: Path, *, rounds: int, iterations: int, warmup: int, threads: int | None
) -> dict[str, Any]:
    import onnxruntime as ort

    from edgecv.runtime import load
    from edgecv.runtime.benchmark import benchmark

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    per_round: dict[str, list[float]] = {"bare": [], "edgecv": [], "edgecv_checked": []}
    with load(onnx_path, threads=threads, device="cpu") as runtime:
        for r in range(rounds):
            order = ["bare", "edgecv", "edgecv_checked"]
            for method in order if r % 2 == 0 else order[::-1]:
                if method == "bare":
                    ms = [s / 1e6 for s in _bare_ort_loop(session, {"input": x}, warmup, iterations)]
                elif method == "edgecv":
                    ms = benchmark(runtime, warmup=warmup, iterations=iterations).samples_ms
                else:
                    ms = [s / 1e6 for s in _checked_call_loop(runtime, x, warmup, iterations)]
                per_round[method].append(statistics.median(ms))
    return {
        "medians_ms": {k: statistics.median(v) for k, v in per_round.items()},
        "per_round_ms": per_round,
        "overhead": _median_ratio(per_round["edgecv"], per_round["bare"]) - 1,
        "overhead_checked": _median_ratio(per_round["edgecv_checked"], per_round["bare"]) - 1,
        "target": ORT_TARGET,
        "calls_per_method": rounds * iterations,
    }


def _median_ratio(ours: list[float], reference: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(ours, reference))


_MEDIAN_LINE = re.compile(r"Median:\s*([0-9.]+)\s*(ms|us)")


def benchmark_app_median(xml_path: Path, *, iterations: int, threads: int | None, precision: str | None) -> float:
    """Median latency (ms) that OpenVINO's benchmark_app reports for a sync, latency-hint run."""
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    cmd = [exe, "-m", str(xml_path), "-d", "CPU", "-api", "sync", "-b", "1", "-niter", str(iterations)]
    # benchmark_app refuses -nthreads with a hint; the LATENCY hint means one stream, so spell that out.
    cmd += ["-hint", "latency"] if threads is None else ["-hint", "none", "-nstreams", "1", "-nthreads", str(threads)]
    if precision is not None:
        cmd += ["-infer_precision", precision]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    if proc.returncode != 0:
        errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln] or [proc.stderr[-500:]]
        raise RuntimeError(f"benchmark_app failed: {errors[0]}")
    match = _MEDIAN_LINE.search(out)
    if match is None:
        raise RuntimeError(f"no median in benchmark_app's output:\n{out[-2000:]}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value


def edgecv_cli_median(
    xml_path: Path, *, iterations: int, warmup: int, threads: int | None, precision: str | None
) -> float:
    """Median latency (ms) of ``edgecv benchmark`` on the IR: a fresh process, as users run it, and
    as benchmark_app runs (measured in this script's process, which imported PyTorch to export the
    model, the same calls were 2–3 % slower: the comparison would have been about the process)."""
    cmd = [
        sys.executable,
        "-m",
        "edgecv.cli",
        "benchmark",
        str(xml_path),
        "--iterations",
        str(iterations),
        "--warmup",
        str(warmup),
        "--json",
    ]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if precision is not None:
        cmd += ["--precision", precision]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"edgecv benchmark failed: {proc.stderr.strip()[-500:]}")
    doc = json.loads(proc.stdout)
    return doc["results"][0]["latency"]["median_ms"]


def measure_openvino(
    xml_path: Path, *, rounds: int, iterations: int, warmup: int, threads: int | None, precision: str | None
) -> dict[str, Any]:
    from edgecv.runtime import load

    with load(xml_path, threads=threads, precision=precision) as runtime:
        ran = runtime.precision
    app, ours = [], []
    for r in range(rounds):
        steps = ["app", "edgecv"] if r % 2 == 0 else ["edgecv", "app"]
        for step in steps:
            if step == "app":
                app.append(benchmark_app_median(xml_path, iterations=iterations, threads=threads, precision=precision))
            else:
                ours.append(
                    edgecv_cli_median(
                        xml_path, iterations=iterations, warmup=warmup, threads=threads, precision=precision
                    )
                )
    return {
        "medians_ms": {"benchmark_app": statistics.median(app), "edgecv": statistics.median(ours)},
        "per_round_ms": {"benchmark_app": app, "edgecv": ours},
        "overhead": _median_ratio(ours, app) - 1,
        "precision": ran,
        "target": OPENVINO_TARGET,
    }


def run(
    rounds: int = 15,
    iterations: int = 150,
    warmup: int = 20,
    threads: int | None = None,
    precision: str | None = None,
    folder: Path | None = None,
) -> dict[str, Any]:
    from edgecv.sysinfo import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, xml_path = export_mobilenetv2(Path(folder or tmp))
        return {
            "machine": machine_info(),
            "model": "mobilenetv2 1.0/224, batch 1",
            "onnxruntime": measure_onnxruntime(
                onnx_path, rounds=rounds, iterations=iterations, warmup=warmup, threads=threads
            ),
            "openvino": measure_openvino(
                xml_path, rounds=rounds, iterations=iterations, warmup=warmup, threads=threads, precision=precision
            ),
        }


def _verdict(overhead: float, target: float) -> str:
    return f"{overhead:+.1%} (target within {target:.0%}: {'ok' if abs(overhead) <= target else 'OVER'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=150, help="timed calls per method per round")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--precision", choices=("f32", "bf16", "f16"), default=None, help="OpenVINO precision hint for both"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when an overhead is over its target")
    args = parser.parse_args(argv)
    figures = run(args.rounds, args.iterations, args.warmup, args.threads, args.precision)
    ort_f, ov_f = figures["onnxruntime"], figures["openvino"]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        m = figures["machine"]
        print(
            f"{figures['model']} on {m['cpu']} ({', '.join(m['flags'])}), {args.rounds} interleaved rounds; "
            "medians of per-round medians, overhead = median of per-round ratios"
        )
        print(
            f"ONNX Runtime: bare session.run {ort_f['medians_ms']['bare']:.3f} ms, "
            f"edgecv benchmark() {ort_f['medians_ms']['edgecv']:.3f} ms {_verdict(ort_f['overhead'], ORT_TARGET)}, "
            f"runtime(x) with input checks {ort_f['medians_ms']['edgecv_checked']:.3f} ms ({ort_f['overhead_checked']:+.1%})"
        )
        print(
            f"OpenVINO ({ov_f['precision']}): benchmark_app {ov_f['medians_ms']['benchmark_app']:.3f} ms, "
            f"edgecv benchmark (CLI) {ov_f['medians_ms']['edgecv']:.3f} ms {_verdict(ov_f['overhead'], OPENVINO_TARGET)}"
        )
    within = abs(ort_f["overhead"]) <= ORT_TARGET and abs(ov_f["overhead"]) <= OPENVINO_TARGET
    return 0 if within or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
