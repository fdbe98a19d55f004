"""INT8 on a trained network: accuracy and fidelity of every INT8 artifact for each calibration method.

Trains MobileNetV2 α 0.35 at 32×32 on scikit-learn's handwritten digits (the model of the INT8
accuracy test), exports it, and for each of minmax, entropy and percentile quantizes it with
edgecv's calibration library on the training split, then reports, on the test split, top-1
accuracy against FP32 and output SQNR against FP32 of onnx-int8 (TensorRT flavour),
onnx-int8-cpu and openvino-int8. This is the measurement behind the default ``--calib-method``.

    python benchmarks/int8_digits.py [--epochs 25] [--methods minmax,percentile] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks and tests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--methods", default="minmax,entropy,percentile")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (reuses a trained checkpoint)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import numpy as np
    import torch

    import edgecv
    from benchmarks.make_digits_fixture import RESOLUTION, digits_as_images, train
    from edgecv.calibration import load_calibration, quantize_run
    from edgecv.sysinfo import machine_info
    from tests.export.test_int8_accuracy import predictions

    def accuracy(path, x, y, **kw):
        return float(np.mean(predictions(path, x, **kw) == y))

    work = args.keep or Path(tempfile.mkdtemp(prefix="edgecv-digits-"))
    work.mkdir(parents=True, exist_ok=True)
    model = edgecv.create_model("mobilenetv2", num_classes=10, width_mult=0.35, resolution=RESOLUTION)
    x_train, x_test, y_train, y_test = digits_as_images(model.input_spec)
    checkpoint = work / f"digits-e{args.epochs}.pth"
    if not checkpoint.exists():
        start = time.perf_counter()
        train(model, x_train, y_train, epochs=args.epochs)
        torch.save(model.state_dict(), checkpoint)
        print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    run = work / f"run-e{args.epochs}"
    edgecv.export_model(
        "mobilenetv2", out=run, width_mult=0.35, resolution=RESOLUTION, num_classes=10, weights=str(checkpoint)
    )
    np.save(work / "calib.npy", x_train)
    calib = load_calibration(str(work / "calib.npy"), model.input_spec, size=len(x_train))
    fp32 = accuracy(run / "model.onnx", x_test, y_test)

    print(
        f"CPU: {machine_info()['cpu']} ({' '.join(machine_info()['flags'])}); FP32 top-1 {fp32:.2%} "
        f"on {len(y_test)} test digits; {len(calib.calibration)} calibration inputs"
    )
    print(f"{'method':<11} {'artifact':<14} {'Δ top-1 pt':>10} {'SQNR dB':>8}")
    for method in args.methods.split(","):
        out = work / f"int8-{method}"
        out.mkdir(exist_ok=True)
        result = quantize_run(run / "model.onnx", out, calib, method, openvino_xml=run / "openvino" / "model.xml")
        for name, path in result.artifacts.items():
            backend = "openvino" if path.suffix == ".xml" else None
            delta = (accuracy(path, x_test, y_test, backend=backend) - fp32) * 100
            print(f"{method:<11} {name:<14} {delta:>+10.2f} {result.fidelity[name].headline.sqnr_db:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
