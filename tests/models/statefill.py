"""Deterministic, framework-independent model states and inputs.

Used twice: by ``tests/fixtures/models/make_torchvision_fixtures.py`` (run once, in a venv with
torchvision) to record reference outputs, and by the tests to fill our models the same way.
Each tensor's values depend only on its key and element index, never on random state or on
the order of the state_dict, so two implementations with the same keys get the same weights.
"""

from __future__ import annotations

import math
import zlib

import torch


def _wave(key: str, numel: int) -> torch.Tensor:
    phase = zlib.crc32(key.encode()) % 997 / 997 * 2 * math.pi
    index = torch.arange(numel, dtype=torch.float64)
    return torch.sin(0.7071 * index + phase)


def filled_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` with every floating tensor replaced by a deterministic pattern.

    Conv/linear weights get He-like amplitudes so activations neither vanish nor explode through
    50 layers; BatchNorm running variances stay positive.
    """
    filled = {}
    for key, tensor in state_dict.items():
        if not tensor.is_floating_point():
            filled[key] = tensor.clone()
            continue
        wave = _wave(key, tensor.numel())
        if key.endswith("running_var"):
            values = 1.0 + 0.5 * wave**2
        elif key.endswith(("running_mean", "bias")):
            values = 0.1 * wave
        elif tensor.dim() == 1:  # BatchNorm scale
            values = 1.0 + 0.2 * wave
        else:
            fan_in = tensor[0].numel()
            values = wave * math.sqrt(3.0 / fan_in)
        filled[key] = values.reshape(tensor.shape).to(tensor.dtype)
    return filled


def reference_input(resolution: int, batch: int = 1) -> torch.Tensor:
    """A smooth, deterministic image-like input of shape (batch, 3, resolution, resolution)."""
    numel = batch * 3 * resolution * resolution
    index = torch.arange(numel, dtype=torch.float64)
    x = torch.sin(0.013 * index) + 0.5 * torch.cos(0.17 * index)
    return x.reshape(batch, 3, resolution, resolution).float()
