"""MobileNetV3 Large/Small: torchvision's layout, parameter counts and the paper's blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecv.errors import InvalidOptionError
from edgecv.models import create_model, resolve_name
from edgecv.models.mobilenetv3 import SqueezeExcitation, mobilenetv3_features


@pytest.mark.parametrize("variant,params", [("large", 5_483_032), ("small", 2_542_856)])
def test_parameter_counts_match_torchvision(variant, params):
    model = create_model("mobilenetv3", variant=variant, settle_batchnorm=False)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.model_config["variant"] == variant


# Keys and shapes read off torchvision's mobilenetv3.py (features.<i>.block.<j>, classifier.0/3).
KNOWN = {
    "large": {
        "features.0.0.weight": (16, 3, 3, 3),
        "features.1.block.0.0.weight": (16, 1, 3, 3),  # no expansion: the depthwise conv comes first
        "features.2.block.0.0.weight": (64, 16, 1, 1),
        "features.4.block.2.fc1.weight": (24, 72, 1, 1),  # SE squeezes 72 // 4 = 18 → 24 (multiple of 8)
        "features.4.block.2.fc2.bias": (72,),
        "features.15.block.3.1.running_var": (160,),
        "features.16.0.weight": (960, 160, 1, 1),
        "classifier.0.weight": (1280, 960),
        "classifier.3.weight": (1000, 1280),
    },
    "small": {
        "features.1.block.1.fc1.weight": (8, 16, 1, 1),
        "features.1.block.2.0.weight": (16, 16, 1, 1),
        "features.12.0.weight": (576, 96, 1, 1),
        "classifier.0.weight": (1024, 576),
        "classifier.3.weight": (1000, 1024),
    },
}


@pytest.mark.parametrize("variant", ["large", "small"])
def test_torchvision_keys_and_shapes(variant):
    state = create_model("mobilenetv3", variant=variant, settle_batchnorm=False).state_dict()
    for key, shape in KNOWN[variant].items():
        assert tuple(state[key].shape) == shape, key


def test_blocks_follow_the_paper():
    model = create_model("mobilenetv3", settle_batchnorm=False)
    acts = [type(m) for m in model.features[1].modules()] + [type(m) for m in model.features[7].modules()]
    assert nn.ReLU in acts and nn.Hardswish in acts  # ReLU early, hard-swish in the deeper half
    assert isinstance(model.features[0][2], nn.Hardswish)
    assert sum(isinstance(m, SqueezeExcitation) for m in model.modules()) == 8
    assert all(m.eps == 0.001 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    # The SE gate is a hard sigmoid: a saturated excitation passes the input through unchanged.
    se = SqueezeExcitation(8, 8)
    nn.init.zeros_(se.fc2.weight)
    nn.init.constant_(se.fc2.bias, 3.0)
    x = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(se(x), x)


def test_forward_and_width_multiplier():
    model = create_model("mobilenetv3", variant="small", width_mult=0.75, num_classes=10, resolution=96)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 96)).shape == (2, 10)
    assert model.input_spec.shape == (1, 3, 96, 96)


def test_reduced_tail_halves_the_last_stage():
    full, reduced = mobilenetv3_features("large"), mobilenetv3_features("large", reduced_tail=True)
    assert (full.out_channels, reduced.out_channels) == (960, 480)
    assert reduced[13].block[0][0].out_channels == 672  # the last stride-2 block keeps its expansion
    assert reduced[13].out_channels == 80 and reduced[14].block[0][0].out_channels == 480


def test_names_and_bad_variant():
    assert resolve_name("mobilenet_v3") == "mobilenetv3"
    assert resolve_name("MobileNet-V3") == "mobilenetv3"
    small = create_model("mobilenet_v3_small", settle_batchnorm=False)
    assert small.model_config["variant"] == "small"
    assert sum(p.numel() for p in small.parameters()) == 2_542_856
    with pytest.raises(InvalidOptionError, match="variant in"):
        create_model("mobilenetv3", variant="medium")
