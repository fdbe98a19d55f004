"""Every zoo detector exports with NMS inside the graph, and its ONNX and OpenVINO IR match
PyTorch's own post-processing (detections matched by class and IoU, the decoded boxes and scores
element-wise); ``--no-nms`` graphs match element-wise. Weights are saved and reloaded, as a user's
checkpoint would be."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import edgecv
from edgecv.models.detection import DetectionOptions
from edgecv.preprocess import photo_batch
from edgecv.runtime import load

# Small inputs where the strides allow (SSD300 is 300×300 only); a low threshold so that even
# random weights give detections to match (SSD's softmax over 91 classes sits near 0.011, YOLO
# starts from a 1 % objectness prior).
DETECTORS = [
    ("ssd300", {}, None, 0.01),
    ("ssdlite", {}, "192x256", 0.01),
    ("yolov3-tiny", {}, "160x224", 1e-5),
    ("yolox", {"variant": "nano"}, "160x224", 1e-5),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,variant,resolution,conf", DETECTORS, ids=[d[0] for d in DETECTORS])
def test_detector_exports_with_nms_and_matches_pytorch(tmp_path, name, variant, resolution, conf):
    options = DetectionOptions(conf_thres=conf, max_det=50)
    model = edgecv.create_model(name, resolution=resolution, postprocess=options, **variant)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    result = edgecv.export_model(
        name,
        out=tmp_path / "run",
        resolution=resolution,
        weights=str(tmp_path / "w.pth"),
        variant=variant,
        conf_thres=conf,
        max_det=50,
    )
    m = result.manifest
    assert [o["name"] for o in m["input_spec"]["outputs"]] == ["num_dets", "boxes", "scores", "labels"]
    assert m["model"]["postprocess"]["conf_thres"] == conf and m["model"]["task"] == "detection"
    graph = onnx.load(str(result.run_dir / "model.onnx"))
    assert [n.op_type for n in graph.graph.node].count("NonMaxSuppression") == 1
    for a in result.artifacts:
        outputs = {o["name"]: o for o in a.verification["outputs"]}
        assert a.verification["passed"], a.verification
        assert outputs["detections"]["reference_detections"] > 0, (a.name, outputs["detections"])
    decoded = {o["name"] for o in m["stages"]["simplify"]["info"]["verification"]["outputs"]}
    assert {"__decoded_boxes", "__decoded_scores"} <= decoded
    # A fresh photograph through the OpenVINO IR, independently of the pipeline's own check.
    x = photo_batch(model.input_spec, 1)
    with torch.inference_mode():
        n_ref, boxes_ref, _, labels_ref = (t.numpy() for t in model(torch.from_numpy(x)))
    with load(result.run_dir / "openvino" / "model.xml", precision="f32") as rt:
        out = rt.infer(x)
    k = int(n_ref[0])
    assert abs(int(out["num_dets"][0]) - k) <= max(1, k // 50)
    common = min(k, int(out["num_dets"][0]))
    np.testing.assert_allclose(out["boxes"][0, :common], boxes_ref[0, :common], atol=0.05)


def test_no_nms_export_matches_elementwise(tmp_path):
    result = edgecv.export_model(
        "ssdlite", out=tmp_path / "run", resolution="160x160", nms=False, backends=("onnxruntime",)
    )
    outputs = result.manifest["stages"]["simplify"]["info"]["verification"]["outputs"]
    assert [o["name"] for o in outputs] == ["boxes", "scores"] and all(o["passed"] for o in outputs)
    assert outputs[1]["shape"][2] == 91  # every class, background included
    graph = onnx.load(str(result.run_dir / "model.onnx"))
    assert "NonMaxSuppression" not in {n.op_type for n in graph.graph.node}
