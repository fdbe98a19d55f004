"""ShuffleNet V2 (Ma et al., 2018, arXiv:1807.11164).

Each unit splits its channels in two: one half passes through, the other goes through
1×1 conv → 3×3 depthwise → 1×1 conv; the halves are concatenated and shuffled. Down-sampling
units process both halves (the left one with a depthwise + 1×1 conv) and double the channels.

Widths 0.5×/1×/1.5×/2× are the stage widths of Table 5 in the paper. Module names follow
torchvision's ``shufflenet_v2_x*`` (``stage2.0.branch1.0``, ``conv5.0``, ``fc``), so its
checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import ConvBNAct, ImageClassifier, channel_shuffle, conv_bn, init_weights
from .catalog import register_model

# Output channels of conv1, stage2, stage3, stage4, conv5 per width (Table 5 of the paper).
STAGE_CHANNELS: dict[float, tuple[int, int, int, int, int]] = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
STAGE_REPEATS = (4, 8, 4)


class ShuffleUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                *conv_bn(in_channels, in_channels, 3, stride, groups=in_channels),
                *conv_bn(in_channels, half, 1, act=nn.ReLU),
            )
        self.branch2 = nn.Sequential(
            *conv_bn(in_channels if stride > 1 else half, half, 1, act=nn.ReLU),
            *conv_bn(half, half, 3, stride, groups=half),
            *conv_bn(half, half, 1, act=nn.ReLU),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        else:
            passthrough, processed = x.chunk(2, dim=1)
            out = torch.cat((passthrough, self.branch2(processed)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(ImageClassifier):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0) -> None:
        super().__init__()
        stem, *stages, last = STAGE_CHANNELS[width_mult]
        self.conv1 = ConvBNAct(3, stem, 3, stride=2, act=nn.ReLU)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = stem
        for index, (out, repeats) in enumerate(zip(stages, STAGE_REPEATS), start=2):
            units = [ShuffleUnit(channels, out, 2)]
            units += [ShuffleUnit(out, out, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{index}", nn.Sequential(*units))
            channels = out
        self.conv5 = ConvBNAct(channels, last, 1, act=nn.ReLU)
        self._set_head("fc", nn.Linear(last, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.conv5(x)


@register_model(
    "shufflenetv2",
    family="ShuffleNet",
    description="channel split + shuffle units (torchvision-compatible weights)",
    paper="Ma et al. 2018, ShuffleNet V2 (arXiv:1807.11164)",
    width_mults=tuple(STAGE_CHANNELS),
    # torchvision's names, each one width.
    aliases=tuple(
        (f"shufflenet_v2_x{w:g}".replace(".", "_") + ("_0" if w == int(w) else ""), {"width_mult": w})
        for w in STAGE_CHANNELS
    ),
)
def shufflenetv2(num_classes: int, width_mult: float, resolution: int) -> ShuffleNetV2:
    # The registry accepts values close to an allowed width; snap to the table's key.
    width = min(STAGE_CHANNELS, key=lambda w: abs(w - width_mult))
    return ShuffleNetV2(num_classes=num_classes, width_mult=width)
