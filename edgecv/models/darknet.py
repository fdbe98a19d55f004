"""Darknet ``.weights`` files: read them into, and write them from, a model that follows a cfg.

The format (darknet's ``parser.c``, ``load_weights_upto`` / ``save_weights_upto``):

* a header of int32 ``major``, ``minor``, ``revision`` and then ``seen`` (images trained on),
  an int64 when ``major * 10 + minor >= 2`` (every file written since 2017, the published
  ``yolov3-tiny.weights`` among them) and an int32 in older files;
* then float32 values, per convolutional layer in cfg order: with ``batch_normalize=1`` the
  BatchNorm's beta (``bias``), gamma (``weight``), running mean and running variance, otherwise
  the convolution's bias; then the kernel, ``[filters, channels / groups, size, size]`` row-major
  (the layout of a PyTorch Conv2d weight).

Nothing in the file names a layer, so a file fits a cfg only by its length: a file with too few or
too many values is refused, saying how many it held and how many the cfg needs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecv.errors import OutputPathError, WeightsError

HEADER_INTS = 3
DEFAULT_VERSION = (
    0,
    2,
    0,
)  # what darknet writes today (and what yolov3-tiny.weights holds)


@dataclass(frozen=True)
class DarknetConv:
    """One ``[convolutional]`` layer: the conv and, with ``batch_normalize=1``, its BatchNorm."""

    conv: nn.Conv2d
    bn: nn.BatchNorm2d | None = None

    def tensors(self) -> list[torch.Tensor]:
        """The layer's tensors in file order."""
        if self.bn is not None:
            pre = [
                self.bn.bias,
                self.bn.weight,
                self.bn.running_mean,
                self.bn.running_var,
            ]
        else:
            if self.conv.bias is None:
                raise ValueError("a convolution without BatchNorm carries a bias in darknet")
            pre = [self.conv.bias]
        return [*pre, self.conv.weight]

    @property
    def values(self) -> int:
        return sum(t.numel() for t in self.tensors())


@dataclass(frozen=True)
class DarknetHeader:
    major: int
    minor: int
    revision: int
    seen: int

    @property
    def seen_is_int64(self) -> bool:
        return seen_is_int64(self.major, self.minor)

    @property
    def nbytes(self) -> int:
        return 4 * HEADER_INTS + (8 if self.seen_is_int64 else 4)


def seen_is_int64(major: int, minor: int) -> bool:
    # darknet's own test (it also requires both below 1000, values that flag a transposed file).
    return major * 10 + minor >= 2 and major < 1000 and minor < 1000


def values_needed(layers: list[DarknetConv]) -> int:
    return sum(layer.values for layer in layers)


def read_darknet_file(path: str | os.PathLike[str]) -> tuple[DarknetHeader, np.ndarray]:
    """The header and the float32 values of a ``.weights`` file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path}" if not path.exists() else f"weights path is not a file: {path}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) < 4 * HEADER_INTS:
        raise WeightsError(f"{path} is not a Darknet .weights file: {len(data)} bytes, shorter than its header")
    major, minor, revision = struct.unpack_from("<3i", data, 0)
    fmt = "<q" if seen_is_int64(major, minor) else "<i"
    offset = 4 * HEADER_INTS + struct.calcsize(fmt)
    if len(data) < offset:
        raise WeightsError(f"{path} is not a Darknet .weights file: {len(data)} bytes, shorter than its header")
    (seen,) = struct.unpack_from(fmt, data, 4 * HEADER_INTS)
    body = len(data) - offset
    if body % 4:
        raise WeightsError(
            f"{path} is not a Darknet .weights file: {body} bytes after the header is not a whole "
            "number of float32 values"
        )
    values = np.frombuffer(data, dtype="<f4", offset=offset)
    return DarknetHeader(major, minor, revision, seen), values


def load_darknet_weights(
    layers: list[DarknetConv],
    path: str | os.PathLike[str],
    *,
    what: str = "the cfg",
    hint: str = "",
) -> DarknetHeader:
    """Fill ``layers`` (cfg order) from the ``.weights`` file at ``path``.

    The file must hold exactly the values the layers need (:class:`WeightsError` otherwise);
    ``hint`` is appended to that message (e.g. the class count the file would fit)."""
    header, values = read_darknet_file(path)
    needed = values_needed(layers)
    if values.size != needed:
        relation = "too few" if values.size < needed else "too many"
        raise WeightsError(
            f"{path} does not fit {what}: it holds {values.size:,} weight values after its header "
            f"(darknet v{header.major}.{header.minor}.{header.revision}), {what} needs {needed:,} "
            f"({relation}{'; truncated file?' if values.size < needed else ''}){hint}"
        )
    offset = 0
    with torch.no_grad():
        for layer in layers:
            for tensor in layer.tensors():
                n = tensor.numel()
                chunk = torch.from_numpy(values[offset : offset + n].copy()).view_as(tensor)
                tensor.copy_(chunk)
                offset += n
            if layer.bn is not None:
                layer.bn.num_batches_tracked.zero_()
    return header


def write_darknet_weights(
    layers: list[DarknetConv],
    path: str | os.PathLike[str],
    *,
    version: tuple[int, int, int] = DEFAULT_VERSION,
    seen: int = 0,
) -> Path:
    """Write ``layers`` (cfg order) as a Darknet ``.weights`` file with header ``version``."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"cannot write weights to {path}: it is a directory")
    major, minor, revision = (int(v) for v in version)
    header = struct.pack("<3i", major, minor, revision)
    header += struct.pack("<q" if seen_is_int64(major, minor) else "<i", int(seen))
    body = [
        t.detach().to("cpu", torch.float32).contiguous().numpy().ravel() for layer in layers for t in layer.tensors()
    ]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(header)
            f.write(np.concatenate(body).astype("<f4").tobytes())
    except OSError as exc:
        raise OutputPathError(f"cannot write weights to {path}: {exc.strerror or exc}") from None
    return path
