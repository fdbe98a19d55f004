"""Speed-aware precision of the ONNX Runtime CPU flavour: FP32 against all-INT8 against the planned
INT8 graph, at 1, 2 and 4 threads, with the INT8 stage's time with and without the plan.

For each model: export and simplify (random weights: speed does not depend on them), then
``quantize_run`` once without the plan (today's all-INT8 CPU flavour; its time includes the
activation ranges, computed once and cached) and once per thread count with the plan measured at
that count (ranges reused). Then, per thread count, ``model.onnx``, the all-INT8 graph and the
graph planned for that count are timed in interleaved rounds (edgecv's own
:class:`~edgecv.calibration.precision.OrtCosts`, no early stop): each figure is the median over
rounds of each round's fastest run, which a machine shared with other work disturbs least.

At 1 thread the figures are the calling thread's CPU time (ONNX Runtime computes on it), at more
wall time. On a machine with fewer cores than threads (4 threads on 2 cores) the figures show
oversubscription, not the engine.

    python benchmarks/int8_speed_plan.py
    python benchmarks/int8_speed_plan.py --models yolox-nano-416 --threads 2 --json plan.json --keep runs/plan
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

MODELS = {
    "mobilenetv2": ("mobilenetv2", {}, None),
    "shufflenetv2": ("shufflenetv2", {}, None),
    "yolox-nano-416": ("yolox", {"variant": "nano"}, 416),
}


def export(name: str, folder: Path) -> tuple[Path, Any, tuple[str, ...]]:
    import edgecv
    from edgecv.export.onnx_export import export_onnx
    from edgecv.export.simplify import simplify_onnx

    zoo, kwargs, resolution = MODELS[name]
    model = edgecv.create_model(zoo, **kwargs, **({"resolution": resolution} if resolution else {})).eval()
    spec = model.input_spec
    export_onnx(model, spec, folder / "model.raw.onnx")
    simplify_onnx(folder / "model.raw.onnx", folder / "model.onnx")
    return folder / "model.onnx", spec, tuple(getattr(model, "float_scopes", ()) or ())


def quantize(fp32: Path, folder: Path, calib, scopes, threads: int | None) -> tuple[Path, dict[str, Any]]:
    from edgecv.calibration import quantize_run

    result = quantize_run(
        fp32, folder, calib, flavours=("cpu",), float_scopes=scopes, speed_plan=threads is not None, threads=threads
    )
    out = folder / f"cpu-{threads or 'all'}.onnx"
    shutil.copyfile(result.artifacts["onnx-int8-cpu"], out)
    plan = result.flavours["cpu"].get("precision_plan")
    return out, {"timings_s": result.timings_s, "plan": plan}


def time_graphs(paths: dict[str, Path], threads: int, rounds: int, iterations: int) -> dict[str, dict[str, float]]:
    """Interleaved rounds, each figure the median over rounds of each round's fastest run
    (:func:`edgecv.calibration.precision.measure.typical_ms`), on the clock a plan uses: at 1
    thread the calling thread's CPU time (ONNX Runtime computes on it; other work on the machine
    does not inflate it), at more wall time."""
    import functools

    import numpy as np

    from edgecv.calibration.precision.measure import interleaved_times
    from edgecv.calibration.runners import ort_session

    clock = time.thread_time if threads == 1 else time.perf_counter
    runs = {}
    for k, path in paths.items():
        session = ort_session(path, threads)
        arg = session.get_inputs()[0]
        feed = {arg.name: np.random.default_rng(0).random(arg.shape, dtype=np.float32)}
        runs[k] = functools.partial(session.run, None, feed)
    # Every round runs: a benchmark drops no graph early.
    return interleaved_times(runs, rounds, iterations, min_rounds=rounds, margin=float("inf"), now=clock)


def run_model(name: str, folder: Path, threads: list[int], rounds: int, iterations: int, calib_size: int) -> dict:
    from edgecv.calibration import load_calibration

    folder.mkdir(parents=True, exist_ok=True)
    fp32, spec, scopes = export(name, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calib = load_calibration(None, spec, size=calib_size)
    base, base_info = quantize(fp32, folder, calib, scopes, None)
    planned = {t: quantize(fp32, folder, calib, scopes, t) for t in threads}
    stage_before = sum(base_info["timings_s"].values())
    out: dict[str, Any] = {"stage_s": {"all_int8": round(stage_before, 1)}, "threads": {}}
    for t in threads:
        after = planned[t][1]["timings_s"]
        # The planned run reused the cached ranges: its stage time is today's plus what planning added.
        extra = after.get("precision_plan_cpu", 0.0) - base_info["timings_s"].get("quantize_cpu", 0.0)
        out["stage_s"][f"planned_{t}"] = round(stage_before + extra, 1)
        times = time_graphs({"fp32": fp32, "all_int8": base, "planned": planned[t][0]}, t, rounds, iterations)
        plan = planned[t][1]["plan"]
        out["threads"][t] = {
            "ms": {k: round(v["typical_ms"], 3) for k, v in times.items()},
            "int8_vs_fp32": round(times["fp32"]["typical_ms"] / times["all_int8"]["typical_ms"], 3),
            "planned_vs_fp32": round(times["fp32"]["typical_ms"] / times["planned"]["typical_ms"], 3),
            "chosen": plan["chosen"],
            "float_blocks": len(plan["float_blocks"]),
            "blocks": plan["blocks_profiled"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--calib-size", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="keep the graphs in this folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import os

    from edgecv.sysinfo import machine_info

    threads = [int(t) for t in args.threads.split(",")]
    machine = machine_info()
    load = os.getloadavg()
    print(f"CPU: {machine['cpu']}  flags: {' '.join(machine['flags'])}  cores usable: {machine['cores']['usable']}")
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="edgecv-plan-") as tmp:
        root = args.keep or Path(tmp)
        for name in args.models.split(","):
            results[name] = r = run_model(name, root / name, threads, args.rounds, args.iterations, args.calib_size)
            print(f"\n{name}: INT8 stage {r['stage_s']['all_int8']} s all-INT8", end="")
            print("".join(f", {r['stage_s'][f'planned_{t}']} s planned at {t}" for t in threads))
            print(
                f"{'threads':>7} {'FP32 ms':>9} {'INT8 ms':>9} {'planned':>9} {'INT8/FP32':>10} {'planned/FP32':>13}  float"
            )
            for t, f in r["threads"].items():
                ms = f["ms"]
                print(
                    f"{t:>7} {ms['fp32']:>9.2f} {ms['all_int8']:>9.2f} {ms['planned']:>9.2f} "
                    f"{f['int8_vs_fp32']:>9.2f}× {f['planned_vs_fp32']:>12.2f}×  {f['float_blocks']}/{f['blocks']} blocks"
                )
    load = os.getloadavg()
    print(f"\nload average at end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
