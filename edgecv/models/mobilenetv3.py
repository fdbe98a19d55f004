"""MobileNetV3 (Howard et al., 2019, arXiv:1905.02244): Large and Small.

Inverted residual blocks (MobileNetV2) found by architecture search, with squeeze-and-excitation
(squeeze to a quarter of the expanded width, rounded to a multiple of 8, hard-sigmoid gate) in
some blocks and hard-swish, ``x·ReLU6(x+3)/6``, instead of ReLU in the deeper half (section 5.2).
The last stage is a 1×1 conv to 6× the last block's width, global pooling, then a 1×1 "conv"
(here a Linear) to 1280 (Large) / 1024 (Small) with hard-swish before the classifier (figure 5).

Module names follow torchvision's ``mobilenet_v3_large`` / ``mobilenet_v3_small``
(``features.<i>.block.<j>``, ``classifier.0``/``classifier.3``), so their checkpoints load as
they are. BatchNorm uses eps 0.001 as those checkpoints were trained with. The "reduced tail"
(section 6.3, halving the last stage) is what torchvision's SSDLite uses as its backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ._layers import ConvBNAct, ImageClassifier, init_weights, make_divisible
from .catalog import register_model

BN_EPS = 0.001
DROPOUT = 0.2


@dataclass(frozen=True)
class Bneck:
    """One row of tables 1/2 of the paper, at α = 1."""

    kernel: int
    expanded: int
    out: int
    se: bool
    hard_swish: bool
    stride: int


# Tables 1 and 2; the input of each block is the previous block's output (stem: 16 channels).
LARGE: tuple[Bneck, ...] = (
    Bneck(3, 16, 16, False, False, 1),
    Bneck(3, 64, 24, False, False, 2),
    Bneck(3, 72, 24, False, False, 1),
    Bneck(5, 72, 40, True, False, 2),
    Bneck(5, 120, 40, True, False, 1),
    Bneck(5, 120, 40, True, False, 1),
    Bneck(3, 240, 80, False, True, 2),
    Bneck(3, 200, 80, False, True, 1),
    Bneck(3, 184, 80, False, True, 1),
    Bneck(3, 184, 80, False, True, 1),
    Bneck(3, 480, 112, True, True, 1),
    Bneck(3, 672, 112, True, True, 1),
    Bneck(5, 672, 160, True, True, 2),
    Bneck(5, 960, 160, True, True, 1),
    Bneck(5, 960, 160, True, True, 1),
)
SMALL: tuple[Bneck, ...] = (
    Bneck(3, 16, 16, True, False, 2),
    Bneck(3, 72, 24, False, False, 2),
    Bneck(3, 88, 24, False, False, 1),
    Bneck(5, 96, 40, True, True, 2),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 240, 40, True, True, 1),
    Bneck(5, 120, 48, True, True, 1),
    Bneck(5, 144, 48, True, True, 1),
    Bneck(5, 288, 96, True, True, 2),
    Bneck(5, 576, 96, True, True, 1),
    Bneck(5, 576, 96, True, True, 1),
)
SETTINGS = {"large": LARGE, "small": SMALL}
STEM_CHANNELS = 16
HEAD_CHANNELS = {"large": 1280, "small": 1024}
# Blocks after the last stride-2 one; with it, the stage the reduced tail halves.
TAIL_BLOCKS = 2


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al.): global pool → 1×1 reduce, ReLU → 1×1 expand, hard-sigmoid."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.fc2(F.relu(self.fc1(scale)))
        return x * F.hardsigmoid(scale)


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, cfg: Bneck, width_mult: float, eps: float = BN_EPS) -> None:
        super().__init__()
        expanded = make_divisible(cfg.expanded * width_mult)
        out = make_divisible(cfg.out * width_mult)
        act = nn.Hardswish if cfg.hard_swish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, act=act, eps=eps))
        layers.append(ConvBNAct(expanded, expanded, cfg.kernel, cfg.stride, groups=expanded, act=act, eps=eps))
        if cfg.se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(ConvBNAct(expanded, out, 1, act=None, eps=eps))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = cfg.stride == 1 and in_channels == out
        self.out_channels = out
        self.strided = cfg.stride > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_res_connect else y


def mobilenetv3_features(
    variant: str = "large", width_mult: float = 1.0, *, reduced_tail: bool = False, eps: float = BN_EPS
) -> nn.Sequential:
    """Stem, the bneck blocks and the last 1×1 conv (6× the last block's width), as one Sequential.

    ``reduced_tail`` halves the channels of the last stage (the last stride-2 block's output and
    everything after), as torchvision's SSDLite backbone does (MobileNetV3 paper, section 6.3)."""
    settings = SETTINGS[variant]
    channels = make_divisible(STEM_CHANNELS * width_mult)
    layers: list[nn.Module] = [ConvBNAct(3, channels, 3, 2, act=nn.Hardswish, eps=eps)]
    tail_start = len(settings) - TAIL_BLOCKS
    for i, cfg in enumerate(settings):
        # The last stride-2 block keeps its expansion (SSDLite's first feature map) but halves
        # its output; the blocks after it halve both.
        out_div = 2 if reduced_tail and i >= tail_start - 1 else 1
        exp_div = 2 if reduced_tail and i >= tail_start else 1
        cfg = Bneck(cfg.kernel, cfg.expanded // exp_div, cfg.out // out_div, cfg.se, cfg.hard_swish, cfg.stride)
        block = InvertedResidual(channels, cfg, width_mult, eps)
        layers.append(block)
        channels = block.out_channels
    layers.append(ConvBNAct(channels, 6 * channels, 1, act=nn.Hardswish, eps=eps))
    features = nn.Sequential(*layers)
    features.out_channels = 6 * channels  # type: ignore[assignment]
    return features


class MobileNetV3(ImageClassifier):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, variant: str = "large") -> None:
        super().__init__()
        self.variant = variant
        self.features = mobilenetv3_features(variant, width_mult)
        last_conv = self.features.out_channels
        hidden = make_divisible(HEAD_CHANNELS[variant] * width_mult)
        self._set_head(
            "classifier",
            nn.Sequential(
                nn.Linear(last_conv, hidden), nn.Hardswish(), nn.Dropout(DROPOUT), nn.Linear(hidden, num_classes)
            ),
        )
        # The pooled feature map is what forward_head(pre_logits=True) returns; the 1280/1024-wide
        # hidden layer is part of the head here, as in torchvision.
        self.num_features = last_conv
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model(
    "mobilenetv3",
    family="MobileNet",
    description="searched inverted residuals with SE and hard-swish (torchvision-compatible weights)",
    paper="Howard et al. 2019, Searching for MobileNetV3 (arXiv:1905.02244)",
    variant_options={"variant": ("large", "small")},
    default_variant_options={"variant": "large"},
    aliases=(
        "mobilenet_v3",
        ("mobilenet_v3_large", {"variant": "large"}),
        ("mobilenet_v3_small", {"variant": "small"}),
    ),
)
def mobilenetv3(num_classes: int, width_mult: float, resolution: int, variant: str = "large") -> MobileNetV3:
    return MobileNetV3(num_classes=num_classes, width_mult=width_mult, variant=variant)
