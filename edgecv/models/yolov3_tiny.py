"""YOLOv3-tiny (Redmon & Farhadi 2018, arXiv:1804.02767), the layout of Darknet's published
``yolov3-tiny.cfg``.

Seven 3×3 conv + leaky-ReLU(0.1) layers with max-pools down to stride 32, then two YOLO heads:
13×13 and 26×26 at 416 (stride 32 and 16), three anchors each from the published set, with the
published masks 3,4,5 and 1,2,3 (anchor 1 serves both scales and anchor 0 none: that is the cfg
Darknet ships, and the one its weights were trained with).

Module names follow the cfg's layer indices the way the widely used PyTorch port (ultralytics'
archived yolov3) names them (``module_list.<i>.Conv2d``, ``.BatchNorm2d``, ``.activation``); Darknet
``.weights`` files load by cfg order (:meth:`YOLOv3Tiny.load_darknet_weights`). With
``backbone=mobilenetv2|shufflenetv2`` the layers 0–12 are replaced by the zoo classifier's
stride-16 and stride-32 features (``backbone.*``, named as the classifier so ImageNet weights
load into it) and the head keeps the cfg's indices 13–22.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from edgecv.errors import InvalidOptionError, WeightsError

from .catalog import register_model
from .darknet import (
    DarknetConv,
    DarknetHeader,
    load_darknet_weights,
    values_needed,
    write_darknet_weights,
)
from .detection import Detector
from .spec import InputSpec, detection_outputs

ANCHORS = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))
# (mask, stride) of the cfg's two [yolo] layers, in cfg order.
YOLO_LAYERS = (((3, 4, 5), 32), ((1, 2, 3), 16))
LEAKY_SLOPE = 0.1
# exp() of a box-size logit above this is a box 20,000 anchors wide, which no trained net predicts;
# the clamp only keeps garbage inputs from giving inf - inf = NaN corners.
MAX_LOG_SIZE = 10.0
BACKBONES = ("darknet", "mobilenetv2", "shufflenetv2")

# The cfg, layer by layer: ("conv", filters, size, stride, batch_normalize) (activation leaky with
# batch norm, linear without), ("maxpool", size, stride), ("route", layers), ("upsample", stride),
# ("yolo", index into YOLO_LAYERS).
PREDICT = -1  # filters of a prediction conv: anchors × (5 + classes)
CFG: tuple[tuple, ...] = (
    ("conv", 16, 3, 1, True),  # 0
    ("maxpool", 2, 2),
    ("conv", 32, 3, 1, True),  # 2
    ("maxpool", 2, 2),
    ("conv", 64, 3, 1, True),  # 4
    ("maxpool", 2, 2),
    ("conv", 128, 3, 1, True),  # 6
    ("maxpool", 2, 2),
    ("conv", 256, 3, 1, True),  # 8: routed into the stride-16 head
    ("maxpool", 2, 2),
    ("conv", 512, 3, 1, True),  # 10
    ("maxpool", 2, 1),  # 11: keeps 13×13
    ("conv", 1024, 3, 1, True),  # 12
    ("conv", 256, 1, 1, True),  # 13
    ("conv", 512, 3, 1, True),  # 14
    ("conv", PREDICT, 1, 1, False),  # 15
    ("yolo", 0),  # 16
    ("route", (-4,)),  # 17: layer 13
    ("conv", 128, 1, 1, True),  # 18
    ("upsample", 2),  # 19
    ("route", (-1, 8)),  # 20
    ("conv", 256, 3, 1, True),  # 21
    ("conv", PREDICT, 1, 1, False),  # 22
    ("yolo", 1),  # 23
)
BACKBONE_END = 12  # layers 0..12 are the backbone; the alternatives replace them
ROUTED = 8  # the stride-16 feature the second head concatenates
PREDICTION_LAYERS = (15, 22)


class DarknetMaxPool(nn.Module):
    """Darknet's ``[maxpool]`` with size 2, stride 1: one cell of padding right and bottom that
    never wins the max (darknet skips it), i.e. the border cell's own value. Zero padding would
    replace every negative border maximum (leaky ReLU outputs are often negative) with 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Replicated edge values equal the "padding never wins" max and export to ONNX Pad(edge).
        return F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), kernel_size=2, stride=1)


class Route(nn.Module):
    """``[route]``: its inputs, concatenated along channels (held by forward_raw)."""

    def __init__(self, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return xs[0] if len(xs) == 1 else torch.cat(xs, 1)


class YoloLayerMarker(nn.Identity):
    """``[yolo]``: holds no weights; decoding happens in the model's ``decode``."""


def _conv_layer(in_channels: int, filters: int, size: int, stride: int, bn: bool) -> nn.Sequential:
    layer = nn.Sequential()
    layer.add_module(
        "Conv2d",
        nn.Conv2d(in_channels, filters, size, stride, (size - 1) // 2, bias=not bn),
    )
    if bn:
        layer.add_module("BatchNorm2d", nn.BatchNorm2d(filters))
        layer.add_module("activation", nn.LeakyReLU(LEAKY_SLOPE))
    return layer


class YoloDecode(nn.Module):
    """Raw maps ``[N, A·(5+C), H, W]`` → boxes ``[N, ΣA·H·W, 4]`` (x1, y1, x2, y2, input pixels)
    and scores ``[N, ΣA·H·W, C]`` (logistic objectness × logistic class probability).

    Darknet's decoding: centre ``(σ(t_xy) + cell) · stride``, size ``exp(t_wh) · anchor`` with
    anchors in input pixels. Anchors are ordered per scale, then per anchor, row, column."""

    def __init__(
        self,
        anchors: tuple[tuple[tuple[int, int], ...], ...],
        strides: tuple[int, ...],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.num_classes = num_classes
        for i, level in enumerate(anchors):
            self.register_buffer(
                f"anchors{i}",
                torch.tensor(level, dtype=torch.float32),
                persistent=False,
            )

    def forward(self, raw: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = [], []
        for i, (p, stride) in enumerate(zip(raw, self.strides)):
            anchors = getattr(self, f"anchors{i}")
            n, _, h, w = p.shape
            a = anchors.shape[0]
            p = p.view(n, a, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2)
            ys, xs = torch.meshgrid(
                torch.arange(h, dtype=p.dtype, device=p.device),
                torch.arange(w, dtype=p.dtype, device=p.device),
                indexing="ij",
            )
            grid = torch.stack((xs, ys), -1).view(1, 1, h, w, 2)
            xy = (torch.sigmoid(p[..., :2]) + grid) * stride
            wh = torch.exp(p[..., 2:4].clamp(max=MAX_LOG_SIZE)) * anchors.view(1, a, 1, 1, 2)
            boxes.append(torch.cat((xy - wh / 2, xy + wh / 2), -1).reshape(n, -1, 4))
            prob = torch.sigmoid(p[..., 4:5]) * torch.sigmoid(p[..., 5:])
            scores.append(prob.reshape(n, -1, self.num_classes))
        return torch.cat(boxes, 1), torch.cat(scores, 1)


class MobileNetV2Features(nn.Module):
    """MobileNetV2's ``features`` up to the 320-channel block (stride 32), the 96-channel block's
    output (stride 16) taken on the way; the final 1×1 to 1280 channels is left out."""

    SPLIT, END = 14, 18

    def __init__(self, width_mult: float) -> None:
        super().__init__()
        from .mobilenetv2 import MobileNetV2

        net = MobileNetV2(num_classes=1, width_mult=width_mult)
        self.features = nn.Sequential(*net.features[: self.END])
        self.channels = (
            self.features[self.SPLIT - 1].conv[-1].num_features,
            self.features[self.END - 1].conv[-1].num_features,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c16 = self.features[: self.SPLIT](x)
        return c16, self.features[self.SPLIT :](c16)


class ShuffleNetV2Features(nn.Module):
    """ShuffleNet V2's stem and stages 2–4: stage 3 at stride 16, stage 4 at stride 32
    (``conv5`` is left out)."""

    def __init__(self, width_mult: float) -> None:
        super().__init__()
        from .shufflenetv2 import STAGE_CHANNELS, ShuffleNetV2

        if width_mult not in STAGE_CHANNELS:
            allowed = ", ".join(f"{w:g}" for w in STAGE_CHANNELS)
            raise InvalidOptionError(
                f"yolov3-tiny with the shufflenetv2 backbone takes width_mult in {{{allowed}}}, got {width_mult:g}"
            )
        net = ShuffleNetV2(num_classes=1, width_mult=width_mult)
        for name in ("conv1", "maxpool", "stage2", "stage3", "stage4"):
            setattr(self, name, getattr(net, name))
        self.channels = (STAGE_CHANNELS[width_mult][2], STAGE_CHANNELS[width_mult][3])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c16 = self.stage3(self.stage2(self.maxpool(self.conv1(x))))
        return c16, self.stage4(c16)


class YOLOv3Tiny(Detector):
    background_class = None
    extra_float_scopes = tuple(f"module_list.{i}" for i in PREDICTION_LAYERS)

    def __init__(self, num_classes: int = 80, backbone: str = "darknet", width_mult: float = 1.0) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise InvalidOptionError(f"yolov3-tiny takes backbone in {{{', '.join(BACKBONES)}}}, got {backbone!r}")
        if backbone == "darknet" and width_mult != 1.0:
            raise InvalidOptionError(f"yolov3-tiny has the cfg's fixed widths (width_mult 1), got {width_mult:g}")
        self.num_classes = num_classes
        self.backbone_name = backbone
        outputs_per_anchor = 5 + num_classes
        self.module_list = nn.ModuleDict()
        channels: dict[int, int] = {}
        first = 0
        if backbone != "darknet":
            self.backbone = (
                MobileNetV2Features(width_mult) if backbone == "mobilenetv2" else ShuffleNetV2Features(width_mult)
            )
            channels[ROUTED], channels[BACKBONE_END] = self.backbone.channels
            first = BACKBONE_END + 1
        previous = channels.get(first - 1, 3)
        for index in range(first, len(CFG)):
            kind, *args = CFG[index]
            if kind == "conv":
                filters, size, stride, bn = args
                if filters == PREDICT:
                    yolo_index = CFG[index + 1][1]
                    filters = len(YOLO_LAYERS[yolo_index][0]) * outputs_per_anchor
                module: nn.Module = _conv_layer(previous, filters, size, stride, bn)
                previous = filters
            elif kind == "maxpool":
                size, stride = args
                module = DarknetMaxPool() if stride == 1 else nn.MaxPool2d(size, stride)
            elif kind == "route":
                (layers,) = args
                module = Route(layers)
                previous = sum(channels[i if i >= 0 else index + i] for i in layers)
            elif kind == "upsample":
                module = nn.Upsample(scale_factor=args[0], mode="nearest")
            else:
                module = YoloLayerMarker()
            channels[index] = previous
            self.module_list[str(index)] = module
        self.decode = YoloDecode(
            tuple(tuple(ANCHORS[i] for i in mask) for mask, _ in YOLO_LAYERS),
            tuple(stride for _, stride in YOLO_LAYERS),
            num_classes,
        )
        self.input_spec = InputSpec(
            height=416,
            width=416,
            task="detection",
            resize="letterbox",
            pad_value=114,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            scale=1.0 / 255.0,
            channel_order="RGB",
            outputs=detection_outputs(True),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, mode="fan_out", nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # Prediction convs start near the prior objectness/class probability of 1 % (so an
        # untrained model does not emit every anchor).
        for index in PREDICTION_LAYERS:
            conv = self.module_list[str(index)].Conv2d
            nn.init.normal_(conv.weight, std=0.01)
            bias = conv.bias.detach().view(-1, 5 + self.num_classes)
            bias[:, 4:] = -4.6

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layers = self.module_list
        outputs: dict[int, torch.Tensor] = {}
        if self.backbone_name == "darknet":
            for index in range(BACKBONE_END + 1):
                x = layers[str(index)](x)
                outputs[index] = x
        else:
            outputs[ROUTED], outputs[BACKBONE_END] = self.backbone(x)
            x = outputs[BACKBONE_END]
        predictions = []
        for index in range(BACKBONE_END + 1, len(CFG)):
            module = layers[str(index)]
            if isinstance(module, Route):
                x = module(*(outputs[i if i >= 0 else index + i] for i in module.layers))
            elif isinstance(module, YoloLayerMarker):
                predictions.append(x)
            else:
                x = module(x)
            outputs[index] = x
        return tuple(predictions)

    def classes_in_checkpoint(self, state) -> int | None:
        """The class count of a yolov3-tiny state_dict (read by load_weights): the first
        prediction conv has anchors × (5 + classes) filters."""
        weight = state.get(f"module_list.{PREDICTION_LAYERS[0]}.Conv2d.weight")
        anchors = len(YOLO_LAYERS[0][0])
        if weight is None or weight.dim() != 4 or weight.shape[0] % anchors:
            return None
        return int(weight.shape[0]) // anchors - 5

    # Darknet .weights --------------------------------------------------------------------------

    def darknet_layers(self) -> list[DarknetConv]:
        """The ``[convolutional]`` layers in cfg order (darknet backbone only)."""
        if self.backbone_name != "darknet":
            raise WeightsError(
                f"Darknet .weights files follow yolov3-tiny.cfg; this yolov3-tiny has the "
                f"{self.backbone_name} backbone, which no Darknet cfg describes (load a state_dict instead)"
            )
        layers = []
        for module in self.module_list.values():
            if isinstance(module, nn.Sequential) and hasattr(module, "Conv2d"):
                layers.append(DarknetConv(module.Conv2d, getattr(module, "BatchNorm2d", None)))
        return layers

    def _classes_hint(self, path: str | os.PathLike[str]) -> str:
        """The class count a file of that length would fit, if any."""
        from .darknet import read_darknet_file

        _, values = read_darknet_file(path)
        needed = values_needed(self.darknet_layers())
        per_class = sum(
            len(YOLO_LAYERS[CFG[i + 1][1]][0]) * (self.module_list[str(i)].Conv2d.in_channels + 1)
            for i in PREDICTION_LAYERS
        )
        extra = values.size - needed
        if extra and extra % per_class == 0 and self.num_classes + extra // per_class >= 1:
            return f"; it fits yolov3-tiny with {self.num_classes + extra // per_class} classes (--num-classes)"
        return ""

    def load_darknet_weights(self, path: str | os.PathLike[str]) -> DarknetHeader:
        layers = self.darknet_layers()
        what = f"yolov3-tiny.cfg with {self.num_classes} classes"
        try:
            return load_darknet_weights(layers, path, what=what)
        except WeightsError as exc:
            if "does not fit" in str(exc):
                raise WeightsError(f"{exc}{self._classes_hint(path)}") from None
            raise

    def save_darknet_weights(
        self,
        path: str | os.PathLike[str],
        *,
        version: tuple[int, int, int] = (0, 2, 0),
        seen: int = 0,
    ) -> Path:
        return write_darknet_weights(self.darknet_layers(), path, version=version, seen=seen)


@register_model(
    "yolov3-tiny",
    family="YOLO",
    description="YOLOv3-tiny, Darknet's yolov3-tiny.cfg (loads Darknet .weights); --backbone swaps the features",
    paper="Redmon & Farhadi 2018, YOLOv3: An Incremental Improvement (arXiv:1804.02767)",
    task="detection",
    default_resolution=416,
    resolution_stride=32,
    default_num_classes=80,
    # The cfg's widths; the swapped-in backbones at their standard (α 1) widths.
    width_mults=(1.0,),
    variant_options={"backbone": BACKBONES},
    default_variant_options={"backbone": "darknet"},
    aliases=("yolov3tiny", "yolo-v3-tiny"),
)
def yolov3_tiny(
    num_classes: int,
    width_mult: float,
    resolution: int | tuple[int, int],
    backbone: str = "darknet",
) -> YOLOv3Tiny:
    return YOLOv3Tiny(num_classes=num_classes, backbone=backbone, width_mult=width_mult)
