"""Which calibration method follows FP32 best, and what does each cost? MobileNetV2 1.0/224.

For each of minmax, entropy and percentile, in a fresh process (so peak memory is that method's):
calibrate on ``--size`` inputs, write both ONNX INT8 flavours, and measure against FP32 on the
held-out inputs. Prints the time of the range pass, the process's peak resident memory and the
fidelity of each flavour; the default method (``edgecv.calibration.DEFAULT_METHOD``) is the one
these figures favour.

Without ``--onnx`` the model is the zoo's MobileNetV2 with random weights whose BatchNorm
statistics are re-estimated on photographs (other crops than the calibration ones), so activations
have the ranges of a trained network; pass your trained model's simplified ONNX and ``--calib``
with your images for figures that mean more.

    python benchmarks/calibration_methods.py [--onnx model.onnx] [--calib photos/] [--size 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

METHODS = ("minmax", "entropy", "percentile")


def stand_in_model(folder: Path) -> Path:
    import torch
    from torch import nn

    import edgecv
    from edgecv.calibration import load_calibration
    from edgecv.export.onnx_export import export_onnx
    from edgecv.export.simplify import simplify_onnx

    torch.manual_seed(0)
    model = edgecv.create_model("mobilenetv2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        photos = load_calibration(None, model.input_spec, size=256, holdout=0, seed=123)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over every batch
    model.train()
    with torch.no_grad():
        x = torch.from_numpy(photos.calibration.array())
        for i in range(0, len(x), 32):
            model(x[i : i + 32])
    model.eval()
    export_onnx(model, model.input_spec, folder / "model.raw.onnx")
    simplify_onnx(folder / "model.raw.onnx", folder / "model.onnx")
    return folder / "model.onnx"


def worker(onnx_path: Path, out: Path, method: str, calib: str | None, size: int) -> None:
    import onnx

    from edgecv.calibration import load_calibration, quantize_run
    from edgecv.models.spec import InputSpec

    dims = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    spec = InputSpec(height=dims[2].dim_value, width=dims[3].dim_value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_calibration(calib, spec, size=size)
    out.mkdir(parents=True, exist_ok=True)
    result = quantize_run(onnx_path, out, data, method)
    print(
        json.dumps(
            {
                "ranges_s": result.timings_s["ranges"],
                "peak_rss_mb": result.peak_rss_mb,
                "calibration_inputs": data.report.calibration,
                "holdout_inputs": data.report.holdout,
                "fidelity": {k: v.to_dict() for k, v in result.fidelity.items()},
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, help="a simplified FP32 ONNX (default: MobileNetV2 stand-in)")
    parser.add_argument("--calib", help="calibration source (default: the scikit-image photographs)")
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.onnx, args.out, args.worker, args.calib, args.size)
        return 0

    from edgecv.sysinfo import machine_info

    rows = {}
    with tempfile.TemporaryDirectory(prefix="edgecv-methods-") as tmp:
        onnx_path = args.onnx or stand_in_model(Path(tmp))
        for method in args.methods.split(","):
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                method,
                "--onnx",
                str(onnx_path),
                "--out",
                f"{tmp}/{method}",
                "--size",
                str(args.size),
            ] + (["--calib", args.calib] if args.calib else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    machine = machine_info()
    first = next(iter(rows.values()))
    print(
        f"CPU: {machine['cpu']} ({' '.join(machine['flags'])}); {first['calibration_inputs']} calibration inputs, "
        f"fidelity on {first['holdout_inputs']} held-out inputs"
    )
    print(
        f"{'method':<11} {'ranges s':>8} {'peak RSS MB':>11}  {'flavour':<14} {'SQNR dB':>7} {'cosine':>8} {'top-1':>6} {'top-5':>6}"
    )
    for method, r in rows.items():
        for k, (name, f) in enumerate(r["fidelity"].items()):
            head = f"{method:<11} {r['ranges_s']:>8.1f} {r['peak_rss_mb']:>11.0f}" if k == 0 else " " * 32
            print(
                f"{head}  {name:<14} {f['sqnr_db']:>7.2f} {f['cosine']:>8.5f} {f['top1_agreement']:>6.3f} {f['top5_agreement'] or 0:>6.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
