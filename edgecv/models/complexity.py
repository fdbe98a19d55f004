"""Parameter and multiply-accumulate (MAC) counts of a model, layer by layer.

MACs are counted the way the MobileNet and ShuffleNet papers count "Mult-Adds"/"FLOPs":
convolutions and fully connected layers only (BatchNorm folds into the conv at deployment,
activations and pooling are negligible). A forward pass with hooks reads each layer's real
output size, so strides, padding and the input resolution are taken into account.

Counting needs sizes, not values: during the counting pass every convolution and fully connected
layer returns zeros of the size it would produce and BatchNorm passes its input through, so
counting SSD300 costs milliseconds instead of its 31 GMACs. :func:`structure_only` likewise builds
a model without filling its weights with random numbers.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


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


def conv2d_output_shape(conv: nn.Conv2d, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape ``conv`` returns for ``input_shape`` ([N,] C, H, W), by torch's size formula."""
    *lead, _channels, height, width = input_shape
    if conv.padding == "same":
        return (*lead, conv.out_channels, height, width)
    padding = (0, 0) if conv.padding == "valid" else conv.padding
    sides = [
        (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
        for size, pad, dilation, kernel, stride in zip(
            (height, width), padding, conv.dilation, conv.kernel_size, conv.stride
        )
    ]
    return (*lead, conv.out_channels, *sides)


def _sized_zeros(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(module, nn.Conv2d):
        return lambda x: x.new_zeros(conv2d_output_shape(module, tuple(x.shape)))
    if isinstance(module, nn.Linear):
        return lambda x: x.new_zeros((*x.shape[:-1], module.out_features))
    return lambda x: x  # BatchNorm: same size


def _sizable(module: nn.Module) -> bool:
    # A scripted module's forward is compiled and one with its own forward attribute is the
    # caller's business: both run as they are.
    return (
        isinstance(module, (*COUNTED, nn.modules.batchnorm._BatchNorm))
        and not isinstance(module, torch.jit.ScriptModule)
        and "forward" not in vars(module)
    )


@contextlib.contextmanager
def _sizes_only(model: nn.Module) -> Iterator[None]:
    """Counted layers and BatchNorm return tensors of the right size without computing them."""
    patched = [m for m in model.modules() if _sizable(m)]
    threads = torch.get_num_threads()
    try:
        for module in patched:
            module.forward = _sized_zeros(module)
        # What is left is moving zeros through activations and pooling: a second thread only adds
        # waiting (five times the time on a busy two-core machine).
        torch.set_num_threads(1)
        yield
    finally:
        torch.set_num_threads(threads)
        for module in patched:
            vars(module).pop("forward", None)


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
        with torch.no_grad(), _sizes_only(model):
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


# Random fills of weight initialisation, by name: torch.nn.init's and the tensor methods under them.
_RANDOM_FILLS = frozenset(
    {
        "uniform_",
        "normal_",
        "trunc_normal_",
        "kaiming_uniform_",
        "kaiming_normal_",
        "xavier_uniform_",
        "xavier_normal_",
        "orthogonal_",
        "sparse_",
    }
)


class _SkipRandomFills(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if getattr(func, "__name__", None) in _RANDOM_FILLS:
            # The filled tensor: self of a tensor method, ``tensor`` of a torch.nn.init function.
            return args[0] if args else (kwargs or {})["tensor"]
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def structure_only() -> Iterator[None]:
    """Build models inside this to leave their weights unfilled (whatever memory held).

    Random initialisation is most of the time a build takes and changes no size, so a model built
    here is good for :func:`count_complexity` and for nothing that reads its weights."""
    with _SkipRandomFills():
        yield
