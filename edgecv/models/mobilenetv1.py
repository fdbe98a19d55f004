"""MobileNetV1 (Howard et al., 2017, arXiv:1704.04861).

A stem 3×3 conv followed by 13 depthwise-separable blocks (3×3 depthwise conv, then 1×1
pointwise conv, each with BatchNorm and ReLU6), global average pooling and one linear layer.

Width multiplier α: every layer's channels are ``make_divisible(c·α, 8)``. For the paper's
α ∈ {1, 0.75, 0.5, 0.25} every c·α is already a multiple of 8 (the smallest is 32·0.25 = 8), so the
rounding leaves the paper's channel counts untouched and MACs/parameters match its Table 6;
other α values get the hardware-friendly rounding every MobileNet implementation applies.
Resolution multiplier ρ is the input side (``resolution`` = ρ·224); the network itself does
not depend on it, its MACs scale with the input area (Table 7).
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import ConvBNAct, ImageClassifier, init_weights, make_divisible
from .catalog import register_model

# (output channels, stride) of the 13 depthwise-separable blocks, Table 1 of the paper. The
# paper's table lists the second-to-last depthwise conv with stride 2 at 7×7, a known typo: the
# feature map stays 7×7 there (the table's own output sizes say so).
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
STEM_CHANNELS = 32


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pw = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class MobileNetV1(ImageClassifier):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        super().__init__()
        channels = make_divisible(STEM_CHANNELS * width_mult)
        layers: list[nn.Module] = [ConvBNAct(3, channels, 3, stride=2)]
        for out, stride in BLOCKS:
            out = make_divisible(out * width_mult)
            layers.append(DepthwiseSeparable(channels, out, stride))
            channels = out
        self.features = nn.Sequential(*layers)
        self._set_head("classifier", nn.Linear(channels, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model(
    "mobilenetv1",
    family="MobileNet",
    description="depthwise-separable convolutions, BN + ReLU6",
    paper="Howard et al. 2017, MobileNets (arXiv:1704.04861)",
    aliases=("mobilenet",),
)
def mobilenetv1(num_classes: int, width_mult: float, resolution: int) -> MobileNetV1:
    return MobileNetV1(num_classes=num_classes, width_mult=width_mult)
