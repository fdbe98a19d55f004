"""SSD (Liu et al., 2016, arXiv:1512.02325) and SSDLite (Sandler et al., 2018, arXiv:1801.04381).

* ``ssd300``: VGG16 to conv4_3 (L2-normalised, learned per-channel scale initialised to 20),
  pool5 3×3/1, fc6 as a 3×3 conv with dilation 6, fc7 as a 1×1 conv, then four extra blocks;
  six feature maps 38/19/10/5/3/1 at 300×300, 4/6/6/6/4/4 default boxes per location: 8732.
* ``ssdlite``: MobileNetV3-Large with the reduced tail; the first feature map is the expansion of
  the last stride-2 block (output stride 16), the second the last conv (stride 32), then four
  extra blocks (1×1, depthwise 3×3/2, 1×1, ReLU6); every prediction layer is a depthwise 3×3 + 1×1
  ("SSDLite", MobileNetV2 paper section 6.2); six boxes everywhere: 3234 at 320×320.
  ``backbone="mobilenetv2"`` attaches the same way to the zoo's MobileNetV2 (expansion of
  block 14, then the last conv), as in the MobileNetV2 paper.

Module names are those of torchvision's ``ssd300_vgg16`` and ``ssdlite320_mobilenet_v3_large``
(``backbone.features``, ``backbone.scale_weight``, ``backbone.extra``, ``head.classification_head``,
``head.regression_head``), so their COCO checkpoints load unchanged, and the default boxes,
box coding (weights 10, 10, 5, 5), clipping and softmax scores are torchvision's. The default
boxes are computed once, at build time, from the feature-map sizes: they are constants of the
exported graph. Class 0 is background.
(One file for the family, as torchvision keeps it, over 400 lines: the backbones, heads and default
boxes of both share the module names that are the checkpoint contract.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ._layers import ConvBNAct
from .catalog import register_model
from .detection import DetectionOptions, Detector
from .mobilenetv3 import BN_EPS, mobilenetv3_features
from .spec import InputSpec, detection_outputs, resolution_hw

# Below this --conf-thres (COCO-style evaluation uses 0.001) the per-class pre-NMS top-k applies.
PRE_NMS_TOPK_BELOW = 0.05

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
# torchvision's BoxCoder bound on exp(): boxes at most 1000/16 times their default box.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)

SSD300_ASPECT_RATIOS = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
SSD300_SCALES = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)
SSD300_STEPS = (8, 16, 32, 64, 100, 300)
SSD300_MEAN = (0.48235, 0.45882, 0.40784)
SSDLITE_ASPECT_RATIOS = ((2, 3),) * 6
SSDLITE_MIN_RATIO, SSDLITE_MAX_RATIO = 0.2, 0.95
# Candidates per class kept before NMS, as torchvision's SSD300 (400) and SSDLite320 (300).
SSD300_TOPK, SSDLITE_TOPK = 400, 300


# --- default boxes -------------------------------------------------------------------------------


def default_box_scales(num_maps: int, min_ratio: float, max_ratio: float) -> list[float]:
    """Equation 4 of the SSD paper, evenly spaced from ``min_ratio`` to ``max_ratio``, plus 1.0
    for the extra box of the last map (torchvision's DefaultBoxGenerator)."""
    if num_maps == 1:
        return [min_ratio, max_ratio]
    return [min_ratio + (max_ratio - min_ratio) * k / (num_maps - 1.0) for k in range(num_maps)] + [1.0]


def boxes_per_location(aspect_ratios: Sequence[Sequence[float]]) -> list[int]:
    """Two square boxes (s_k and sqrt(s_k·s_k+1)) plus a pair (ar, 1/ar) per aspect ratio."""
    return [2 + 2 * len(r) for r in aspect_ratios]


def default_boxes(
    feature_sizes: Sequence[tuple[int, int]],
    image_size: tuple[int, int],
    aspect_ratios: Sequence[Sequence[float]],
    scales: Sequence[float],
    steps: Sequence[int] | None = None,
    clip: bool = True,
) -> torch.Tensor:
    """Default boxes ``[A, 4]`` as (cx, cy, w, h) relative to the image, in the head's order:
    feature map by feature map, row-major over locations, then the boxes of one location.

    Centres are ``(i + 0.5) / f_k``, with ``f_k = image side / step`` when steps are given (SSD300's
    8/16/32/64/100/300). ``clip`` clamps widths and heights to [0, 1] (centres are left alone)."""
    height, width = image_size
    out = []
    for k, (fh, fw) in enumerate(feature_sizes):
        s_k, s_next = scales[k], scales[k + 1]
        wh = [(s_k, s_k), (math.sqrt(s_k * s_next),) * 2]
        for ar in aspect_ratios[k]:
            r = math.sqrt(ar)
            wh += [(s_k * r, s_k / r), (s_k / r, s_k * r)]
        wh_t = torch.tensor(wh, dtype=torch.float64)
        if clip:
            wh_t = wh_t.clamp(0.0, 1.0)
        y_div = fh if steps is None else height / steps[k]
        x_div = fw if steps is None else width / steps[k]
        cy = (torch.arange(fh, dtype=torch.float64) + 0.5) / y_div
        cx = (torch.arange(fw, dtype=torch.float64) + 0.5) / x_div
        grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
        centres = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], -1)  # [fh·fw, 2]
        n = len(wh)
        out.append(torch.cat([centres.repeat_interleave(n, 0), wh_t.repeat(fh * fw, 1)], 1))
    return torch.cat(out, 0)


class SSDDecode(nn.Module):
    """Head outputs → ``boxes [N, A, 4]`` (x1, y1, x2, y2 in input pixels, clipped to the image)
    and softmax ``scores [N, A, C]`` (column 0: background).

    torchvision's BoxCoder.decode_single with weights (10, 10, 5, 5) and its clip of dw/dh, then
    clip_boxes_to_image. The default boxes are non-persistent buffers: constants in the graph,
    absent from state_dicts (torchvision's checkpoints hold none)."""

    def __init__(self, boxes_cxcywh: torch.Tensor, image_size: tuple[int, int]) -> None:
        super().__init__()
        height, width = image_size
        wh_scale = torch.tensor([width, height], dtype=torch.float64)
        # torchvision turns its default boxes into corners in pixels, then back into centre/size.
        lo = (boxes_cxcywh[:, :2] - 0.5 * boxes_cxcywh[:, 2:]) * wh_scale
        hi = (boxes_cxcywh[:, :2] + 0.5 * boxes_cxcywh[:, 2:]) * wh_scale
        lo, hi = lo.float(), hi.float()
        sizes = hi - lo
        self.register_buffer("anchor_sizes", sizes, persistent=False)
        self.register_buffer("anchor_centres", lo + 0.5 * sizes, persistent=False)
        self.register_buffer("image_limits", torch.tensor([width, height] * 2, dtype=torch.float32), persistent=False)
        self.register_buffer("weights", torch.tensor(BOX_CODER_WEIGHTS, dtype=torch.float32), persistent=False)

    @property
    def num_anchors(self) -> int:
        return int(self.anchor_sizes.shape[0])

    def forward(self, raw: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        regression, logits = raw
        codes = regression / self.weights
        centres = codes[..., :2] * self.anchor_sizes + self.anchor_centres
        sizes = torch.exp(codes[..., 2:].clamp(max=BBOX_XFORM_CLIP)) * self.anchor_sizes
        boxes = torch.cat([centres - 0.5 * sizes, centres + 0.5 * sizes], -1)
        boxes = torch.minimum(boxes.clamp(min=0.0), self.image_limits)
        return boxes, F.softmax(logits, dim=-1)


# --- heads ---------------------------------------------------------------------------------------


class ScoringHead(nn.Module):
    """One prediction layer per feature map; outputs concatenated as ``[N, Σ H·W·boxes, columns]``
    in (row, column, box) order, matching :func:`default_boxes`."""

    def __init__(self, module_list: nn.ModuleList, num_columns: int) -> None:
        super().__init__()
        self.module_list = module_list
        self.num_columns = num_columns

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outs = []
        for layer, x in zip(self.module_list, features):
            y = layer(x)  # [N, boxes·columns, H, W]
            outs.append(y.permute(0, 2, 3, 1).reshape(y.shape[0], -1, self.num_columns))
        return torch.cat(outs, 1)


class SSDHead(nn.Module):
    def __init__(self, classification: ScoringHead, regression: ScoringHead) -> None:
        super().__init__()
        self.classification_head = classification
        self.regression_head = regression

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.regression_head(features), self.classification_head(features)


def ssd_head(channels: Sequence[int], boxes: Sequence[int], num_classes: int) -> SSDHead:
    """SSD300's prediction layers: a 3×3 conv per feature map."""

    def layers(columns: int) -> nn.ModuleList:
        return nn.ModuleList(nn.Conv2d(c, columns * b, 3, padding=1) for c, b in zip(channels, boxes))

    head = SSDHead(ScoringHead(layers(num_classes), num_classes), ScoringHead(layers(4), 4))
    _xavier_init(head)
    return head


def ssdlite_head(channels: Sequence[int], boxes: Sequence[int], num_classes: int) -> SSDHead:
    """SSDLite's prediction layers: depthwise 3×3 (BN, ReLU6), then a 1×1 conv with bias."""

    def layers(columns: int) -> nn.ModuleList:
        return nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c, 3, groups=c, act=nn.ReLU6, eps=BN_EPS), nn.Conv2d(c, columns * b, 1))
            for c, b in zip(channels, boxes)
        )

    head = SSDHead(ScoringHead(layers(num_classes), num_classes), ScoringHead(layers(4), 4))
    _normal_init(head)
    return head


def _xavier_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _normal_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.03)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --- backbones -----------------------------------------------------------------------------------

# VGG16 (configuration D) up to pool5: channels, "M" for a 2×2 max-pool.
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _vgg16_layers() -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    pools = 0
    for v in VGG16:
        if v == "M":
            pools += 1
            # pool3 rounds up so 75×75 becomes 38×38, the paper's conv4_3 size.
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=pools == 3))
        else:
            layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(v)
    for m in layers:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return layers


def _vgg_extra(in_channels: int, mid: int, out: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out, 3, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
    )


class VGGFeatures(nn.Module):
    """SSD300's base network: six feature maps (conv4_3 rescaled, fc7, conv8_2 … conv11_2)."""

    out_channels = (512, 1024, 512, 256, 256, 256)

    def __init__(self) -> None:
        super().__init__()
        vgg = _vgg16_layers()
        pool4 = [i for i, m in enumerate(vgg) if isinstance(m, nn.MaxPool2d)][3]
        self.features = nn.Sequential(*vgg[:pool4])  # to conv4_3 and its ReLU
        # Section 3.1 ("ParseNet" L2 normalisation): conv4_3's features have another scale than
        # the deeper maps; each channel gets a learned scale, initialised to 20.
        self.scale_weight = nn.Parameter(torch.full((512,), 20.0))
        fc = nn.Sequential(
            nn.MaxPool2d(3, 1, padding=1),  # pool5 without downsampling
            nn.Conv2d(512, 1024, 3, padding=6, dilation=6),  # fc6, atrous
            nn.ReLU(inplace=True),
            nn.Conv2d(1024, 1024, 1),  # fc7
            nn.ReLU(inplace=True),
        )
        extra = [
            _vgg_extra(1024, 256, 512, 2, 1),  # conv8_2: 10×10
            _vgg_extra(512, 128, 256, 2, 1),  # conv9_2: 5×5
            _vgg_extra(256, 128, 256, 1, 0),  # conv10_2: 3×3
            _vgg_extra(256, 128, 256, 1, 0),  # conv11_2: 1×1
        ]
        _xavier_init(fc)
        for block in extra:
            _xavier_init(block)
        # pool4 … conv5_3 (VGG's pool5 is replaced by fc's), then fc6/fc7: the 19×19 map.
        self.extra = nn.ModuleList([nn.Sequential(*vgg[pool4:-1], fc), *extra])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.features(x)
        outputs = [self.scale_weight.view(1, -1, 1, 1) * F.normalize(x)]
        for block in self.extra:
            x = block(x)
            outputs.append(x)
        return outputs


def _extra_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """SSDLite extra layer: 1×1 to half, depthwise 3×3 stride 2, 1×1 out; BN and ReLU6 each."""
    mid = out_channels // 2
    return nn.Sequential(
        ConvBNAct(in_channels, mid, 1, act=nn.ReLU6, eps=BN_EPS),
        ConvBNAct(mid, mid, 3, 2, groups=mid, act=nn.ReLU6, eps=BN_EPS),
        ConvBNAct(mid, out_channels, 1, act=nn.ReLU6, eps=BN_EPS),
    )


class MobileNetFeatures(nn.Module):
    """SSDLite's base: a MobileNet split at the expansion of its last stride-2 block (``features.0``,
    output stride 16; ``features.1``, stride 32), then four extra blocks (``extra``)."""

    def __init__(self, backbone: nn.Sequential, c4: int, width_mult: float, min_depth: int = 16) -> None:
        super().__init__()
        body = backbone[c4]
        inner = body.block if hasattr(body, "block") else body.conv  # MobileNetV3 / MobileNetV2
        expansion = inner[0]
        # Slicing a Sequential keeps the children's names (``1``, ``2``…): the checkpoint's keys.
        self.features = nn.Sequential(
            nn.Sequential(*backbone[:c4], expansion),
            nn.Sequential(inner[1:], *backbone[c4 + 1 :]),
        )
        depth = [max(min_depth, int(d * width_mult)) for d in (512, 256, 256, 128)]
        last = _out_channels(backbone[-1])
        self.extra = nn.ModuleList(_extra_block(c_in, c_out) for c_in, c_out in zip([last, *depth[:-1]], depth))
        _normal_init(self.extra)
        self.out_channels = (_out_channels(expansion), last, *depth)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self.features:
            x = block(x)
            outputs.append(x)
        for block in self.extra:
            x = block(x)
            outputs.append(x)
        return outputs


def _out_channels(module: nn.Module) -> int:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def _mobilenetv3_backbone(width_mult: float) -> tuple[nn.Sequential, int]:
    # torchvision builds its SSDLite backbone with BatchNorm eps 0.001 and the reduced tail.
    features = mobilenetv3_features("large", width_mult, reduced_tail=True, eps=0.001)
    _normal_init(features)
    strided = [i for i, b in enumerate(features) if getattr(b, "strided", False)]
    return features, strided[-1]


def _mobilenetv2_backbone(width_mult: float) -> tuple[nn.Sequential, int]:
    from .mobilenetv2 import MobileNetV2

    features = MobileNetV2(num_classes=1, width_mult=width_mult).features
    # The paper attaches SSDLite's first layer to the expansion of "layer 15" (block 14 here, the
    # first 160-channel block: output stride 16).
    strided = [
        i
        for i, b in enumerate(features)
        if any(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in b.modules()) and i > 0
    ]
    return features, strided[-1]


def _conv_out(size: int, strides: int) -> int:
    # Every stride-2 layer here pads (k-1)/2: out = ceil(in / 2).
    for _ in range(strides):
        size = -(-size // 2)
    return size


# --- the detector --------------------------------------------------------------------------------


class SSD(Detector):
    """SSD-family detector: ``backbone`` → list of feature maps → ``head`` → ``decode``."""

    background_class = 0

    def __init__(
        self,
        backbone: nn.Module,
        head: SSDHead,
        anchors: torch.Tensor,
        feature_sizes: Sequence[tuple[int, int]],
        boxes_per_location: Sequence[int],
        image_size: tuple[int, int],
        num_classes: int,
        input_spec: InputSpec,
        pre_nms_topk: int,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.decode = SSDDecode(anchors, image_size)
        self.num_classes = num_classes
        self.feature_sizes = tuple(tuple(s) for s in feature_sizes)
        self.boxes_per_location = tuple(boxes_per_location)
        self.default_pre_nms_topk = pre_nms_topk
        self.input_spec = input_spec

    @property
    def num_anchors(self) -> int:
        """Default boxes per image."""
        return self.decode.num_anchors

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box regression ``[N, A, 4]`` and class logits ``[N, A, C]``."""
        return self.head(self.backbone(x))

    def configure_postprocess(self, options: DetectionOptions) -> SSD:
        # torchvision keeps the best 400 (SSD300) / 300 (SSDLite) candidates per class before NMS;
        # without a bound a low --conf-thres hands NMS every one of thousands of boxes per class. At a
        # deployment threshold the threshold itself bounds them, and the per-class TopK over every
        # default box would cost more than the NMS (measured: a third of SSDLite's FP32 latency).
        if options.pre_nms_topk is None and options.conf_thres < PRE_NMS_TOPK_BELOW:
            options = dataclasses.replace(options, pre_nms_topk=self.default_pre_nms_topk)
        return super().configure_postprocess(options)  # type: ignore[return-value]

    def classes_in_checkpoint(self, state: Mapping[str, torch.Tensor]) -> int | None:
        """Classes (background included) of the checkpoint ``state`` when its classification head
        differs from this model's only in the class count; None when it matches or is not SSD's.

        The class layer's channels interleave classes and boxes (``boxes × classes``), so such a
        checkpoint cannot be loaded with a re-initialised head the way a classifier's can."""
        prefix = "head.classification_head.module_list.0."
        own = self.state_dict()
        keys = [k for k in own if k.startswith(prefix) and k.endswith("weight") and own[k].dim() == 4]
        if not keys or keys[-1] not in state:
            return None
        theirs, mine = state[keys[-1]], own[keys[-1]]
        if theirs.shape == mine.shape or theirs.dim() != 4 or theirs.shape[1:] != mine.shape[1:]:
            return None
        boxes = self.boxes_per_location[0]
        return int(theirs.shape[0]) // boxes if theirs.shape[0] % boxes == 0 else None


def _spec(mean: tuple[float, ...], std: tuple[float, ...], height: int, width: int) -> InputSpec:
    # torchvision's GeneralizedRCNNTransform normalises 0..1 images: (x/255 - mean) / std.
    return InputSpec(
        height=height,
        width=width,
        mean=mean,
        std=std,
        scale=1.0 / 255.0,
        resize="resize",
        task="detection",
        outputs=detection_outputs(True),
    )


def build_ssd300(num_classes: int = 91) -> SSD:
    backbone = VGGFeatures()
    feature_sizes = [(s, s) for s in (38, 19, 10, 5, 3, 1)]
    boxes = boxes_per_location(SSD300_ASPECT_RATIOS)
    anchors = default_boxes(feature_sizes, (300, 300), SSD300_ASPECT_RATIOS, SSD300_SCALES, SSD300_STEPS)
    head = ssd_head(backbone.out_channels, boxes, num_classes)
    spec = _spec(SSD300_MEAN, (1.0 / 255.0,) * 3, 300, 300)
    return SSD(backbone, head, anchors, feature_sizes, boxes, (300, 300), num_classes, spec, SSD300_TOPK)


def build_ssdlite(
    num_classes: int = 91,
    width_mult: float = 1.0,
    resolution: int | tuple[int, int] = 320,
    backbone: str = "mobilenetv3",
) -> SSD:
    height, width = resolution_hw(resolution)
    features, c4 = (_mobilenetv3_backbone if backbone == "mobilenetv3" else _mobilenetv2_backbone)(width_mult)
    extractor = MobileNetFeatures(features, c4, width_mult)
    # Output strides 16 and 32, then each extra block halves (rounding up).
    feature_sizes = [(_conv_out(height, n), _conv_out(width, n)) for n in range(4, 10)]
    boxes = boxes_per_location(SSDLITE_ASPECT_RATIOS)
    scales = default_box_scales(len(feature_sizes), SSDLITE_MIN_RATIO, SSDLITE_MAX_RATIO)
    anchors = default_boxes(feature_sizes, (height, width), SSDLITE_ASPECT_RATIOS, scales)
    head = ssdlite_head(extractor.out_channels, boxes, num_classes)
    spec = _spec((0.5,) * 3, (0.5,) * 3, height, width)
    return SSD(extractor, head, anchors, feature_sizes, boxes, (height, width), num_classes, spec, SSDLITE_TOPK)


@register_model(
    "ssd300",
    family="SSD",
    task="detection",
    description="VGG16 SSD, 8732 default boxes (torchvision ssd300_vgg16 weights load as they are)",
    paper="Liu et al. 2016, SSD: Single Shot MultiBox Detector (arXiv:1512.02325)",
    default_resolution=300,
    fixed_resolution=(300, 300),
    width_mults=(1.0,),
    default_num_classes=91,
    aliases=("ssd300_vgg16", "ssd"),
)
def ssd300(num_classes: int, width_mult: float, resolution: int | tuple[int, int]) -> SSD:
    return build_ssd300(num_classes)


@register_model(
    "ssdlite",
    family="SSD",
    task="detection",
    description="SSDLite on MobileNetV3-Large or MobileNetV2 (torchvision ssdlite320_mobilenet_v3_large weights load)",
    paper="Sandler et al. 2018, MobileNetV2 (SSDLite, arXiv:1801.04381); Howard et al. 2019 (arXiv:1905.02244)",
    default_resolution=320,
    min_resolution=64,
    default_num_classes=91,
    variant_options={"backbone": ("mobilenetv3", "mobilenetv2")},
    default_variant_options={"backbone": "mobilenetv3"},
    aliases=("ssdlite320", ("ssdlite320_mobilenet_v3_large", {"backbone": "mobilenetv3"})),
)
def ssdlite(
    num_classes: int, width_mult: float, resolution: int | tuple[int, int], backbone: str = "mobilenetv3"
) -> SSD:
    return build_ssdlite(num_classes, width_mult, resolution, backbone)
