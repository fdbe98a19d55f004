"""YOLOX (Ge et al. 2021, arXiv:2107.08430): anchor-free, decoupled head, CSPDarknet + PAFPN.

Module names are those of the reference implementation (Megvii-BaseDetection/YOLOX:
``backbone.backbone.dark3.1.m.0.conv2.dconv.conv.weight``, ``head.cls_preds.0.bias``…), so its
checkpoints (``{"model": state_dict, ...}``) load as they are. Variants (the reference's exps):

* ``nano``: depth 0.33, width 0.25, depthwise 3×3 convs (DWConv) in backbone, neck and head;
* ``tiny``: depth 0.33, width 0.375;
* ``s``: depth 0.33, width 0.50 (published at 640).

Input: the checkpoints published since YOLOX 0.1.1rc0 (August 2021) take BGR pixels 0..255 with no
normalisation; the "legacy" ones before it took RGB, /255, ImageNet mean/std. The InputSpec
declares the current one. YOLOX's own preprocessing pads bottom-right; edgecv letterboxes centred
(the offset goes into the returned transform, and a trained net is translation-equivariant up to
its border cells).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgecv.errors import InvalidOptionError

from .catalog import register_model
from .detection import Detector
from .spec import InputSpec, detection_outputs

# variant -> (depth multiplier, width multiplier, depthwise)
VARIANTS: dict[str, tuple[float, float, bool]] = {
    "nano": (0.33, 0.25, True),
    "tiny": (0.33, 0.375, False),
    "s": (0.33, 0.50, False),
}
IN_CHANNELS = (256, 512, 1024)  # dark3, dark4, dark5 at width 1
HEAD_CHANNELS = 256
STRIDES = (8, 16, 32)
BN_EPS = 1e-3  # the reference sets eps 1e-3 on every BatchNorm (init_yolo in its exps)
PRIOR_PROB = 1e-2
# exp() of a box-size logit above this is a box wider than 20,000 strides, which no trained net
# predicts; the clamp only keeps garbage inputs from giving inf - inf = NaN corners.
MAX_LOG_SIZE = 10.0


class BaseConv(nn.Module):
    """Conv → BatchNorm → SiLU (``conv``, ``bn``, ``act``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ksize: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            ksize,
            stride,
            (ksize - 1) // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise ``ksize`` conv then pointwise 1×1 (``dconv``, ``pconv``)."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int = 1) -> None:
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels)
        self.pconv = BaseConv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def _conv(depthwise: bool):
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool,
        expansion: float,
        depthwise: bool,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = _conv(depthwise)(hidden, out_channels, 3, 1)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """CSP block: two 1×1 branches, ``n`` bottlenecks on one, concatenated and fused by a 1×1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * 0.5)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat((self.m(self.conv1(x)), self.conv2(x)), 1))


class SPPBottleneck(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: tuple[int, ...] = (5, 9, 13),
    ) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.m)], 1))


class Focus(nn.Module):
    """Space-to-depth (2×2 pixel blocks into channels), then a conv."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int = 3) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The reference's channel order (top-left, bottom-left, top-right, bottom-right): its
        # weights depend on it.
        x = torch.cat(
            (
                x[..., ::2, ::2],
                x[..., 1::2, ::2],
                x[..., ::2, 1::2],
                x[..., 1::2, 1::2],
            ),
            1,
        )
        return self.conv(x)


class CSPDarknet(nn.Module):
    def __init__(self, depth: float, width: float, depthwise: bool) -> None:
        super().__init__()
        conv = _conv(depthwise)
        base = int(width * 64)
        n = max(round(depth * 3), 1)
        self.stem = Focus(3, base, ksize=3)
        self.dark2 = nn.Sequential(
            conv(base, base * 2, 3, 2),
            CSPLayer(base * 2, base * 2, n, depthwise=depthwise),
        )
        self.dark3 = nn.Sequential(
            conv(base * 2, base * 4, 3, 2),
            CSPLayer(base * 4, base * 4, n * 3, depthwise=depthwise),
        )
        self.dark4 = nn.Sequential(
            conv(base * 4, base * 8, 3, 2),
            CSPLayer(base * 8, base * 8, n * 3, depthwise=depthwise),
        )
        self.dark5 = nn.Sequential(
            conv(base * 8, base * 16, 3, 2),
            SPPBottleneck(base * 16, base * 16),
            CSPLayer(base * 16, base * 16, n, shortcut=False, depthwise=depthwise),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dark3 = self.dark3(self.dark2(self.stem(x)))
        dark4 = self.dark4(dark3)
        return dark3, dark4, self.dark5(dark4)


class YOLOPAFPN(nn.Module):
    """CSPDarknet and the PAN neck (top-down then bottom-up), outputs at strides 8, 16, 32."""

    def __init__(self, depth: float, width: float, depthwise: bool) -> None:
        super().__init__()
        self.backbone = CSPDarknet(depth, width, depthwise)
        c3, c4, c5 = (int(c * width) for c in IN_CHANNELS)
        n = round(3 * depth)
        conv = _conv(depthwise)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, False, depthwise)
        self.reduce_conv1 = BaseConv(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, False, depthwise)
        self.bu_conv2 = conv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, False, depthwise)
        self.bu_conv1 = conv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, False, depthwise)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x2, x1, x0 = self.backbone(x)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat((self.upsample(fpn_out0), x1), 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat((self.upsample(fpn_out1), x2), 1))
        pan_out1 = self.C3_n3(torch.cat((self.bu_conv2(pan_out2), fpn_out1), 1))
        pan_out0 = self.C3_n4(torch.cat((self.bu_conv1(pan_out1), fpn_out0), 1))
        return pan_out2, pan_out1, pan_out0


class YOLOXHead(nn.Module):
    """Decoupled head per level: a 1×1 stem, then two 3×3 convs for classes and two for boxes;
    1×1 predictions of class logits (``cls_preds``), box offsets (``reg_preds``) and objectness
    (``obj_preds``, on the box branch)."""

    def __init__(self, num_classes: int, width: float, depthwise: bool) -> None:
        super().__init__()
        conv = _conv(depthwise)
        hidden = int(HEAD_CHANNELS * width)
        self.num_classes = num_classes
        self.stems = nn.ModuleList(BaseConv(int(c * width), hidden, 1) for c in IN_CHANNELS)
        self.cls_convs = nn.ModuleList(
            nn.Sequential(conv(hidden, hidden, 3, 1), conv(hidden, hidden, 3, 1)) for _ in IN_CHANNELS
        )
        self.reg_convs = nn.ModuleList(
            nn.Sequential(conv(hidden, hidden, 3, 1), conv(hidden, hidden, 3, 1)) for _ in IN_CHANNELS
        )
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in IN_CHANNELS)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in IN_CHANNELS)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in IN_CHANNELS)

    def forward(self, features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Per level ``[N, 4 + 1 + C, H, W]``: box offsets, objectness logit, class logits (the
        reference's channel order, before its sigmoid, which lives in ``decode`` here)."""
        outputs = []
        for k, x in enumerate(features):
            x = self.stems[k](x)
            cls_feat = self.cls_convs[k](x)
            reg_feat = self.reg_convs[k](x)
            outputs.append(
                torch.cat(
                    (
                        self.reg_preds[k](reg_feat),
                        self.obj_preds[k](reg_feat),
                        self.cls_preds[k](cls_feat),
                    ),
                    1,
                )
            )
        return tuple(outputs)


class YOLOXDecode(nn.Module):
    """Head outputs → boxes ``[N, ΣH·W, 4]`` (x1, y1, x2, y2 in input pixels) and scores
    ``[N, ΣH·W, C]`` = σ(objectness)·σ(class logit). Centre ``(xy + cell)·stride``, size
    ``exp(wh)·stride``, as the reference's ``decode_outputs``."""

    def __init__(self, strides: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.num_classes = num_classes

    def forward(self, raw: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = [], []
        for p, stride in zip(raw, self.strides):
            h, w = p.shape[-2:]
            p = p.flatten(2).transpose(1, 2)  # [N, H·W, 4 + 1 + C], row-major cells
            ys, xs = torch.meshgrid(
                torch.arange(h, dtype=p.dtype, device=p.device),
                torch.arange(w, dtype=p.dtype, device=p.device),
                indexing="ij",
            )
            grid = torch.stack((xs, ys), -1).view(1, h * w, 2)
            xy = (p[..., :2] + grid) * stride
            wh = torch.exp(p[..., 2:4].clamp(max=MAX_LOG_SIZE)) * stride
            boxes.append(torch.cat((xy - wh / 2, xy + wh / 2), -1))
            scores.append(torch.sigmoid(p[..., 4:5]) * torch.sigmoid(p[..., 5:]))
        return torch.cat(boxes, 1), torch.cat(scores, 1)


class YOLOX(Detector):
    background_class = None
    extra_float_scopes = ("head.cls_preds", "head.reg_preds", "head.obj_preds")

    def __init__(self, num_classes: int = 80, variant: str = "nano") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise InvalidOptionError(f"yolox takes variant in {{{', '.join(VARIANTS)}}}, got {variant!r}")
        depth, width, depthwise = VARIANTS[variant]
        self.num_classes = num_classes
        self.variant = variant
        self.backbone = YOLOPAFPN(depth, width, depthwise)
        self.head = YOLOXHead(num_classes, width, depthwise)
        self.decode = YOLOXDecode(STRIDES, num_classes)
        self.input_spec = InputSpec(
            height=416,
            width=416,
            task="detection",
            resize="letterbox",
            pad_value=114,
            channel_order="BGR",
            scale=1.0,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            outputs=detection_outputs(True),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # The reference's initialize_biases: objectness and class logits start at the prior.
        prior = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
        for conv in (*self.head.cls_preds, *self.head.obj_preds):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, prior)
        # Small box regressions: an untrained net's boxes start about one stride wide, not exp(±20).
        for conv in self.head.reg_preds:
            nn.init.normal_(conv.weight, std=0.01)

    @staticmethod
    def settle_sample(x: torch.Tensor) -> torch.Tensor:
        """Standard-normal samples as the raw pixels this net takes (settle_batchnorm): uniform
        on 0..255 (through the normal CDF), the range and spread of random test images."""
        return 127.5 * (1 + torch.erf(x / math.sqrt(2)))

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.head(self.backbone(x))

    def classes_in_checkpoint(self, state) -> int | None:
        """The class count of a YOLOX checkpoint's ``state`` (read by load_weights)."""
        weight = state.get("head.cls_preds.0.weight")
        return int(weight.shape[0]) if weight is not None and weight.dim() == 4 else None


@register_model(
    "yolox",
    family="YOLO",
    description="YOLOX nano/tiny/s, anchor-free decoupled head (loads YOLOX checkpoints); s is published at 640",
    paper="Ge et al. 2021, YOLOX: Exceeding YOLO Series in 2021 (arXiv:2107.08430)",
    task="detection",
    default_resolution=416,
    resolution_stride=32,
    default_num_classes=80,
    width_mults=(1.0,),
    variant_options={"variant": tuple(VARIANTS)},
    default_variant_options={"variant": "nano"},
    aliases=(
        ("yolox-nano", {"variant": "nano"}),
        ("yolox-tiny", {"variant": "tiny"}),
        ("yolox-s", {"variant": "s"}),
    ),
)
def yolox(
    num_classes: int,
    width_mult: float,
    resolution: int | tuple[int, int],
    variant: str = "nano",
) -> YOLOX:
    return YOLOX(num_classes=num_classes, variant=variant)
