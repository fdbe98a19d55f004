"""Building blocks shared by the zoo's classifiers.

Layer lists are kept flat (``conv_bn`` returns ``[conv, bn, act]``) because module names are the
state_dict contract: torchvision nests some Conv-BN-Act triples (``features.0.0.weight``) and
flattens others into one Sequential (``branch2.3.weight``), and checkpoints only load if ours match.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .spec import InputSpec

ActFactory = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90 % of it.

    This is the channel rounding of the MobileNet reference implementations: it keeps
    multiples of ``divisor`` unchanged, so a width multiplier that gives integral, aligned
    channel counts leaves the paper's architecture intact.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    stride: int = 1,
    groups: int = 1,
    act: ActFactory | None = None,
    eps: float = 1e-5,
) -> list[nn.Module]:
    """Conv (no bias, "same" padding) → BatchNorm(eps) → optional activation, as a flat list."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels, eps=eps),
    ]
    if act is not None:
        layers.append(act())
    return layers


class ConvBNAct(nn.Sequential):
    """Conv-BN-activation with children ``0``, ``1``, ``2`` (torchvision's Conv2dNormActivation)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: ActFactory | None = nn.ReLU6,
        eps: float = 1e-5,
    ) -> None:
        super().__init__(*conv_bn(in_channels, out_channels, kernel_size, stride, groups, act, eps))
        self.out_channels = out_channels


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` groups so the next group conv sees all of them."""
    batch, channels, height, width = x.shape
    x = x.reshape(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).reshape(batch, channels, height, width)


def init_weights(module: nn.Module) -> None:
    """He-normal convs, unit BatchNorm, small-normal linear layers (the torchvision recipe)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def settle_batchnorm(model: nn.Module, input_shape: tuple[int, int, int], batch: int = 4, seed: int = 0) -> None:
    """Set every BatchNorm's running statistics from one forward pass of standard-normal inputs.

    Untrained BatchNorm (mean 0, var 1) with He-initialised depthwise convolutions shrinks the
    signal at every block: a random MobileNetV2 gives logits of about 1e-14, where verification and
    INT8 fidelity figures mean nothing. With normalised activations a random-weight model has
    activation ranges of a trained network's order (its INT8 fidelity is still lower than a trained
    network's: random layers amplify quantization noise)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [(m, m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the batch statistics exactly
        m.train()  # only the norms: dropout stays off (and off the global RNG)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *input_shape), generator=generator)
    # A model fed raw pixels (YOLOX takes 0..255) settles on inputs of that range: statistics from
    # standard-normal inputs would leave its activations ~100× too large and its boxes infinite.
    sample = getattr(model, "settle_sample", None)
    if sample is not None:
        x = sample(x)
    # A detector's statistics come from its network alone; decoding and NMS hold no BatchNorm.
    forward = getattr(model, "forward_raw", model)
    try:
        forward(x)
    finally:
        for m, momentum, training in saved:
            m.momentum = momentum
            m.train(training)
            m.num_batches_tracked.zero_()  # an untrained model has seen no training batch


class ImageClassifier(nn.Module, ABC):
    """The surface every zoo classifier shares (timm's): features, head, resettable classifier.

    A subclass builds its backbone, calls :meth:`_set_head` with the module applied to the
    pooled features (a Linear, or a Sequential ending in one) and implements
    :meth:`forward_features` returning the last feature map (N, C, H, W).
    Inputs follow the ImageNet recipe (RGB, mean/std, resize + centre crop);
    ``create_model`` sets the resolution on ``input_spec``.
    """

    num_classes: int
    num_features: int

    def __init__(self) -> None:
        super().__init__()
        self.input_spec = InputSpec()

    def _set_head(self, attr: str, head: nn.Module) -> None:
        setattr(self, attr, head)
        self._head_attr = attr
        self.num_features = self._head_linear()[1].in_features
        self.num_classes = self._head_linear()[1].out_features

    def _head_linear(self) -> tuple[str, nn.Linear]:
        head = getattr(self, self._head_attr)
        if isinstance(head, nn.Linear):
            return self._head_attr, head
        name, linear = [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)][-1]
        return f"{self._head_attr}.{name}", linear

    @property
    def classifier_keys(self) -> tuple[str, ...]:
        """state_dict key prefixes of the classification layer (re-initialised on a class change)."""
        return (self._head_linear()[0] + ".",)

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before global pooling."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # Global average pooling exports to ONNX GlobalAveragePool, which every backend fuses.
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else getattr(self, self._head_attr)(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classification layer with a freshly initialised one for ``num_classes``."""
        path, old = self._head_linear()
        new = nn.Linear(old.in_features, num_classes, device=old.weight.device, dtype=old.weight.dtype)
        init_weights(new)
        parent_path, _, leaf = path.rpartition(".")
        parent = self.get_submodule(parent_path) if parent_path else self
        setattr(parent, leaf, new)
        self.num_classes = num_classes
