"""INT8 accuracy on real data: a zoo model trained on scikit-learn's handwritten digits, exported with
`edgecv export --int8` calibrated on the training split, loses at most 1 point of top-1 accuracy on
the test split in every INT8 artifact."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import edgecv
from edgecv.runtime import load

RESOLUTION = 32
pytestmark = pytest.mark.slow


def digits_as_images(spec):
    """8×8 digits (0..16) → RGB-like tensors at the model's resolution, normalised with its spec."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(spec.height, spec.width), mode="bilinear", align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    x = ((x - mean) / std).numpy().astype(np.float32)
    return train_test_split(x, d.target, test_size=0.3, random_state=0, stratify=d.target)


def train(model, x, y, epochs=25):
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(x) + 63) // 64))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def accuracy(path, x, y, **kw):
    with load(path, **kw) as rt:
        preds = [rt.infer(x[i : i + 1])["logits"].argmax(1)[0] for i in range(len(x))]
    return float(np.mean(np.asarray(preds) == y))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    model = edgecv.create_model("mobilenetv2", num_classes=10, width_mult=0.35, resolution=RESOLUTION)
    x_train, x_test, y_train, y_test = digits_as_images(model.input_spec)
    train(model, x_train, y_train)
    torch.save({"state_dict": model.state_dict(), "epoch": 25}, tmp / "digits.pth")
    np.save(tmp / "calib.npy", x_train)
    run = tmp / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "edgecv.cli", "export", "mobilenetv2", "--width-mult", "0.35",
         "--resolution", str(RESOLUTION), "--num-classes", "10", "--weights", str(tmp / "digits.pth"),
         "--int8", "--calib", str(tmp / "calib.npy"), "--calib-size", "500", "--out", str(run), "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return run, json.loads(proc.stdout), x_test, y_test


def test_int8_loses_at_most_one_point(digits_run):
    run, summary, x_test, y_test = digits_run
    fp32 = accuracy(run / "model.onnx", x_test, y_test)
    assert fp32 > 0.9, f"the digits model did not train (FP32 accuracy {fp32:.3f})"
    int8_artifacts = [a for a in summary["artifacts"] if a["precision"] == "int8"]
    assert {a["name"] for a in int8_artifacts} >= {"onnx-int8", "onnx-int8-cpu", "openvino-int8"}
    for a in int8_artifacts:
        acc = accuracy(a["path"], x_test, y_test, backend=a["backend"])
        assert acc >= fp32 - 0.01, f"{a['name']}: INT8 accuracy {acc:.3f} vs FP32 {fp32:.3f}"


def test_fidelity_report_written(digits_run):
    run, summary, _, _ = digits_run
    report = json.loads((run / "calibration" / "report.json").read_text())
    assert report, "empty calibration report"
    for a in summary["artifacts"]:
        if a["precision"] == "int8":
            f = a["fidelity"]
            assert f["top1_agreement"] > 0.9 and f["sqnr_db"] > 10, (a["name"], f)
