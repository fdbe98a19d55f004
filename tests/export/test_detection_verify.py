"""Detection verification judges what a correct export must reproduce: the tensors handed to NMS
element-wise (box sizes relative, as decoders make them), and the detections as an NMS of
PyTorch's candidates in which near-tied scores may fall either way. A random-weight detector, whose
saturated scores tie everywhere, passes; a broken decode fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecv.errors import VerificationError
from edgecv.export.pipeline import export
from edgecv.export.verify import DECODED_BOXES, DECODED_SCORES, compare_detections, verify_outputs
from edgecv.models.detection import DetectionOptions, MultiClassNMS
from tests.detector_fixture import TinyDetector, _Decode

NMS = DetectionOptions(conf_thres=0.25, iou_thres=0.3, max_det=20)


def _nms(boxes: np.ndarray, scores: np.ndarray, options: DetectionOptions = NMS) -> dict[str, np.ndarray]:
    """What a detector with these decoded tensors outputs, with the decoded tensors as the PyTorch
    reference keeps them."""
    b, s = torch.tensor(boxes, dtype=torch.float32)[None], torch.tensor(scores, dtype=torch.float32)[None]
    outs = MultiClassNMS(options)(b, s)
    named = dict(zip(("num_dets", "boxes", "scores", "labels"), (t.numpy() for t in outs)))
    return {**named, DECODED_BOXES: b.numpy(), DECODED_SCORES: s.numpy()}


def _scene(seed: int = 0, n: int = 60, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Boxes 8-40 px wide on a 160-px picture, with scores spread over 0..1."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 140, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(8, 40, (n, 2))], 1)
    return boxes, rng.uniform(0, 1, (n, classes))


def _tied_scene() -> tuple[np.ndarray, np.ndarray]:
    """A and B tie; whichever NMS keeps suppresses the other. A also suppresses C, B does not."""
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [-5, 0, 5, 10]], dtype=np.float64)
    return boxes, np.array([[0.9], [0.9], [0.8]])


def test_detections_that_break_a_score_tie_the_other_way_pass():
    boxes, scores = _tied_scene()
    reference = _nms(boxes, scores)
    other = scores.copy()
    other[1] += 1e-6  # B wins the tie: it keeps B, which leaves C standing
    artifact = _nms(boxes, other)
    assert reference["num_dets"][0] == 1 and artifact["num_dets"][0] == 2
    result = compare_detections([reference], [artifact], "fp32", nms=NMS)
    assert result.passed, result.summary()
    assert result.matched_share == 1.0 and result.unidentified == result.missing == 0


def test_many_tied_scores_with_max_det_pass():
    # Saturated sigmoids: every candidate scores exactly 1.0, more than max_det survive NMS.
    boxes, _ = _scene(n=80, classes=1)
    boxes[:, 2:] = boxes[:, :2] + 4  # small boxes that rarely overlap
    scores = np.ones((80, 1))
    reference = _nms(boxes, scores)
    artifact = _nms(boxes[::-1].copy(), scores)  # the same candidates in another order
    assert reference["num_dets"][0] == artifact["num_dets"][0] == NMS.max_det
    result = compare_detections(
        [reference], [{k: v for k, v in artifact.items() if not k.startswith("__")}], "fp32", nms=NMS
    )
    assert result.passed, result.summary()


@pytest.mark.parametrize(
    "broken",
    [
        lambda b: b + np.array([3.0, 0.0, 3.0, 0.0]),
        lambda b: b[:, [1, 0, 3, 2]],
        lambda b: np.concatenate([b[:, :2], b[:, 2:] + 0.1 * (b[:, 2:] - b[:, :2])], 1),
    ],
    ids=["shifted-3px", "x-y-swapped", "sizes-10pct-off"],
)
def test_detections_of_a_broken_decode_fail(broken):
    boxes, scores = _scene()
    reference = _nms(boxes, scores)
    artifact = _nms(broken(boxes), scores)
    result = compare_detections([reference], [artifact], "fp32", nms=NMS)
    assert not result.passed and result.unidentified > 0, result.summary()


def test_a_dropped_detection_or_a_missed_suppression_fails():
    boxes, scores = _scene()
    reference = _nms(boxes, scores)
    dropped = {**reference, "num_dets": reference["num_dets"] - 1}
    result = compare_detections([reference], [dropped], "fp32", nms=NMS)
    # The dropped detection, and the candidates max_det cut that no longer are.
    assert not result.passed and result.missing >= 1 and result.unidentified == 0, result.summary()
    # No suppression at all: A, B and C kept together.
    boxes, scores = _tied_scene()
    reference = _nms(boxes, scores)
    unsuppressed = _nms(boxes, scores, DetectionOptions(conf_thres=0.25, iou_thres=0.99, max_det=20))
    result = compare_detections([reference], [unsuppressed], "fp32", nms=NMS)
    assert not result.passed and result.overlapping > 0, result.summary()


def test_huge_decoded_boxes_are_judged_by_relative_size():
    # Random weights decode boxes of exp(10)·32 px; float32 noise of 3e-4 in the size logit moves
    # their corners by about 100 px while the box is the same to 0.03 %.
    rng = np.random.default_rng(0)
    logits = rng.uniform(-3, 10, (2, 50, 2))
    centres = rng.uniform(0, 160, (2, 50, 2))

    def decode(lg):
        wh = np.exp(lg) * 32
        return np.concatenate([centres - wh / 2, centres + wh / 2], -1).astype(np.float32)

    reference = [{"boxes": decode(logits)}]
    noisy = [{"boxes": decode(logits + rng.uniform(-3e-4, 3e-4, logits.shape))}]
    result = verify_outputs("m", "onnxruntime", "fp32", reference, noisy, inputs="", classification=False)
    assert result.passed, result.outputs[0].summary()
    assert result.outputs[0].max_abs > 30  # the corners alone would fail
    wrong = [{"boxes": decode(logits * 1.01)}]
    result = verify_outputs("m", "onnxruntime", "fp32", reference, wrong, inputs="", classification=False)
    assert not result.passed, result.outputs[0].summary()


@pytest.mark.parametrize("shift", [(3.0, 0.0, 3.0, 0.0), (0.0, 0.0, 1.0, 1.0)], ids=["centre", "size"])
def test_decoded_boxes_a_pixel_off_fail(shift):
    boxes, _ = _scene()
    reference = [{"boxes": boxes[None].astype(np.float32)}]
    wrong = [{"boxes": (boxes[None] + np.array(shift)).astype(np.float32)}]
    result = verify_outputs("m", "onnxruntime", "fp32", reference, wrong, inputs="", classification=False)
    assert not result.passed, result.outputs[0].summary()


class _DecodeBrokenInGraph(_Decode):
    """Shifts every box 3 px right in the exported graph only, not in PyTorch's own run."""

    def forward(self, raw):
        boxes, scores = super().forward(raw)
        if torch.onnx.is_in_onnx_export():
            boxes = boxes + torch.tensor([3.0, 0.0, 3.0, 0.0])
        return boxes, scores


def test_an_export_with_a_broken_decode_fails_verification(tmp_path):
    model = TinyDetector()
    model.decode = _DecodeBrokenInGraph(model.decode.stride, model.decode.size)
    with pytest.raises(VerificationError, match="detections") as caught:
        export(model, out=tmp_path / "run", input_spec=model.input_spec, backends=("onnxruntime",))
    assert "__decoded_boxes" in str(caught.value)


def test_openvino_verifies_the_tensors_before_nms_elementwise(tmp_path):
    model = TinyDetector()
    result = export(model, out=tmp_path / "run", input_spec=model.input_spec, backends=("openvino",))
    outputs = {o["name"]: o for o in result.manifest["stages"]["openvino"]["info"]["verification"]["outputs"]}
    assert {"detections", DECODED_BOXES, DECODED_SCORES} <= set(outputs)
    assert all(o["passed"] for o in outputs.values()), outputs


# A correct export of every zoo detector family with random weights (saturated, tied scores and boxes
# far off the picture) verifies, with and without NMS in the graph, in ONNX Runtime and OpenVINO.
# SSD300 shares SSDLite's decoding and post-processing; its VGG backbone only makes the export slow,
# and test_detector_zoo_export exports it with random weights and NMS already.
ZOO = [
    ("ssdlite", {}, "192x256"),
    ("yolov3-tiny", {}, "160x224"),
    ("yolox", {"variant": "nano"}, "160"),
]


@pytest.mark.slow
@pytest.mark.parametrize("nms", [True, False], ids=["nms", "no-nms"])
@pytest.mark.parametrize("name,variant,resolution", ZOO, ids=[z[0] for z in ZOO])
def test_random_weight_detector_exports_verify(tmp_path, name, variant, resolution, nms):
    result = export(name, out=tmp_path / "run", resolution=resolution, variant=variant, num_classes=4, nms=nms)
    for artifact in result.artifacts:
        assert artifact.verification["passed"], artifact.verification
