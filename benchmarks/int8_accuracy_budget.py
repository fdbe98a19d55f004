"""The INT8 accuracy budget on two trained networks: what each INT8 artifact loses against FP32
before and after ``--max-accuracy-drop``, which layers went back to float, and what they cost.

- digits: the committed MobileNetV2 α 0.35 at 32×32 (tests/fixtures, see
  benchmarks/make_digits_fixture.py), calibrated on the training split, budget 0.5 top-1 points on
  the 540 test digits and 24 shifted copies of each (13,500 inputs: 540 cannot resolve a point);
- shapes: the committed YOLOX-nano trained on `edgecv data shapes` (the `make demo` export at 160),
  calibrated on the training pictures, budget 1.0 mAP@[.5:.95] points on the validation pictures.

    python benchmarks/int8_accuracy_budget.py [--cases digits,shapes] [--keep DIR] [--json out.json] [--no-int8-speed]

The latency figures are medians of interleaved runs of each artifact before and after reverting,
on this machine under its current load: read the ratio, not the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks and tests

ROOT = Path(__file__).resolve().parents[1]
YOLOX_WEIGHTS = ROOT / "tests" / "fixtures" / "yolox_nano_shapes.pth"


def digits_case(work: Path) -> dict:
    import numpy as np

    import edgecv
    from benchmarks.make_digits_fixture import FIXTURE, RESOLUTION, WIDTH_MULT, digits_as_images, shifted_copies

    spec = edgecv.create_model("mobilenetv2", num_classes=10, width_mult=WIDTH_MULT, resolution=RESOLUTION).input_spec
    x_train, x_test, _, y_test = digits_as_images(spec)
    np.save(work / "digits-calib.npy", x_train)
    x_eval, y_eval = shifted_copies(x_test, y_test, spec)
    np.savez(work / "digits-eval.npz", inputs=x_eval, labels=y_eval)
    return {
        "model": "mobilenetv2",
        "out": work / "digits-run",
        "width_mult": WIDTH_MULT,
        "resolution": RESOLUTION,
        "num_classes": 10,
        "weights": str(FIXTURE),
        "calib": str(work / "digits-calib.npy"),
        "calib_size": 500,
        "max_accuracy_drop": 0.5,
        "eval_data": str(work / "digits-eval.npz"),
    }


def shapes_case(work: Path) -> dict:
    from edgecv.evaluate.shapes import generate_shapes

    data = work / "shapes"
    if not (data / "val" / "annotations.json").is_file():
        generate_shapes(data, images=500, size=160, seed=1)  # the `make demo` set
    return {
        "model": "yolox",
        "out": work / "shapes-run",
        "variant": {"variant": "nano"},
        "num_classes": 4,
        "resolution": 160,
        "weights": str(YOLOX_WEIGHTS),
        "conf_thres": 0.001,
        "labels": str(data / "train" / "annotations.json"),
        "calib": str(data / "train" / "images"),
        "max_accuracy_drop": 1.0,
        "eval_data": str(data / "val"),
    }


CASES = {"digits": digits_case, "shapes": shapes_case}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="digits,shapes")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--no-int8-speed", action="store_true", help="the CPU flavour starts all-INT8 (no speed plan)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from edgecv.export.pipeline import export
    from edgecv.sysinfo import machine_info

    work = args.keep or Path(tempfile.mkdtemp(prefix="edgecv-budget-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(f"CPU: {machine['cpu']}, flags {' '.join(machine['flags'])}; load {os.getloadavg()}")
    figures = {"machine": machine, "load_before": os.getloadavg(), "cases": {}}
    for name in args.cases.split(","):
        options = CASES[name](work)
        model, out = options.pop("model"), options.pop("out")
        variant = options.pop("variant", {})
        start = time.perf_counter()
        result = export(model, out=out, int8=True, variant=variant, int8_speed=not args.no_int8_speed, **options)
        info = result.manifest["stages"]["int8"]["info"]
        budget = info["accuracy_budget"]
        figures["cases"][name] = {
            "max_drop": budget["max_drop"],
            "data": budget["data"],
            "artifacts": budget["artifacts"],
            "int8_stage_s": info["timings_s"],
            "wall_s": round(time.perf_counter() - start, 1),
            "load_after": os.getloadavg(),
        }
        print(f"\n{name}: {model}, budget {budget['max_drop']:g} {budget['data']['metric']} points")
        print(f"{'artifact':15} {'FP32':>7} {'before':>7} {'after':>7} {'held':>5} {'reverted':>8}  latency ms")
        for artifact, o in budget["artifacts"].items():
            latency = o["latency_ms"]
            cost = (
                "-" if not latency else f"{latency['before']:.3f} -> {latency['after']:.3f} ({latency['ratio']:.2f}x)"
            )
            print(
                f"{artifact:15} {o['fp32']:7.2f} {o['drop_before']:+7.2f} {o['drop_after']:+7.2f} "
                f"{'yes' if o['reached'] else 'NO':>5} {len(o['reverted']):8d}  {cost}"
            )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0 if all(o["reached"] for c in figures["cases"].values() for o in c["artifacts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
