"""Detectors: end-to-end ``edgecv export NAME --int8`` wall time, INT8 / FP32 latency per backend
with NMS inside the graph, and what NMS costs — on real photographs, since NMS time depends on what
the picture holds.

For each detector: ``edgecv export NAME --int8`` (timed, random weights) and ``edgecv export NAME
--no-nms`` into temporary folders, then batch-1 latency, interleaved in rounds as in
``int8_zoo.py``, of ORT FP32 / ORT INT8 (CPU flavour) / OpenVINO f32 / OpenVINO INT8 on scikit-image's
sample photographs preprocessed with the model's own input spec; the NMS share is
(FP32 with NMS − FP32 without) / FP32 with NMS. Goals: export with ``--int8``
within 60 s on 2 cores, ORT INT8 ≥ 1.5× ORT FP32 on a CPU with VNNI, NMS ≤ 10 % of FP32 latency.

    python benchmarks/int8_detectors.py
    python benchmarks/int8_detectors.py --models ssdlite --conf-thres 0.05 --json det.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from int8_zoo import FLAGS, THREADS, engines_in, interleaved, ort_engine, ratio  # noqa: E402

MODELS = {"ssdlite": [], "yolox": ["--variant", "nano"], "yolov3-tiny": []}


def export(name: str, extra: list[str], out: Path, conf: float | None) -> float:
    cmd = [sys.executable, "-m", "edgecv.cli", "export", name, *MODELS[name], *extra, "--out", str(out), "--force"]
    if conf is not None and "--no-nms" not in extra:
        cmd += ["--conf-thres", str(conf)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--conf-thres", type=float, default=None, help="baked into the NMS (default: the model's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from edgecv.artifact_metadata import input_spec_of
    from edgecv.preprocess import photo_batch
    from edgecv.sysinfo import machine_info

    machine = machine_info()
    flags = [f for f in FLAGS if f in set(machine.get("flags") or [])]
    print(f"CPU: {machine.get('cpu')} [{', '.join(flags)}], {args.threads} threads")
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecv-det-") as tmp:
        for name in args.models.split(","):
            run, raw = Path(tmp) / name, Path(tmp) / f"{name}-no-nms"
            export_s = export(name, ["--int8"], run, args.conf_thres)
            export(name, ["--no-nms", "--backend", "onnxruntime"], raw, None)
            spec = input_spec_of(run / "model.onnx")
            x = photo_batch(spec, 1)
            engines = engines_in(run, args.threads)
            engines["ort_fp32_no_nms"] = ort_engine(raw / "model.onnx", args.threads)
            ms = interleaved(engines, x, args.rounds, args.iterations, args.warmup)
            stage = json.loads((run / "manifest.json").read_text())["stages"]["int8"]
            row = {
                "model": name,
                "resolution": [spec.height, spec.width],
                "export_int8_s": round(export_s, 1),
                "int8_stage_s": stage.get("wall_s"),
                "latency_ms": {k: round(v, 3) for k, v in ms.items()},
                "ort_int8_speedup": ratio(ms, "ort_fp32", "ort_int8"),
                "ov_int8_speedup": ratio(ms, "ov_f32", "ov_int8"),
                # The issues' goal compares the INT8 CPU artifact with ONNX Runtime FP32: both INT8 engines.
                "ov_int8_vs_ort_fp32": ratio(ms, "ort_fp32", "ov_int8"),
                "nms_share_of_fp32": (ms["ort_fp32"] - ms["ort_fp32_no_nms"]) / ms["ort_fp32"],
            }
            rows.append(row)
            print(
                f"{name} {spec.height}x{spec.width}: export --int8 {row['export_int8_s']} s; "
                f"ORT fp32 {ms['ort_fp32']:.2f} ms, int8 {ms['ort_int8']:.2f} ms ({row['ort_int8_speedup']:.2f}x); "
                f"OpenVINO f32 {ms['ov_f32']:.2f} ms, int8 {ms['ov_int8']:.2f} ms ({row['ov_int8_speedup']:.2f}x, "
                f"{row['ov_int8_vs_ort_fp32']:.2f}x ORT fp32); "
                f"NMS {row['nms_share_of_fp32']:.1%} of ORT fp32"
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "threads": args.threads, "models": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
