"""SSD300 and SSDLite: default boxes, torchvision's checkpoint layout, decoding and NMS."""

from __future__ import annotations

import math

import pytest
import torch

from edgecv.errors import InvalidOptionError, WeightsError
from edgecv.models import create_model, get_entry, resolve_name
from edgecv.models.detection import DetectionOptions
from edgecv.models.ssd import (
    SSD300_ASPECT_RATIOS,
    SSD300_SCALES,
    SSD300_STEPS,
    SSDDecode,
    boxes_per_location,
    default_box_scales,
    default_boxes,
)
from tests.models.statefill import filled_state_dict


@pytest.fixture(scope="module")
def ssd300():
    return create_model("ssd300")


@pytest.fixture(scope="module")
def ssdlite():
    return create_model("ssdlite")


# --- default boxes --------------------------------------------------------------------------------


def test_ssd300_default_boxes_follow_the_paper():
    sizes = [(s, s) for s in (38, 19, 10, 5, 3, 1)]
    per_location = boxes_per_location(SSD300_ASPECT_RATIOS)
    assert per_location == [4, 6, 6, 6, 4, 4]
    boxes = default_boxes(sizes, (300, 300), SSD300_ASPECT_RATIOS, SSD300_SCALES, SSD300_STEPS)
    assert boxes.shape == (8732, 4) == (sum(f * f * b for (f, _), b in zip(sizes, per_location)), 4)
    # The first box of each map is square with side s_k (the paper's min sizes 21, 45, 99, 153,
    # 207, 261 px at 300); the second has side sqrt(s_k·s_k+1) (the max sizes 45 … 315).
    starts = [0]
    for (f, _), b in zip(sizes, per_location):
        starts.append(starts[-1] + f * f * b)
    for k, start in enumerate(starts[:-1]):
        first, second = boxes[start] * 300, boxes[start + 1] * 300
        assert first[2].item() == pytest.approx(SSD300_SCALES[k] * 300)
        assert second[2].item() == pytest.approx(min(300.0, math.sqrt(SSD300_SCALES[k] * SSD300_SCALES[k + 1]) * 300))
        # Centres at (i + 0.5) · step; the 38×38 map's step is 8 px.
        assert first[0].item() == pytest.approx(0.5 * SSD300_STEPS[k])
    # Aspect-ratio 2 pair of conv4_3: w = s·√2, h = s/√2, then swapped.
    w, h = boxes[2, 2:].tolist()
    assert (w, h) == pytest.approx((0.07 * math.sqrt(2), 0.07 / math.sqrt(2)))
    assert boxes[3, 2:].tolist() == pytest.approx([h, w])
    assert boxes[:, 2:].max() <= 1.0  # clipped (the last map's sqrt(0.87·1.05) > 1)


def test_ssdlite_default_boxes():
    assert default_box_scales(6, 0.2, 0.95) == pytest.approx([0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0])
    model = create_model("ssdlite", settle_batchnorm=False)
    assert model.boxes_per_location == (6,) * 6
    assert model.feature_sizes == ((20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1))
    assert model.num_anchors == 3234


def test_ssd300_model_matches_the_generator(ssd300):
    assert ssd300.num_anchors == 8732
    with torch.no_grad():
        features = ssd300.backbone(torch.zeros(1, 3, 300, 300))
        regression, logits = ssd300.head(features)  # forward_raw, keeping the feature maps
    assert [tuple(f.shape[-2:]) for f in features] == [(s, s) for s in (38, 19, 10, 5, 3, 1)]
    assert regression.shape == (1, 8732, 4) and logits.shape == (1, 8732, 91)


@pytest.mark.parametrize(
    "backbone,width,resolution",
    [
        ("mobilenetv3", 1.0, (384, 640)),
        ("mobilenetv2", 1.0, 320),
        ("mobilenetv2", 0.5, (256, 192)),
    ],
)
def test_ssdlite_other_resolutions_and_backbones(backbone, width, resolution):
    model = create_model("ssdlite", backbone=backbone, width_mult=width, resolution=resolution, settle_batchnorm=False)
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    x = torch.zeros(1, 3, h, w)
    with torch.no_grad():
        features = model.backbone(x)
        regression, logits = model.head(features)
    # The default boxes were laid out from computed sizes: they must be the real ones.
    assert tuple(tuple(f.shape[-2:]) for f in features) == model.feature_sizes
    assert model.num_anchors == 6 * sum(fh * fw for fh, fw in model.feature_sizes)
    assert regression.shape == (1, model.num_anchors, 4) and logits.shape == (1, model.num_anchors, 91)
    assert model.input_spec.shape == (1, 3, h, w)


def test_ssdlite_mobilenetv2_attaches_where_the_paper_says():
    model = create_model("ssdlite", backbone="mobilenetv2", settle_batchnorm=False)
    # Expansion of the first 160-channel block (96 × 6 = 576, stride 16), then the 1280 last conv.
    assert model.backbone.out_channels == (576, 1280, 512, 256, 256, 128)
    assert model.num_anchors == 3234


# --- torchvision's layout -------------------------------------------------------------------------


def torchvision_ssd300_layout(num_classes: int = 91) -> dict[str, tuple[int, ...]]:
    """ssd300_vgg16's state_dict keys and shapes, written down from torchvision's ssd.py and vgg.py
    (VGG16 features to conv4_3, pool4 … conv5_3 + fc6/fc7 as extra.0, four extra blocks)."""
    layout: dict[str, tuple[int, ...]] = {"backbone.scale_weight": (512,)}

    def conv(key, cin, cout, k):
        layout[f"{key}.weight"] = (cout, cin, k, k)
        layout[f"{key}.bias"] = (cout,)

    vgg = [
        (0, 3, 64),
        (2, 64, 64),
        (5, 64, 128),
        (7, 128, 128),
        (10, 128, 256),
        (12, 256, 256),
        (14, 256, 256),
        (17, 256, 512),
        (19, 512, 512),
        (21, 512, 512),
    ]
    for i, cin, cout in vgg:
        conv(f"backbone.features.{i}", cin, cout, 3)
    for i in (1, 3, 5):
        conv(f"backbone.extra.0.{i}", 512, 512, 3)
    conv("backbone.extra.0.7.1", 512, 1024, 3)
    conv("backbone.extra.0.7.3", 1024, 1024, 1)
    for i, (cin, mid, cout) in enumerate([(1024, 256, 512), (512, 128, 256), (256, 128, 256), (256, 128, 256)], 1):
        conv(f"backbone.extra.{i}.0", cin, mid, 1)
        conv(f"backbone.extra.{i}.2", mid, cout, 3)
    for i, (cin, boxes) in enumerate(zip((512, 1024, 512, 256, 256, 256), (4, 6, 6, 6, 4, 4))):
        conv(f"head.classification_head.module_list.{i}", cin, num_classes * boxes, 3)
        conv(f"head.regression_head.module_list.{i}", cin, 4 * boxes, 3)
    return layout


def test_ssd300_state_dict_is_torchvisions(ssd300):
    layout = torchvision_ssd300_layout()
    assert sum(math.prod(s) for s in layout.values()) == 35_641_826
    assert {k: tuple(v.shape) for k, v in ssd300.state_dict().items()} == layout
    assert sum(p.numel() for p in ssd300.parameters()) == 35_641_826


def test_torchvision_ssd300_checkpoint_loads(tmp_path):
    checkpoint = filled_state_dict({k: torch.zeros(s) for k, s in torchvision_ssd300_layout().items()})
    path = tmp_path / "ssd300_vgg16_coco.pth"
    torch.save(checkpoint, path)
    model = create_model("ssd300", weights=path)
    torch.testing.assert_close(model.backbone.scale_weight, checkpoint["backbone.scale_weight"])
    _, boxes, _, _ = model(torch.rand(1, 3, 300, 300))
    assert boxes.shape == (1, 100, 4) and torch.isfinite(boxes).all()


# Keys and shapes read off torchvision's ssdlite.py: features.0 = MobileNetV3-Large up to the
# expansion conv of block 13 (the last stride-2 block), features.1 = the rest of that block (its
# children keep their names 1, 2, 3) and the reduced tail; BatchNorm eps 0.001.
SSDLITE_KNOWN = {
    "backbone.features.0.0.0.weight": (16, 3, 3, 3),
    "backbone.features.0.1.block.0.0.weight": (16, 1, 3, 3),
    "backbone.features.0.13.0.weight": (672, 112, 1, 1),
    "backbone.features.1.0.1.0.weight": (672, 1, 5, 5),
    "backbone.features.1.0.2.fc1.weight": (168, 672, 1, 1),
    "backbone.features.1.0.3.0.weight": (80, 672, 1, 1),
    "backbone.features.1.1.block.0.0.weight": (480, 80, 1, 1),
    "backbone.features.1.3.0.weight": (480, 80, 1, 1),
    "backbone.extra.0.0.0.weight": (256, 480, 1, 1),
    "backbone.extra.0.1.0.weight": (256, 1, 3, 3),
    "backbone.extra.0.2.0.weight": (512, 256, 1, 1),
    "backbone.extra.3.2.0.weight": (128, 64, 1, 1),
    "head.classification_head.module_list.0.0.0.weight": (672, 1, 3, 3),
    "head.classification_head.module_list.0.1.weight": (546, 672, 1, 1),
    "head.classification_head.module_list.5.1.bias": (546,),
    "head.regression_head.module_list.1.1.weight": (24, 480, 1, 1),
}


def test_ssdlite_state_dict_is_torchvisions(ssdlite):
    state = ssdlite.state_dict()
    for key, shape in SSDLITE_KNOWN.items():
        assert tuple(state[key].shape) == shape, key
    assert sum(p.numel() for p in ssdlite.parameters()) == 3_440_060
    assert all(m.eps == 0.001 for m in ssdlite.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # Default boxes are constants of the graph, not checkpoint entries.
    assert not any(k.startswith("decode") for k in state)


def test_input_specs_are_torchvisions(ssd300, ssdlite):
    spec = ssd300.input_spec
    assert (spec.mean, spec.std, spec.scale, spec.resize) == (
        (0.48235, 0.45882, 0.40784),
        (1 / 255,) * 3,
        1 / 255,
        "resize",
    )
    assert spec.task == "detection" and spec.shape == (1, 3, 300, 300)
    spec = ssdlite.input_spec
    assert (spec.mean, spec.std, spec.resize, spec.shape) == ((0.5,) * 3, (0.5,) * 3, "resize", (1, 3, 320, 320))
    assert [o.name for o in spec.outputs] == ["num_dets", "boxes", "scores", "labels"]


# --- decoding and post-processing -----------------------------------------------------------------


def test_decode_is_torchvisions_box_coder():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.0, 0.0, 0.5, 0.5]], dtype=torch.float64)
    decode = SSDDecode(anchors, (100, 200))  # height 100, width 200
    regression = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 5 * math.log(2), 0.0]]])
    logits = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]])
    boxes, scores = decode((regression, logits))
    # Anchor 0: centre (100, 50), size 40×40 → unchanged. Anchor 1: centre (0, 0), 100×50 → dx=1
    # shifts by one width, dw=log 2 doubles it: x 0..200 after clipping to the image, y -25..25 → 0..25.
    torch.testing.assert_close(boxes[0, 0], torch.tensor([80.0, 30.0, 120.0, 70.0]))
    torch.testing.assert_close(boxes[0, 1], torch.tensor([0.0, 0.0, 200.0, 25.0]))
    torch.testing.assert_close(scores, torch.softmax(logits, -1))


def test_forward_with_and_without_nms(ssdlite):
    x = torch.rand(2, 3, 320, 320)
    with torch.no_grad():
        num_dets, boxes, scores, labels = ssdlite(x)
    assert num_dets.shape == (2,) and boxes.shape == (2, 100, 4) and scores.shape == (2, 100)
    assert labels.dtype == torch.int32 and (labels != 0).all()  # background is never a detection
    plain = create_model("ssdlite", postprocess=DetectionOptions(nms=False))
    with torch.no_grad():
        boxes, scores = plain(x)
    assert boxes.shape == (2, 3234, 4) and scores.shape == (2, 3234, 91)
    torch.testing.assert_close(scores.sum(-1), torch.ones(2, 3234))
    assert boxes.min() >= 0 and boxes[..., 0::2].max() <= 320 and boxes[..., 1::2].max() <= 320
    assert [o.name for o in plain.input_spec.outputs] == ["boxes", "scores"]


def test_detections_are_found_and_pre_nms_topk_defaults_to_torchvisions(ssd300):
    low = DetectionOptions(conf_thres=0.001)  # COCO-style evaluation: torchvision's per-class bound
    assert create_model("ssd300", settle_batchnorm=False, postprocess=low).detection_options.pre_nms_topk == 400
    assert create_model("ssdlite", settle_batchnorm=False, postprocess=low).detection_options.pre_nms_topk == 300
    # at a deployment threshold the threshold bounds the candidates; the TopK would cost more than NMS
    assert create_model("ssdlite", settle_batchnorm=False).detection_options.pre_nms_topk is None
    keep_all = create_model("ssdlite", settle_batchnorm=False, postprocess=DetectionOptions(pre_nms_topk=50))
    assert keep_all.detection_options.pre_nms_topk == 50
    assert keep_all.model_config["postprocess"]["pre_nms_topk"] == 50
    # A head that says "class 5 at every box" gives boxes of class 5 after NMS.
    with torch.no_grad():
        bias = ssd300.head.classification_head.module_list[1].bias
        saved = bias.clone()
        bias.view(6, 91)[:, 5] += 50.0
        try:
            num_dets, _, _, labels = ssd300(torch.rand(1, 3, 300, 300))
        finally:
            bias.copy_(saved)
    assert num_dets.item() > 0 and (labels[0, : num_dets.item()] == 5).all()


# --- options and weights --------------------------------------------------------------------------


def test_registry_entries():
    assert resolve_name("ssd300_vgg16") == "ssd300" and resolve_name("SSDLite320") == "ssdlite"
    assert resolve_name("ssdlite320_mobilenet_v3_large") == "ssdlite"
    with pytest.raises(InvalidOptionError, match="backbone=mobilenetv3"):
        create_model("ssdlite320_mobilenet_v3_large", backbone="mobilenetv2")
    assert get_entry("ssd300").default_num_classes == 91 == get_entry("ssdlite").default_num_classes
    assert create_model("ssdlite", num_classes=21, settle_batchnorm=False).num_classes == 21


def test_ssd300_refuses_other_resolutions():
    with pytest.raises(InvalidOptionError, match="ssd300 takes only 300"):
        create_model("ssd300", resolution=320)
    with pytest.raises(InvalidOptionError, match="multiple of 32"):
        create_model("ssdlite", resolution=300)


@pytest.mark.parametrize("name", ["ssdlite", "ssd300"])
def test_checkpoint_with_another_class_count_is_refused(name, tmp_path):
    other = create_model(name, num_classes=21, settle_batchnorm=False)
    path = tmp_path / "voc.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(
        WeightsError, match=r"holds 21 classes \(background included\), .* has 91: pass --num-classes 21"
    ):
        create_model(name, weights=path)
    assert create_model(name, num_classes=21, weights=path).num_classes == 21


def test_macs_count_the_network_only_and_agree_with_torch(ssdlite):
    from torch.utils.flop_counter import FlopCounterMode

    from edgecv.models.complexity import count_complexity

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        ssdlite.forward_raw(torch.zeros(1, 3, 320, 320))
    complexity = count_complexity(ssdlite)
    assert 2 * complexity.macs == counter.get_total_flops()
    assert complexity.params == 3_440_060
    assert 0.55e9 < complexity.macs < 0.6e9  # torchvision lists 0.58 GFLOPS (its "FLOPS" are MACs)
