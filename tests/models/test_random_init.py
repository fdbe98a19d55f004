"""Random-weight zoo models (no --weights) are seeded and have trained-like activation scales, so
their timings and INT8 fidelity figures mean something."""

from __future__ import annotations

import pytest
import torch

import edgecv


@pytest.mark.parametrize("name", ["mobilenetv1", "mobilenetv2", "shufflenetv1", "shufflenetv2"])
def test_random_models_have_usable_logits(name):
    model = edgecv.create_model(name, resolution=96)
    x = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    # Untrained BatchNorm statistics shrink the signal to ~1e-14 through these nets.
    assert logits.std().item() > 1e-2, logits.std().item()
    assert not model.training


def test_random_weights_are_reproducible_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = edgecv.create_model("mobilenetv2", width_mult=0.5, resolution=64)
    after = torch.rand(1)
    b = edgecv.create_model("mobilenetv2", width_mult=0.5, resolution=64)
    assert torch.equal(after, expected)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
