"""Is INT8 faster than FP32 on this CPU? MobileNetV2 1.0/224, batch 1, 2 threads.

Engines, timed in interleaved rounds (the order rotates each round, so drift in machine load hits
all alike), median and p90 latency of single synchronous inferences:

* ORT FP32            the simplified FP32 graph (``model.onnx``)
* ORT INT8 cpu        ``model.int8.cpu.onnx``: U8 activations / S8 weights Q/DQ, per-channel
* ORT INT8 tensorrt   ``model.int8.onnx``: the symmetric S8/S8 graph made for TensorRT
* ORT INT8 qoperator  (``--qoperator``) the same ranges as QOperator ops (QLinearConv …), for comparison
* OpenVINO f32        ``openvino/model.xml`` with INFERENCE_PRECISION_HINT=f32
* OpenVINO INT8       ``openvino/model.int8.xml`` (NNCF)

Target: the fastest INT8 artifact ≥ 1.6× ORT FP32. Speed-ups depend on the CPU (AVX2 only, AVX-512
VNNI, AMX), so the CPU model and its flags are printed with the figures.

    python benchmarks/int8_speed.py                   # builds the artifacts in a temporary folder
    python benchmarks/int8_speed.py --run runs/mobilenetv2-w1.0-r224   # an `edgecv export --int8` run
    python benchmarks/int8_speed.py --rounds 7 --iterations 200 --json speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # int8_zoo, beside this script

TARGET = 1.6
THREADS = 2


def build_run(folder: Path, calib_size: int, qoperator: bool) -> Path:
    """Export MobileNetV2 1.0/224 (random weights: speed does not depend on them) and quantize it
    with edgecv's calibration library on the default photographs."""
    import edgecv
    from edgecv.calibration import load_calibration, quantize_run
    from edgecv.export.onnx_export import export_onnx
    from edgecv.export.openvino import convert_to_ir
    from edgecv.export.simplify import simplify_onnx

    model = edgecv.create_model("mobilenetv2").eval()
    spec = model.input_spec
    export_onnx(model, spec, folder / "model.raw.onnx")
    simplify_onnx(folder / "model.raw.onnx", folder / "model.onnx")
    (folder / "openvino").mkdir(exist_ok=True)
    convert_to_ir(folder / "model.onnx", folder / "openvino" / "model.xml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calib = load_calibration(None, spec, size=calib_size)
    result = quantize_run(folder / "model.onnx", folder, calib, openvino_xml=folder / "openvino" / "model.xml")
    print("quantization steps (s):", {k: round(v, 2) for k, v in result.timings_s.items()}, file=sys.stderr)
    if qoperator:
        _quantize_qoperator(folder, result.method)
    return folder


def _quantize_qoperator(folder: Path, method: str) -> None:
    """U8/S8 per-channel QOperator graph from the run's cached ranges (ORT's other CPU format)."""
    from dataclasses import replace

    from onnxruntime.quantization import QuantFormat

    from edgecv.calibration.quantize_onnx import CPU, prepare_for_quantization, quantize_flavour

    flavour = replace(CPU, name="qoperator", filename="model.int8.qop.onnx", quant_format=QuantFormat.QOperator)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        prepare_for_quantization(folder / "model.onnx", prepared)
        quantize_flavour(
            prepared,
            folder / flavour.filename,
            flavour,
            ranges_path=folder / "calibration" / "ranges.json",
            method=method,
        )


def engines(run: Path) -> dict[str, Callable[[np.ndarray], Any]]:
    # The engine settings of the zoo benchmark (edgecv's ORT kernel settings, OpenVINO f32 latency).
    from int8_zoo import openvino_engine, ort_engine

    candidates = [
        ("ORT FP32", run / "model.onnx", ort_engine),
        ("ORT INT8 cpu", run / "model.int8.cpu.onnx", ort_engine),
        ("ORT INT8 tensorrt", run / "model.int8.onnx", ort_engine),
        ("ORT INT8 qoperator", run / "model.int8.qop.onnx", ort_engine),
        ("OpenVINO f32", run / "openvino" / "model.xml", openvino_engine),
        ("OpenVINO INT8", run / "openvino" / "model.int8.xml", openvino_engine),
    ]
    return {name: make(path, THREADS) for name, path, make in candidates if path.is_file()}


def measure(
    runs: dict[str, Callable], x: np.ndarray, rounds: int, iterations: int, warmup: int
) -> dict[str, list[float]]:
    names = list(runs)
    for name in names:
        for _ in range(warmup):
            runs[name](x)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            run = runs[name]
            for _ in range(iterations):
                start = time.perf_counter()
                run(x)
                samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    base = statistics.median(samples["ORT FP32"])
    for name, values in samples.items():
        med = statistics.median(values)
        out[name] = {"median_ms": med, "p90_ms": float(np.percentile(values, 90)), "speedup_vs_ort_fp32": base / med}
    if "OpenVINO f32" in out and "OpenVINO INT8" in out:
        out["OpenVINO INT8"]["speedup_vs_openvino_f32"] = (
            out["OpenVINO f32"]["median_ms"] / out["OpenVINO INT8"]["median_ms"]
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="an edgecv run folder with INT8 artifacts (default: build one)")
    parser.add_argument("--calib-size", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--qoperator", action="store_true", help="also time a QOperator U8/S8 graph")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from edgecv.sysinfo import machine_info

    with tempfile.TemporaryDirectory(prefix="edgecv-int8-speed-") as tmp:
        run = args.run or build_run(Path(tmp), args.calib_size, args.qoperator)
        if args.run and args.qoperator:
            _quantize_qoperator(run, json.loads((run / "calibration" / "report.json").read_text())["method"])
        runs = engines(run)
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
        results = summarize(measure(runs, x, args.rounds, args.iterations, args.warmup))

    machine = machine_info()
    print(f"CPU: {machine['cpu']}  flags: {' '.join(machine['flags'])}  threads: {THREADS}")
    print(f"MobileNetV2 1.0/224, batch 1, {args.rounds} interleaved rounds × {args.iterations} inferences")
    print(f"{'engine':<20} {'median ms':>10} {'p90 ms':>8} {'vs ORT FP32':>12}")
    for name, r in results.items():
        extra = f"   ({r['speedup_vs_openvino_f32']:.2f}× OpenVINO f32)" if "speedup_vs_openvino_f32" in r else ""
        print(f"{name:<20} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['speedup_vs_ort_fp32']:>11.2f}×{extra}")
    int8 = {k: v for k, v in results.items() if "INT8" in k}
    best = max(int8, key=lambda k: int8[k]["speedup_vs_ort_fp32"])
    ok = int8[best]["speedup_vs_ort_fp32"] >= TARGET
    print(
        f"fastest INT8: {best}, {int8[best]['speedup_vs_ort_fp32']:.2f}× ORT FP32 (target ≥ {TARGET}×): {'met' if ok else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine, "threads": THREADS, "results": results, "fastest_int8": best}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
