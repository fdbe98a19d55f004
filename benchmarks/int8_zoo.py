"""INT8 / FP32 speed of every classifier in the zoo, per backend, so a regression shows at once.

For each classification model (``edgecv.models.list_models``, task ``classification``):
``edgecv export NAME --int8`` into a temporary folder (random weights: speed does not depend on
them), then batch-1 synchronous latency of

* ORT FP32         ``model.onnx``                ORT INT8   ``model.int8.cpu.onnx`` (the CPU flavour)
* OpenVINO f32     ``openvino/model.xml``        OpenVINO INT8  ``openvino/model.int8.xml`` (NNCF)

timed in interleaved rounds (the order rotates each round, so drift in machine load hits all four
alike); each figure is the median over rounds of the per-round median. Printed: the CPU model and
its INT8-relevant flags, each engine's latency and INT8/FP32 per backend. Goal: ORT INT8 ≥ 1.6×
FP32 on a CPU with VNNI or AMX, ≥ 1.3× on an AVX2-only one.

    python benchmarks/int8_zoo.py
    python benchmarks/int8_zoo.py --models shufflenetv1,shufflenetv2 --rounds 9 --json zoo.json
    python benchmarks/int8_zoo.py --keep runs/zoo          # keep the exported run folders
    python benchmarks/int8_zoo.py --keep runs/zoo --reuse  # time them again without exporting
    python benchmarks/int8_zoo.py --cpu-time               # 1 thread, CPU time: for a machine others are using
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

THREADS = 2
ENGINES = (
    ("ort_fp32", "model.onnx"),
    ("ort_int8", "model.int8.cpu.onnx"),
    ("ov_f32", "openvino/model.xml"),
    ("ov_int8", "openvino/model.int8.xml"),
)
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")


def classifiers() -> list[str]:
    from edgecv.models import get_entry, list_models

    return [name for name in list_models() if get_entry(name).task == "classification"]


def export(name: str, folder: Path, reuse: bool = False) -> Path:
    run = folder / name
    if reuse and (run / "manifest.json").is_file():
        return run
    cmd = [sys.executable, "-m", "edgecv.cli", "export", name, "--int8", "--out", str(run), "--force"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"edgecv export {name} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return run


def ort_engine(path: Path, threads: int) -> Callable[[np.ndarray], Any]:
    import onnxruntime as ort

    from edgecv.int8_kernels import configure_onnxruntime

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    configure_onnxruntime(options, path)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def openvino_engine(path: Path, threads: int) -> Callable[[np.ndarray], Any]:
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        },
    )
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


def engines_in(run: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
    """A callable per engine present in ``run`` (ORT FP32/INT8, OpenVINO f32/INT8)."""
    engines = {}
    for key, rel in ENGINES:
        path = run / rel
        if path.is_file():
            engines[key] = (openvino_engine if path.suffix == ".xml" else ort_engine)(path, threads)
    return engines


def interleaved(
    engines: dict[str, Callable[[np.ndarray], Any]],
    x: np.ndarray,
    rounds: int,
    iterations: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median over rounds of each engine's per-round median latency (ms); the order rotates every
    round, so drift in machine load hits every engine alike."""
    for call in engines.values():
        for _ in range(warmup):
            call(x)
    per_round: dict[str, list[float]] = {k: [] for k in engines}
    order = list(engines)
    for r in range(rounds):
        for key in order[r % len(order) :] + order[: r % len(order)]:
            call, samples = engines[key], []
            for _ in range(iterations):
                start = clock()
                call(x)
                samples.append(clock() - start)
            per_round[key].append(statistics.median(samples) * 1e3)
    return {k: statistics.median(v) for k, v in per_round.items()}


def measure(
    run: Path, threads: int, rounds: int, iterations: int, warmup: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """Median latency (ms) per engine present in ``run``, on random input of its size."""
    spec = json.loads((run / "manifest.json").read_text()).get("input_spec") or {}
    height, width = spec.get("height", 224), spec.get("width", 224)
    x = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
    return interleaved(engines_in(run, threads), x, rounds, iterations, warmup, clock)


def ratio(figures: dict[str, float], fp32: str, int8: str) -> float | None:
    return figures[fp32] / figures[int8] if fp32 in figures and int8 in figures else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every classifier in the zoo)")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="export into this folder and keep it")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="1 thread, CPU time of the process instead of wall time: ratios that hold on a "
        "machine other work is using",
    )
    parser.add_argument("--reuse", action="store_true", help="with --keep: time the run folders already there")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    clock = time.perf_counter
    if args.cpu_time:
        args.threads, clock = 1, time.process_time

    from edgecv.sysinfo import machine_info

    info = machine_info()
    flags = [f for f in FLAGS if f in info["flags"]]
    print(
        f"CPU: {info['cpu']} ({info['arch']}), flags: {', '.join(flags) or 'none of ' + '/'.join(FLAGS)}; "
        f"{args.threads} threads, batch 1, {'CPU' if args.cpu_time else 'wall'} time, medians of "
        f"{args.rounds} interleaved rounds × {args.iterations} calls"
    )
    names = args.models.split(",") if args.models else classifiers()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="edgecv-int8-zoo-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        header = (
            f"{'model':<14} {'ORT fp32':>9} {'ORT int8':>9} {'ORT ×':>6}   {'OV f32':>8} {'OV int8':>8} {'OV ×':>6}"
        )
        print(header)
        print("-" * len(header))
        for name in names:
            try:
                figures = measure(
                    export(name, folder, args.reuse), args.threads, args.rounds, args.iterations, args.warmup, clock
                )
            except Exception as exc:  # noqa: BLE001 - one model failing must not hide the others' figures
                print(f"{name:<14} failed: {exc}")
                rows[name] = {"error": str(exc)}
                continue
            ort_x, ov_x = ratio(figures, "ort_fp32", "ort_int8"), ratio(figures, "ov_f32", "ov_int8")
            rows[name] = {
                **{k: round(v, 3) for k, v in figures.items()},
                "ort_int8_speedup": ort_x and round(ort_x, 2),
                "ov_int8_speedup": ov_x and round(ov_x, 2),
            }

            def ms(key: str, figures: dict[str, float] = figures) -> str:
                return f"{figures[key]:.2f}" if key in figures else "—"

            print(
                f"{name:<14} {ms('ort_fp32'):>9} {ms('ort_int8'):>9} {(f'{ort_x:.2f}' if ort_x else '—'):>6}   "
                f"{ms('ov_f32'):>8} {ms('ov_int8'):>8} {(f'{ov_x:.2f}' if ov_x else '—'):>6}",
                flush=True,
            )
    target = 1.6 if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags) else 1.3
    slow = [n for n, r in rows.items() if (r.get("ort_int8_speedup") or 0) < target]
    print(f"ORT INT8 goal on this CPU: ≥ {target}×; below it: {', '.join(slow) or 'none'}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cpu": info["cpu"],
                    "arch": info["arch"],
                    "flags": flags,
                    "threads": args.threads,
                    "clock": "process CPU time" if args.cpu_time else "wall",
                    "rounds": args.rounds,
                    "iterations": args.iterations,
                    "target": target,
                    "models": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
