"""The digits classifier through `edgecv eval`: the top-1 the command reports on an ImageFolder of
the held-out split equals the top-1 computed here directly from the same artifacts, and the INT8
rows carry their drop against the run's FP32 artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import edgecv
from benchmarks.make_digits_fixture import FIXTURE, WIDTH_MULT
from edgecv.models.spec import InputSpec
from edgecv.preprocess import preprocess
from edgecv.runtime import load
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
RESOLUTION = 32
# The pictures are written at the network's size, and "resize" is then the identity: the only
# difference between the PNGs and the tensors is the uint8 rounding, which both sides share.
SPEC = InputSpec(height=RESOLUTION, width=RESOLUTION, resize="resize")


def write_split(root, images, labels):
    for i, (img, label) in enumerate(zip(images, labels)):
        grey = Image.fromarray((img * (255.0 / 16.0)).round().astype(np.uint8))
        grey = grey.resize((RESOLUTION, RESOLUTION), Image.Resampling.BILINEAR).convert("RGB")
        folder = root / f"digit{label}"
        folder.mkdir(parents=True, exist_ok=True)
        grey.save(folder / f"{i:04d}.png")


def tensors(root):
    """Every picture of an ImageFolder preprocessed as edgecv does, with folder-order labels."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    xs, ys = [], []
    for index, name in enumerate(classes):
        for path in sorted((root / name).glob("*.png")):
            xs.append(preprocess(path, SPEC))
            ys.append(index)
    return np.stack(xs).astype(np.float32), np.asarray(ys)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    tmp = tmp_path_factory.mktemp("eval_digits")
    d = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        d.images, d.target, test_size=0.3, random_state=0, stratify=d.target
    )
    write_split(tmp / "train", x_train, y_train)
    write_split(tmp / "val", x_test, y_test)
    xt, _ = tensors(tmp / "train")
    # The committed digits checkpoint (benchmarks/make_digits_fixture.py), not a model trained here:
    # what a model learns follows the CPU's float kernels, and this test must not depend on the CPU.
    model = edgecv.create_model(
        "mobilenetv2", num_classes=10, width_mult=WIDTH_MULT, resolution=RESOLUTION, weights=FIXTURE
    )
    np.save(tmp / "calib.npy", xt)
    result = edgecv.export_model(
        model, tmp / "run", input_spec=SPEC, int8=True, calib=str(tmp / "calib.npy"), calib_size=300
    )
    return tmp, result


def test_eval_top1_matches_direct(digits):
    tmp, result = digits
    proc = run_cli("eval", tmp / "run", "--data", tmp / "val", "--json", "--report", tmp / "report")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    x_val, y_val = tensors(tmp / "val")
    manifest = json.loads((tmp / "run" / "manifest.json").read_text())
    rows = {r["artifact"]: r for r in doc["results"]}
    assert set(rows) == {a["name"] for a in manifest["artifacts"]}
    fp32 = rows["onnx-fp32"]["metrics"]["top1"]
    assert fp32 > 0.9, f"the digits model did not train (FP32 top-1 {fp32:.3f})"
    for a in manifest["artifacts"]:
        # FP32-labelled OpenVINO IR is scored computing in f32 (OpenVINO's default may be bf16).
        f32 = "f32" if a["backend"] == "openvino" and a["precision"] in ("fp32", "fp16") else None
        with load(tmp / "run" / a["path"], backend=a["backend"], precision=f32) as rt:
            preds = [rt.infer(x_val[i : i + 1])["logits"].argmax(1)[0] for i in range(len(x_val))]
        direct = float(np.mean(np.asarray(preds) == y_val))
        row = rows[a["name"]]
        assert row["metrics"]["images"] == len(y_val) == 540
        assert row["metrics"]["top1"] == pytest.approx(direct, abs=1e-12), a["name"]
        if a["precision"] == "int8":
            assert row["reference"] in ("onnx-fp32", "openvino-fp32")
            ref = rows[row["reference"]]["metrics"]["top1"]
            assert row["delta"]["top1"] == pytest.approx(direct - ref)
    # The report shows the accuracy next to the latency, and a later benchmark finds it.
    results = json.loads((tmp / "report" / "results.json").read_text())
    assert all(r["accuracy"]["metric"] == "top1" for r in results["results"])
    assert "Pareto front" in (tmp / "report" / "report.md").read_text()
    assert "Latency against accuracy" in (tmp / "report" / "report.html").read_text()
    recorded = json.loads((tmp / "run" / "eval.json").read_text())
    assert recorded["accuracy"]["onnx-fp32"]["value"] == fp32


def test_benchmark_report_shows_eval_accuracy(digits):
    tmp, _ = digits
    proc = run_cli(
        "benchmark",
        tmp / "run",
        "--iterations",
        "5",
        "--warmup",
        "1",
        "--in-process",
        "--backend",
        "onnxruntime",
        "--report",
        tmp / "bench",
        "--max-accuracy-drop",
        "100",  # wide: which artifact wins is this CPU's business, that eval's figures judge it is not
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    with_acc = [r for r in doc["results"] if r.get("accuracy")]
    assert {r["artifact"] for r in with_acc} >= {"onnx-fp32"}
    assert "accuracy" in (tmp / "bench" / "report.md").read_text()
    # The recommendation is judged on the figures eval recorded: every ONNX Runtime artifact it scored.
    rec = doc["recommendation"]
    assert rec["budget"]["source"] == "flag" and "onnx-int8-cpu" in rec["accuracy_measured_for"]
    [group] = rec["groups"]
    assert group["basis"] == "accuracy budget" and group["pick"]["drop_pts"] is not None
