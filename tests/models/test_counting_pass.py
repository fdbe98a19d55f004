"""The counting pass behind `edgecv models` works on sizes alone: no convolution is computed and no
weight is drawn, and the figures are those of the real model run for real."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgecv.models import create_model, get_entry, list_models
from edgecv.models.complexity import conv2d_output_shape, count_complexity, structure_only
from edgecv.models.describe import describe_model, describe_models


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.Conv2d(4, 4, (3, 5), stride=(1, 2), padding=(0, 2), dilation=(2, 1), groups=4),
        nn.Conv2d(3, 6, 4, stride=3, padding=2, padding_mode="reflect"),
        nn.Conv2d(3, 6, 5, padding="same", dilation=2),
        nn.Conv2d(3, 6, 3, padding="valid"),
    ],
    ids=["strided", "rectangular-dilated-grouped", "reflect", "same", "valid"],
)
@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (3, 9, 12)], ids=["batched", "unbatched"])
def test_conv_output_shape_is_torchs(conv, shape):
    shape = (*shape[:-3], conv.in_channels, *shape[-2:])
    assert conv2d_output_shape(conv, shape) == tuple(conv(torch.zeros(shape)).shape)


def test_listing_computes_no_convolution():
    counter = FlopCounterMode(display=False)
    with counter:
        rows = describe_models(resolution=96)
    assert counter.get_total_flops() == 0
    assert all(row["macs"] > 0 for row in rows)


@pytest.mark.parametrize("name", list_models())
def test_a_model_built_without_weights_counts_the_same(name):
    fixed = get_entry(name).fixed_resolution
    row = describe_model(name, resolution=None if fixed else 96)
    model = create_model(name, resolution=fixed or 96, settle_batchnorm=False)
    complexity = count_complexity(model)
    assert (row["params"], row["macs"]) == (complexity.params, complexity.macs)


def test_structure_only_leaves_weights_unfilled():
    weight = torch.zeros(4, 4)
    with structure_only():
        nn.init.normal_(weight, mean=5.0)
        nn.init.kaiming_uniform_(tensor=weight)
        weight.uniform_(1.0, 2.0)
    assert not weight.any()
    nn.init.normal_(weight, mean=5.0)  # only inside
    assert weight.all()


def test_counting_leaves_the_model_and_threads_as_they_were():
    model = create_model("mobilenetv2", width_mult=0.5, resolution=64)
    threads = torch.get_num_threads()
    count_complexity(model)
    assert torch.get_num_threads() == threads
    assert not any("forward" in vars(m) for m in model.modules())
    x = torch.randn(1, 3, 64, 64)
    assert model(x).abs().sum() > 0  # still computes
