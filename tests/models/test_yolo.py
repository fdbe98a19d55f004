"""yolov3-tiny and YOLOX: sizes against the published figures, Darknet's max-pool padding, the
reference module names, decoding, outputs with and without NMS, input sizes.

How the published compute figures count:
* Darknet prints "5.56 BFLOPs" for yolov3-tiny at 416: 2 × the conv multiply-accumulates.
* YOLOX's README "GFLOPs" come from ``get_model_info``: thop at 64×64, scaled to the test size and
  multiplied by 2. thop counts per conv output element ``C_in/g · k²`` MACs plus 1 for a bias, and
  2 per BatchNorm output element; so GFLOPs = 2 × (conv MACs + bias adds + 2 · BN elements).
  edgecv's MACs (convs only, the MobileNet/ShuffleNet papers' convention) are that minus the
  BatchNorm/bias share, 3.2 % of nano (depthwise nets are light on MACs, not on BatchNorms).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from edgecv.errors import InvalidOptionError, WeightsError
from edgecv.models import create_model
from edgecv.models.complexity import count_complexity
from edgecv.models.detection import DetectionOptions
from edgecv.models.yolov3_tiny import DarknetMaxPool

G = 1e9


def _count_with_thop_extras(model):
    """count_complexity, and the extra operations thop counts besides conv MACs on the same
    forward: bias adds and 2 per BatchNorm element."""
    extra = []

    def hook(module, _inputs, output):
        if isinstance(module, nn.BatchNorm2d):
            extra.append(2 * output.numel())
        elif module.bias is not None:
            extra.append(output.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.Conv2d))]
    try:
        return count_complexity(model), sum(extra)
    finally:
        for h in handles:
            h.remove()


def test_yolov3_tiny_size():
    model = create_model("yolov3-tiny", settle_batchnorm=False)
    assert model.num_classes == 80  # the registry's default for YOLO, not ImageNet's 1000
    c = count_complexity(model)
    assert c.params == 8_852_366
    assert c.input_shape == (1, 3, 416, 416)
    assert 2 * c.macs / G == pytest.approx(5.56, rel=0.01)  # Darknet's "5.56 BFLOPs"


# (variant, resolution, published params in M as printed, published GFLOPs, exact reference count)
YOLOX_FIGURES = [
    ("nano", 416, 0.91, 1.08, 912_159),
    ("tiny", 416, 5.06, 6.45, 5_055_855),
    ("s", 640, 9.0, 26.8, 8_968_255),
]


@pytest.mark.parametrize(
    "variant, resolution, params_m, gflops, exact",
    YOLOX_FIGURES,
    ids=[f[0] for f in YOLOX_FIGURES],
)
def test_yolox_size(variant, resolution, params_m, gflops, exact):
    model = create_model("yolox", variant=variant, resolution=resolution, settle_batchnorm=False)
    c, thop_extra = _count_with_thop_extras(model)
    # Exact: the count of the reference implementation's module tree (printed as params_m).
    assert c.params == exact
    assert round(c.params / 1e6, 2 if params_m < 9 else 1) == params_m
    published_ops = gflops * G / 2
    assert (c.macs + thop_extra) == pytest.approx(published_ops, rel=0.005)
    assert c.macs == pytest.approx(published_ops, rel=0.035)
    if variant != "nano":
        assert c.macs == pytest.approx(published_ops, rel=0.01)


def test_complexity_counts_the_network_not_nms():
    model = create_model("yolox", settle_batchnorm=False)

    def boom(*_):
        raise AssertionError("count_complexity ran the post-processing")

    model.postprocess.forward = boom
    model.decode.forward = boom
    assert count_complexity(model).macs > 0


def test_darknet_maxpool_padding_never_wins():
    x = F.leaky_relu(-torch.rand(2, 4, 6, 6) - 0.1, 0.1)  # what the conv before the pool emits
    ours = DarknetMaxPool()(x)
    zero_padded = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1)
    assert ours.shape == x.shape
    # Interior cells agree; the last row and column hold their own (negative) maxima, where zero
    # padding would put 0.
    torch.testing.assert_close(ours[..., :-1, :-1], zero_padded[..., :-1, :-1])
    assert (zero_padded[..., -1, :] == 0).all() and (zero_padded[..., :, -1] == 0).all()
    assert (ours[..., -1, :] < 0).all() and (ours[..., :, -1] < 0).all()
    assert torch.equal(ours[..., -1, -1], x[..., -1, -1])
    torch.testing.assert_close(ours[..., -1, :-1], torch.maximum(x[..., -1, :-1], x[..., -1, 1:]))
    model = create_model("yolov3-tiny", settle_batchnorm=False)
    assert isinstance(model.module_list["11"], DarknetMaxPool)


def test_yolox_reference_module_names(tmp_path):
    """The reference's state_dict keys, and a ``{"model": state_dict}`` checkpoint loads as is."""
    model = create_model("yolox", variant="nano", settle_batchnorm=False)
    keys = set(model.state_dict())
    for key in (
        "backbone.backbone.stem.conv.conv.weight",
        "backbone.backbone.dark2.0.dconv.conv.weight",
        "backbone.backbone.dark3.1.m.2.conv2.pconv.bn.running_var",
        "backbone.backbone.dark5.1.conv2.bn.weight",
        "backbone.lateral_conv0.conv.weight",
        "backbone.C3_n4.conv3.bn.num_batches_tracked",
        "backbone.bu_conv1.dconv.conv.weight",
        "head.stems.2.conv.weight",
        "head.cls_convs.0.1.pconv.conv.weight",
        "head.cls_preds.0.bias",
        "head.reg_preds.1.weight",
        "head.obj_preds.2.bias",
    ):
        assert key in keys, key
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    for path in model.extra_float_scopes:
        assert all(isinstance(m, nn.Conv2d) for m in model.get_submodule(path))

    trained = create_model("yolox", variant="nano", resolution=128)  # settled BatchNorm statistics
    checkpoint = {
        "start_epoch": 300,
        "model": trained.state_dict(),
        "optimizer": {"state": {}, "param_groups": []},
    }
    torch.save(checkpoint, tmp_path / "yolox_nano.pth")
    loaded = create_model("yolox", variant="nano", weights=tmp_path / "yolox_nano.pth", resolution=128)
    x = torch.rand(1, 3, 128, 128) * 255
    with torch.no_grad():
        for a, b in zip(loaded.forward_raw(x), trained.forward_raw(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_yolov3_tiny_float_scopes_are_prediction_convs():
    model = create_model("yolov3-tiny", settle_batchnorm=False)
    assert model.extra_float_scopes == ("module_list.15", "module_list.22")
    for path in model.extra_float_scopes:
        layer = model.get_submodule(path)
        assert list(dict(layer.named_children())) == ["Conv2d"] and layer.Conv2d.kernel_size == (1, 1)
        assert layer.Conv2d.out_channels == 3 * (5 + 80)


def test_input_specs():
    tiny = create_model("yolov3-tiny", settle_batchnorm=False).input_spec
    assert (tiny.task, tiny.resize, tiny.pad_value, tiny.channel_order) == (
        "detection",
        "letterbox",
        114,
        "RGB",
    )
    assert (tiny.scale, tiny.mean, tiny.std, tiny.height) == (
        1 / 255,
        (0.0,) * 3,
        (1.0,) * 3,
        416,
    )
    yolox = create_model("yolox", settle_batchnorm=False).input_spec
    assert (yolox.resize, yolox.pad_value, yolox.channel_order) == (
        "letterbox",
        114,
        "BGR",
    )
    assert (yolox.scale, yolox.mean, yolox.std, yolox.height) == (
        1.0,
        (0.0,) * 3,
        (1.0,) * 3,
        416,
    )


@pytest.mark.parametrize(
    "name, options, resolution, anchors",
    [
        ("yolov3-tiny", {}, 416, 3 * (13 * 13 + 26 * 26)),
        ("yolov3-tiny", {}, "384x640", 3 * (12 * 20 + 24 * 40)),
        ("yolov3-tiny", {"backbone": "mobilenetv2"}, 128, 3 * (4 * 4 + 8 * 8)),
        ("yolov3-tiny", {"backbone": "shufflenetv2"}, "128x192", 3 * (4 * 6 + 8 * 12)),
        ("yolox", {}, 320, 40 * 40 + 20 * 20 + 10 * 10),
        ("yolox", {"variant": "tiny"}, "192x320", 24 * 40 + 12 * 20 + 6 * 10),
    ],
)
def test_outputs_with_and_without_nms(name, options, resolution, anchors):
    model = create_model(
        name,
        num_classes=3,
        resolution=resolution,
        postprocess=DetectionOptions(nms=False),
        settle_batchnorm=False,
        **options,
    )
    h, w = model.input_spec.height, model.input_spec.width
    assert model.input_spec.output_names == ("boxes", "scores")
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        boxes, scores = model(x)
    assert boxes.shape == (2, anchors, 4) and scores.shape == (2, anchors, 3)
    assert ((scores >= 0) & (scores <= 1)).all()

    model.configure_postprocess(DetectionOptions(conf_thres=0.0, max_det=7))
    assert model.input_spec.output_names == ("num_dets", "boxes", "scores", "labels")
    with torch.no_grad():
        num_dets, det_boxes, det_scores, labels = model(x)
    assert num_dets.tolist() == [7, 7]
    assert det_boxes.shape == (2, 7, 4) and det_scores.shape == (2, 7) and labels.shape == (2, 7)
    assert labels.dtype == torch.int32 and ((labels >= 0) & (labels < 3)).all()
    # NMS keeps the best-scoring box of the whole image first.
    torch.testing.assert_close(det_scores[:, 0], scores.flatten(1).max(1).values)


def test_yolov3_tiny_decoding():
    model = create_model("yolov3-tiny", num_classes=2, resolution=64, settle_batchnorm=False)
    # Zero logits: centre (0.5 + cell) · stride, size = the anchor, score σ(0)·σ(0).
    raw = (torch.zeros(1, 3 * 7, 2, 2), torch.zeros(1, 3 * 7, 4, 4))
    boxes, scores = model.decode(raw)
    assert boxes.shape == (1, 3 * 4 + 3 * 16, 4)
    torch.testing.assert_close(scores, torch.full_like(scores, 0.25))
    # First box: scale 13×13 (stride 32), anchor 3 (81×82), cell (0, 0).
    torch.testing.assert_close(boxes[0, 0], torch.tensor([16 - 40.5, 16 - 41.0, 16 + 40.5, 16 + 41.0]))
    # Scale 1, anchor index 1 of mask 1,2,3 = anchor 2 (37×58); cell row 1, column 2 (stride 16).
    idx = 12 + 1 * 16 + 1 * 4 + 2
    torch.testing.assert_close(boxes[0, idx], torch.tensor([40 - 18.5, 24 - 29.0, 40 + 18.5, 24 + 29.0]))
    # t_x = t_y = large: centre near the next cell's corner; t_w = log 2: twice the anchor.
    raw[0][0, 0:2] = 20.0
    raw[0][0, 2] = torch.log(torch.tensor(2.0))
    b = model.decode(raw)[0][0, 0]
    torch.testing.assert_close(b, torch.tensor([32 - 81.0, 32 - 41.0, 32 + 81.0, 32 + 41.0]))


def test_yolox_decoding():
    model = create_model("yolox", num_classes=3, resolution="64x96", settle_batchnorm=False)
    raw = tuple(torch.zeros(1, 4 + 1 + 3, 64 // s, 96 // s) for s in (8, 16, 32))
    raw[1][0, 0:2, 1, 2] = 0.5  # level stride 16, row 1, column 2
    raw[1][0, 2:4, 1, 2] = torch.log(torch.tensor([3.0, 2.0]))
    raw[1][0, 4, 1, 2] = 10.0
    boxes, scores = model.decode(raw)
    assert boxes.shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 4) and scores.shape == (1, 126, 3)
    # Zero logits: centre cell · stride, size = the stride.
    torch.testing.assert_close(boxes[0, 0], torch.tensor([-4.0, -4.0, 4.0, 4.0]))
    i = 96 + 1 * 6 + 2
    cx, cy, w, h = 2.5 * 16, 1.5 * 16, 3 * 16, 2 * 16
    torch.testing.assert_close(boxes[0, i], torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    torch.testing.assert_close(scores[0, i], torch.sigmoid(torch.tensor(10.0)) * torch.full((3,), 0.5))
    # Absurd size logits (an untrained net on out-of-range input) give finite corners, not NaN.
    raw[0][0, 2:4] = 1e4
    assert torch.isfinite(model.decode(raw)[0]).all()


@pytest.mark.parametrize("name", ["yolov3-tiny", "yolox"])
@pytest.mark.parametrize("resolution", [400, "384x600", 16, "0x320"])
def test_bad_resolution_refused(name, resolution):
    with pytest.raises(InvalidOptionError, match="resolution"):
        create_model(name, resolution=resolution, settle_batchnorm=False)


def test_options_refused():
    with pytest.raises(InvalidOptionError, match="backbone"):
        create_model("yolov3-tiny", backbone="resnet50", settle_batchnorm=False)
    with pytest.raises(InvalidOptionError, match="width_mult"):
        create_model("yolov3-tiny", width_mult=0.5, settle_batchnorm=False)
    with pytest.raises(InvalidOptionError, match="variant"):
        create_model("yolox", variant="m", settle_batchnorm=False)
    assert create_model("yolox-s", settle_batchnorm=False).variant == "s"
    assert create_model("yolov3-tiny", backbone="mobilenetv2", resolution=128).backbone.channels == (96, 320)
    assert create_model("yolov3-tiny", backbone="shufflenetv2", resolution=128).backbone.channels == (232, 464)


@pytest.mark.parametrize(
    "name, options",
    [("yolov3-tiny", {}), ("yolov3-tiny", {"backbone": "shufflenetv2"}), ("yolox", {})],
)
def test_training_step_reaches_every_parameter(name, options):
    model = create_model(name, num_classes=2, resolution=64, settle_batchnorm=False, **options).train()
    sum(p.square().mean() for p in model.forward_raw(torch.randn(2, 3, 64, 64))).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()] == []


@pytest.mark.parametrize("name", ["yolov3-tiny", "yolox"])
def test_checkpoint_with_other_class_count_named(name, tmp_path):
    torch.save(
        {"model": create_model(name, settle_batchnorm=False, resolution=64).state_dict()},
        tmp_path / "c.pth",
    )
    with pytest.raises(WeightsError, match="holds 80 classes.*--num-classes 80"):
        create_model(name, num_classes=3, weights=tmp_path / "c.pth", resolution=64)
