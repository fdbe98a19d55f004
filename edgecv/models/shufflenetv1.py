"""ShuffleNet (V1) (Zhang et al., 2017, arXiv:1707.01083).

Units are bottlenecks whose 1×1 convs are group convolutions (g groups), with a channel
shuffle between the first 1×1 conv and the 3×3 depthwise conv so information crosses groups.
Stride-2 units concatenate a 3×3 average-pooled shortcut instead of adding it. The bottleneck
is a quarter of the unit's output channels. Following section 3.3 of the paper, the first 1×1
conv of Stage 2 is not grouped: its input (the stem's 24 channels) is too narrow to split.

Scale factor s ("ShuffleNet s×", passed as ``width_mult``) multiplies the stage widths of
Table 1. Those are multiples of 4·g, which group convs on a quarter-width bottleneck need, so
scaled widths are rounded to the nearest multiple of 4·g (only 0.5× and 1.5× with g = 2 or 4
move, e.g. 0.5×, g=4: 136 → 144 in Stage 2). The stem does not scale linearly: the paper's
figure for 1.5× (Table 5, 292 MFLOPs) is only reached with the 24-channel stem of 1×, and the
authors' released models (megvii-model/ShuffleNet-Series) use 12/24/24/48 channels for
0.5×/1×/1.5×/2×; we do the same, rounded to the nearest multiple of g (16 for 0.5× with g = 8)
because a stride-2 unit's grouped branch produces ``out - in`` channels.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layers import ConvBNAct, ImageClassifier, channel_shuffle, init_weights, make_divisible
from .catalog import register_model

# Output channels of Stage 2/3/4 at 1× per number of groups (Table 1 of the paper).
STAGE_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_REPEATS = (4, 8, 4)
# Stem channels per scale factor, from the authors' released models (see the module docstring).
STEM_CHANNELS: dict[float, int] = {0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}
SCALES = tuple(STEM_CHANNELS)


class ShuffleUnit(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        groups: int,
        group_first_conv: bool = True,
    ) -> None:
        super().__init__()
        bottleneck = out_channels // 4
        first_groups = groups if group_first_conv else 1
        self.stride = stride
        self.shuffle_groups = first_groups
        # A stride-2 unit concatenates its input, so its branch only adds the missing channels.
        branch_out = out_channels - in_channels if stride > 1 else out_channels
        self.compress = ConvBNAct(in_channels, bottleneck, 1, groups=first_groups, act=nn.ReLU)
        self.depthwise = ConvBNAct(bottleneck, bottleneck, 3, stride, groups=bottleneck, act=None)
        self.expand = ConvBNAct(bottleneck, branch_out, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride > 1 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.compress(x)
        if self.shuffle_groups > 1:
            out = channel_shuffle(out, self.shuffle_groups)
        out = self.expand(self.depthwise(out))
        if self.stride > 1:
            return self.relu(torch.cat((self.shortcut(x), out), dim=1))
        return self.relu(x + out)


def stage_widths(groups: int, scale: float) -> tuple[int, tuple[int, ...]]:
    """(stem channels, Stage 2/3/4 output channels) for ``groups`` and scale factor ``scale``."""
    stem = make_divisible(STEM_CHANNELS[scale], groups)
    stages = tuple(make_divisible(c * scale, 4 * groups) for c in STAGE_CHANNELS[groups])
    return stem, stages


class ShuffleNetV1(ImageClassifier):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, groups: int = 3) -> None:
        super().__init__()
        stem, stages = stage_widths(groups, width_mult)
        self.stem = ConvBNAct(3, stem, 3, stride=2, act=nn.ReLU)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = stem
        blocks: list[nn.Module] = []
        for stage, (out, repeats) in enumerate(zip(stages, STAGE_REPEATS)):
            for i in range(repeats):
                first = i == 0
                blocks.append(
                    ShuffleUnit(
                        channels,
                        out,
                        stride=2 if first else 1,
                        groups=groups,
                        group_first_conv=not (stage == 0 and first),
                    )
                )
                channels = out
        self.features = nn.Sequential(*blocks)
        self._set_head("classifier", nn.Linear(channels, num_classes))
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.maxpool(self.stem(x)))


@register_model(
    "shufflenetv1",
    family="ShuffleNet",
    description="group pointwise convolutions + channel shuffle",
    paper="Zhang et al. 2017, ShuffleNet (arXiv:1707.01083)",
    width_mults=SCALES,
    variant_options={"groups": tuple(STAGE_CHANNELS)},
    default_variant_options={"groups": 3},
)
def shufflenetv1(num_classes: int, width_mult: float, resolution: int, groups: int = 3) -> ShuffleNetV1:
    scale = min(SCALES, key=lambda s: abs(s - width_mult))
    return ShuffleNetV1(num_classes=num_classes, width_mult=scale, groups=groups)
