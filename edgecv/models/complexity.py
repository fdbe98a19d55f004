"""Parameter and multiply-accumulate (MAC) counts of a model, layer by layer.

MACs are counted the way the MobileNet and ShuffleNet papers count "Mult-Adds"/"FLOPs":
convolutions and fully connected layers only (BatchNorm folds into the conv at deployment,
activations and pooling are negligible). A forward pass with hooks reads each layer's real
output size, so strides, padding and the input resolution are taken into account.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class LayerComplexity:
    name: str
    kind: str
    macs: int
    params: int
    output_shape: tuple[int, ...]


@dataclass(frozen=True)
class Complexity:
    """``params``: every parameter of the model; ``macs``: per forward pass of ``input_shape``."""

    params: int
    macs: int
    input_shape: tuple[int, ...]
    per_layer: tuple[LayerComplexity, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "macs": self.macs, "input_shape": list(self.input_shape)}


def conv2d_macs(conv: nn.Conv2d, output: torch.Tensor) -> int:
    """K_h·K_w·(C_in/g) multiply-adds for each output element."""
    kh, kw = conv.kernel_size
    return kh * kw * (conv.in_channels // conv.groups) * output.numel()


def linear_macs(linear: nn.Linear, output: torch.Tensor) -> int:
    return linear.in_features * output.numel()


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        return conv2d_macs(module, output)
    return linear_macs(module, output)


COUNTED = (nn.Conv2d, nn.Linear)


def count_complexity(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> Complexity:
    """Count parameters and MACs of ``model`` for one forward pass on zeros of ``input_shape``.

    ``input_shape`` defaults to the model's ``input_spec.shape`` (batch 1), else 1×3×224×224.
    """
    if input_shape is None:
        spec = getattr(model, "input_spec", None)
        input_shape = tuple(spec.shape) if spec is not None else (1, 3, 224, 224)
    layers: list[LayerComplexity] = []

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor, name: str) -> None:
        layers.append(
            LayerComplexity(
                name=name,
                kind=type(module).__name__,
                macs=layer_macs(module, output),
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                output_shape=tuple(output.shape),
            )
        )

    handles = [
        module.register_forward_hook(functools.partial(hook, name=name))
        for name, module in model.named_modules()
        if isinstance(module, COUNTED)
    ]
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        # A detector is counted by its network alone (decoding and NMS are not what papers count,
        # and NMS on an untrained net's scores is slow); its forward_raw is that network.
        forward = getattr(model, "forward_raw", model)
        with torch.no_grad():
            forward(torch.zeros(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return Complexity(
        params=sum(p.numel() for p in model.parameters()),
        macs=sum(layer.macs for layer in layers),
        input_shape=tuple(input_shape),
        per_layer=tuple(layers),
    )
