"""A small run folder built here, independently of the export pipeline: a tiny MobileNetV2 exported
to ONNX and OpenVINO IR, optionally a calibrated INT8 Q/DQ ONNX with real fidelity figures, and a
``manifest.json`` that follows ``edgecv.runfolder``'s schema."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

import edgecv
from edgecv.runfolder import MANIFEST_NAME, SCHEMA, ArtifactRecord, file_record
from edgecv.sysinfo import backend_versions, machine_info

WIDTH, RESOLUTION, CLASSES = 0.35, 64, 10


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return edgecv.create_model("mobilenetv2", width_mult=WIDTH, resolution=RESOLUTION, num_classes=CLASSES)


def random_batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, RESOLUTION, RESOLUTION)).astype(np.float32)


def export_onnx(model: torch.nn.Module, path: Path, *, dynamic_batch: bool) -> None:
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.from_numpy(random_batch(1)),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes=axes,
        )


def export_openvino(onnx_path: Path, xml_path: Path) -> None:
    import openvino as ov

    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)


def quantize_int8(onnx_path: Path, out_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"input": random_batch(1, seed=100 + i)} for i in range(8)])

        def get_next(self):
            return next(self._batches, None)

    quantize_static(
        str(onnx_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def fidelity(fp32_path: Path, int8_path: Path) -> dict[str, float]:
    """Top-1 agreement and SQNR of the INT8 graph against the FP32 one on random inputs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    fp32, int8 = (ort.InferenceSession(str(p), options) for p in (fp32_path, int8_path))
    x = random_batch(16, seed=7)
    ref = np.concatenate([fp32.run(None, {"input": x[i : i + 1]})[0] for i in range(16)])
    got = np.concatenate([int8.run(None, {"input": x[i : i + 1]})[0] for i in range(16)])
    noise = float(((ref - got) ** 2).sum())
    return {
        "top1_agreement": float((ref.argmax(1) == got.argmax(1)).mean()),
        "sqnr_db": float(10 * np.log10(float((ref**2).sum()) / max(noise, 1e-30))),
        "inputs": 16,
    }


def make_run_folder(root: Path, *, dynamic_batch: bool = False, int8: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    model = tiny_model()
    torch.save(model.state_dict(), root / "weights.pth")
    export_onnx(model, root / "model.onnx", dynamic_batch=dynamic_batch)
    export_openvino(root / "model.onnx", root / "openvino" / "model.xml")
    common = {"dynamic_batch": dynamic_batch, "batch": 1}
    records = [
        ArtifactRecord(
            name="onnx-fp32", path="model.onnx", format="onnx", backend="onnxruntime", precision="fp32", **common
        ),
        ArtifactRecord(
            name="openvino-fp32",
            path="openvino/model.xml",
            format="openvino",
            backend="openvino",
            precision="fp32",
            **common,
        ),
    ]
    if int8:
        quantize_int8(root / "model.onnx", root / "model.int8.cpu.onnx")
        records.append(
            ArtifactRecord(
                name="onnx-int8-cpu",
                path="model.int8.cpu.onnx",
                format="onnx",
                backend="onnxruntime",
                precision="int8",
                intended_for="onnxruntime",
                fidelity=fidelity(root / "model.onnx", root / "model.int8.cpu.onnx"),
                **common,
            )
        )
    files = ["model.onnx", "openvino/model.xml", "openvino/model.bin"] + (["model.int8.cpu.onnx"] if int8 else [])
    manifest = {
        "schema": SCHEMA,
        "created": "2026-01-01T00:00:00+00:00",
        "edgecv_version": edgecv.__version__,
        "model": {
            "name": "mobilenetv2",
            "num_classes": CLASSES,
            "width_mult": WIDTH,
            "resolution": RESOLUTION,
            "weights": str((root / "weights.pth").resolve()),
            "weights_sha256": None,
            "random_weights": False,
        },
        "options": {"batch": 1, "dynamic_batch": dynamic_batch, "int8": int8},
        "input_spec": model.input_spec.to_dict(),
        "versions": backend_versions(),
        "machine": machine_info(),
        "stages": {},
        "artifacts": [r.to_dict() for r in records],
        "files": {f: file_record(root, f) for f in files},
        "calibration": None,
        "warnings": [],
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    return root
