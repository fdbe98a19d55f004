"""The detection contract through export: NMS inside the graph (identical in PyTorch, ONNX Runtime
and OpenVINO), verification by matched detections plus the NMS inputs element-wise, ``--no-nms``,
INT8 with decoding/NMS in float and mAP fidelity, self-describing artifacts, ``edgecv predict``."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from edgecv.artifact_metadata import input_spec_of
from edgecv.cli import app
from edgecv.errors import InvalidOptionError
from edgecv.export.pipeline import export
from edgecv.models.detection import DetectionOptions, MultiClassNMS
from edgecv.models.spec import InputSpec, OutputSpec
from tests.detector_fixture import TinyDetector


class _NmsOnly(nn.Module):
    def __init__(self, options: DetectionOptions, background=None):
        super().__init__()
        self.postprocess = MultiClassNMS(options, background)

    def forward(self, x):
        xy = x[:, :, :2] * 100
        boxes = torch.cat([xy, xy + x[:, :, 2:4].abs() * 30 + 1], -1)
        return self.postprocess(boxes, x[:, :, 4:].sigmoid())


@pytest.mark.parametrize(
    "options, background",
    [
        (DetectionOptions(conf_thres=0.3, iou_thres=0.5, max_det=20), None),
        (DetectionOptions(conf_thres=0.3, iou_thres=0.5, max_det=20, pre_nms_topk=50), 0),
        (DetectionOptions(conf_thres=0.3, iou_thres=0.5, max_det=20, agnostic=True), None),
    ],
    ids=["per-class", "background+topk", "agnostic"],
)
def test_nms_in_the_graph_equals_pytorch_in_onnxruntime(options, background):
    model = _NmsOnly(options, background).eval()
    names = ["num_dets", "boxes", "scores", "labels"]
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.randn(2, 200, 9),),
        buf,
        dynamo=False,
        input_names=["x"],
        output_names=names,
        opset_version=17,
        dynamic_axes={n: {0: "b"} for n in ["x", *names]},
    )
    graph = onnx.load_from_string(buf.getvalue())
    assert [n.op_type for n in graph.graph.node].count("NonMaxSuppression") == 1
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(1)
    # batch 2 and 3 (dynamic batch) and a batch with nothing above the threshold
    for x in (
        torch.randn(2, 200, 9, generator=gen),
        torch.randn(3, 200, 9, generator=gen),
        torch.randn(1, 200, 9, generator=gen) - 10,
    ):
        ref = [t.numpy() for t in model(x)]
        got = session.run(names, {"x": x.numpy()})
        np.testing.assert_array_equal(ref[0], got[0])
        np.testing.assert_allclose(ref[1], got[1], atol=1e-5)
        np.testing.assert_allclose(ref[2], got[2], atol=1e-6)
        np.testing.assert_array_equal(ref[3], got[3])
        assert got[0].dtype == np.int32 and got[3].dtype == np.int32
        # padding: zero boxes and scores, label -1
        for i, k in enumerate(got[0]):
            assert (got[3][i, k:] == -1).all() and (got[2][i, k:] == 0).all()
            assert (np.diff(got[2][i, :k]) <= 0).all()  # sorted by score
        if background == 0:
            assert (got[3][got[3] >= 0] >= 1).all()  # class 0 is background, never reported


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (dict(conf_thres=1.5), "--conf-thres"),
        (dict(iou_thres=-0.1), "--iou-thres"),
        (dict(max_det=0), "--max-det"),
        (dict(conf_thres=float("nan")), "--conf-thres"),
    ],
)
def test_detection_options_are_checked(bad, fragment):
    with pytest.raises(InvalidOptionError, match=fragment):
        DetectionOptions(**bad).validate()


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    model = TinyDetector()
    out = tmp_path_factory.mktemp("det") / "run"
    result = export(model, out=out, input_spec=model.input_spec, int8=True, calib_size=40)
    return result


def test_detector_export_verifies_detections_and_nms_inputs(det_run):
    manifest = det_run.manifest
    for stage in ("simplify", "openvino"):
        outputs = manifest["stages"][stage]["info"]["verification"]["outputs"]
        det = next(o for o in outputs if o["name"] == "detections")
        assert det["passed"] is True and det["reference_detections"] > 20
        assert det["matched"] == det["reference_detections"] == det["artifact_detections"]
    # ONNX Runtime also exposes the tensors handed to NMS: compared element-wise with PyTorch's.
    onnx_outputs = {o["name"]: o for o in manifest["stages"]["simplify"]["info"]["verification"]["outputs"]}
    assert onnx_outputs["__decoded_boxes"]["passed"] and onnx_outputs["__decoded_scores"]["passed"]
    assert onnx_outputs["__decoded_scores"]["shape"][2] == 3  # [N, anchors, classes]
    assert [o["name"] for o in manifest["input_spec"]["outputs"]] == ["num_dets", "boxes", "scores", "labels"]


def test_detector_int8_keeps_decode_and_nms_float_and_reports_map(det_run):
    report = json.loads((det_run.run_dir / "calibration" / "report.json").read_text())
    excluded = report["excluded"]
    assert any(n.startswith("/decode/") for n in excluded)
    assert "/postprocess/NonMaxSuppression" in excluded
    for flavour in ("model.int8.onnx", "model.int8.cpu.onnx"):
        graph = onnx.load(str(det_run.run_dir / flavour))
        quantized_inputs = {i for n in graph.graph.node if n.op_type == "DequantizeLinear" for i in n.output}
        for node in graph.graph.node:
            if node.name.startswith(("/decode/", "/postprocess/")):
                assert not set(node.input) & quantized_inputs, (flavour, node.name)
        assert not [n for n in graph.graph.node if n.op_type == "QuantizeLinear" and n.name.startswith("/postprocess")]
    for name in ("onnx-int8", "onnx-int8-cpu", "openvino-int8"):
        fid = report["fidelity"][name]
        assert fid["kind"] == "detection" and fid["fp32_detections"] > 100
        assert 0.0 <= fid["map"] <= 1.0 and fid["reproduced"] > 0.5


def test_artifact_copied_out_of_its_run_folder_still_describes_itself(det_run, tmp_path):
    for rel in ("model.onnx", "model.int8.cpu.onnx"):
        copy = tmp_path / rel.replace("/", "_")
        shutil.copy(det_run.run_dir / rel, copy)
        spec = input_spec_of(copy)
        assert spec is not None and spec.task == "detection" and spec.resize == "letterbox"
        assert spec.output("num_dets").dtype == "int32"
    ov_dir = tmp_path / "ov"
    shutil.copytree(det_run.run_dir / "openvino", ov_dir)
    assert input_spec_of(ov_dir / "model.int8.xml").task == "detection"


def test_predict_maps_boxes_onto_the_original_picture(det_run, tmp_path):
    from PIL import Image
    from skimage import data

    photo = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(photo)  # 400x600: letterboxed with padding
    copy = tmp_path / "det.onnx"
    shutil.copy(det_run.run_dir / "model.onnx", copy)
    res = CliRunner().invoke(app, ["predict", str(copy), str(photo), "--out", str(tmp_path / "drawn"), "--json"])
    assert res.exit_code == 0, res.output
    pred = json.loads(res.stdout)[0]
    assert pred["width"] == 600 and pred["height"] == 400 and pred["detections"]
    for det in pred["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 <= x2 <= 600 and 0 <= y1 <= y2 <= 400
    assert (tmp_path / "drawn" / "coffee.pred.png").is_file()
    # the same picture through PyTorch, mapped by hand, gives the same boxes
    from edgecv.preprocess import preprocess_with_transform

    model = TinyDetector()
    x, transform = preprocess_with_transform(np.asarray(Image.open(photo).convert("RGB")), model.input_spec)
    with torch.no_grad():
        n, boxes, _, _ = (t.numpy() for t in model(torch.from_numpy(x[None])))
    expected = transform.boxes_to_original(boxes[0][: n[0]])
    np.testing.assert_allclose(np.array([d["box"] for d in pred["detections"]]), expected, atol=0.02)


def test_no_nms_export_compares_decoded_outputs_elementwise(tmp_path):
    model = TinyDetector(options=DetectionOptions(nms=False))
    assert model.input_spec.output_names == ("boxes", "scores")
    result = export(model, out=tmp_path / "run", input_spec=model.input_spec, backends=("onnxruntime",))
    outputs = result.manifest["stages"]["simplify"]["info"]["verification"]["outputs"]
    assert [o["name"] for o in outputs] == ["boxes", "scores"] and all(o["passed"] for o in outputs)
    graph = onnx.load(str(result.run_dir / "model.onnx"))
    assert "NonMaxSuppression" not in {n.op_type for n in graph.graph.node}
    # predict runs the NMS itself on such an artifact, at the thresholds it was exported with
    from edgecv.evaluate.predict import predict_images

    photo = tmp_path / "coffee.png"
    from PIL import Image
    from skimage import data

    Image.fromarray(data.coffee()).save(photo)
    (pred,) = predict_images(result.run_dir / "model.onnx", [photo])
    assert 0 < len(pred.detections) <= model.detection_options.max_det
    assert all(d["score"] > model.detection_options.conf_thres for d in pred.detections)
    assert all(0 <= d["box"][0] <= d["box"][2] <= 600 for d in pred.detections)


class _TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.mean((2, 3)), y.amax((2, 3))


def test_every_declared_output_is_verified(tmp_path):
    spec = InputSpec(
        height=32,
        width=32,
        outputs=(OutputSpec("mean", "logits", ("batch", 4)), OutputSpec("peak", "logits", ("batch", 4))),
    )
    result = export(_TwoOutputs().eval(), out=tmp_path / "run", input_spec=spec, backends=("onnxruntime",))
    names = [o["name"] for o in result.manifest["stages"]["simplify"]["info"]["verification"]["outputs"]]
    assert names == ["mean", "peak"]


def test_outputs_that_disagree_with_the_declared_ones_are_refused_before_anything_is_written(tmp_path):
    spec = InputSpec(height=32, width=32, output_names=("mean", "peak", "extra"))
    with pytest.raises(InvalidOptionError, match="returns 2 output"):
        export(_TwoOutputs().eval(), out=tmp_path / "run", input_spec=spec, backends=("onnxruntime",))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["mobilenetv2", "--conf-thres", "0.5"], "apply to detectors only"),
        (["mobilenetv2", "--no-nms"], "apply to detectors only"),
        (["mobilenetv2", "--resolution", "100x64"], "multiple of 32"),
        (["mobilenetv2", "--resolution", "axb"], "HxW"),
    ],
)
def test_detector_flags_and_resolutions_refused_with_one_line(args, fragment, tmp_path):
    res = CliRunner().invoke(app, ["export", *args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert fragment.lower() in res.output.lower() and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()


def test_benchmark_feeds_a_detector_photographs(det_run):
    from edgecv.runtime.benchmark import benchmark

    result = benchmark(str(det_run.run_dir / "model.int8.cpu.onnx"), warmup=1, iterations=3)
    assert any("sample photographs" in n for n in result.notes)


def test_detector_sensitivity_ranks_layers_by_map(tmp_path):
    model = TinyDetector()
    result = export(
        model,
        out=tmp_path / "run",
        input_spec=model.input_spec,
        int8=True,
        calib_size=24,
        sensitivity=True,
        keep_fp32=1,
        backends=("onnxruntime",),
    )
    ranking = result.manifest["stages"]["int8"]["info"]["sensitivity"]
    assert ranking["metric"] == "map" and ranking["baseline_map"] is not None
    assert all(layer["map"] is not None and layer["sqnr_db"] is None for layer in ranking["layers"])
    gains = [layer["gain_map"] for layer in ranking["layers"]]
    assert gains == sorted(gains, reverse=True)
    assert ranking["layers"][0]["node"] in result.manifest["stages"]["int8"]["info"]["excluded"]


def test_predict_on_a_missing_artifact_says_so(tmp_path):
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(photo)
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "nope.onnx"), str(photo)])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
