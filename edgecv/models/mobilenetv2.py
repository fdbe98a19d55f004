"""MobileNetV2 (Sandler et al., 2018, arXiv:1801.04381).

Inverted residual blocks with linear bottlenecks: 1×1 expansion (ReLU6), 3×3 depthwise (ReLU6),
1×1 linear projection, with a residual connection when the shape is kept. Width multiplier α
scales every layer (rounded to multiples of 8) except the last 1×1 conv, which is only widened
(α > 1); the resolution multiplier ρ is the input side.

Module names follow torchvision's ``mobilenet_v2`` (``features.<i>.conv.<j>``,
``classifier.1``), so its checkpoints load with ``strict=True`` and compute the same outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import ConvBNAct, ImageClassifier, conv_bn, init_weights, make_divisible
from .catalog import register_model

# Table 2 of the paper: expansion factor t, output channels c, repeats n, first stride s.
SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
DROPOUT = 0.2


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        expand = [ConvBNAct(in_channels, hidden, 1)] if expand_ratio != 1 else []
        self.conv = nn.Sequential(
            *expand,
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            # The projection is linear: a ReLU here would destroy information in the
            # low-dimensional bottleneck (section 3.2 of the paper).
            *conv_bn(hidden, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(ImageClassifier):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        super().__init__()
        channels = make_divisible(STEM_CHANNELS * width_mult)
        layers: list[nn.Module] = [ConvBNAct(3, channels, 3, stride=2)]
        for t, c, n, s in SETTINGS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        last = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        layers.append(ConvBNAct(channels, last, 1))
        self.features = nn.Sequential(*layers)
        self._set_head("classifier", nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(last, num_classes)))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model(
    "mobilenetv2",
    family="MobileNet",
    description="inverted residuals with linear bottlenecks (torchvision-compatible weights)",
    paper="Sandler et al. 2018, MobileNetV2 (arXiv:1801.04381)",
)
def mobilenetv2(num_classes: int, width_mult: float, resolution: int) -> MobileNetV2:
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult)
