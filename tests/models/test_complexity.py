"""MACs and parameters: the counter itself, and every model against its paper's published figures.

The papers count multiply-adds of convolutions and fully connected layers ("Mult-Adds" in the
MobileNet papers, "FLOPs" in the ShuffleNet papers, which are multiply-adds too) for one
224×224 image with a 1000-class head. Figures are printed rounded (MACs to 1M, parameters to
0.1M), so MACs are compared within 2 % and parameters at the precision the paper printed.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from edgecv.models import create_model, get_entry, list_models
from edgecv.models.complexity import count_complexity

M = 1e6
MACS_TOLERANCE = 0.02
PRINTED_PARAMS_STEP = 0.1e6  # papers print "4.2M": anything within half a step rounds to it


def figure(paper, name, macs, params=None, **options):
    label = ", ".join(f"{k}={v}" for k, v in options.items())
    return pytest.param(name, options, macs, params, id=f"{paper}: {name} {label}")


PAPER_FIGURES = [
    # MobileNetV1 (Howard et al. 2017), Table 6: width multiplier at 224×224. The channel rounding
    # to multiples of 8 leaves these α unchanged (32·0.25 = 8 is the smallest).
    figure("MobileNetV1 Table 6", "mobilenetv1", 569, 4.2, width_mult=1.0),
    figure("MobileNetV1 Table 6", "mobilenetv1", 325, 2.6, width_mult=0.75),
    figure("MobileNetV1 Table 6", "mobilenetv1", 149, 1.3, width_mult=0.5),
    figure("MobileNetV1 Table 6", "mobilenetv1", 41, 0.5, width_mult=0.25),
    # MobileNetV1, Table 7: resolution multiplier with α = 1; parameters do not change.
    figure("MobileNetV1 Table 7", "mobilenetv1", 418, 4.2, resolution=192),
    figure("MobileNetV1 Table 7", "mobilenetv1", 290, 4.2, resolution=160),
    figure("MobileNetV1 Table 7", "mobilenetv1", 186, 4.2, resolution=128),
    # MobileNetV2 (Sandler et al. 2018), Table 4: 300M MAdds at α = 1, 585M at α = 1.4. Its
    # parameter figures (3.4M, 6.9M) disagree with its own architecture table and with the
    # authors' TF-slim models (3.47M, 6.06M); test_torchvision_compat checks parameters instead.
    figure("MobileNetV2 Table 4", "mobilenetv2", 300, width_mult=1.0),
    figure("MobileNetV2 Table 4", "mobilenetv2", 585, width_mult=1.4),
    # ShuffleNet (Zhang et al. 2017), Table 1: ShuffleNet 1× for g = 1, 2, 3, 4, 8.
    figure("ShuffleNet Table 1", "shufflenetv1", 143, width_mult=1.0, groups=1),
    figure("ShuffleNet Table 1", "shufflenetv1", 140, width_mult=1.0, groups=2),
    figure("ShuffleNet Table 1", "shufflenetv1", 137, width_mult=1.0, groups=3),
    figure("ShuffleNet Table 1", "shufflenetv1", 133, width_mult=1.0, groups=4),
    figure("ShuffleNet Table 1", "shufflenetv1", 137, width_mult=1.0, groups=8),
    # ShuffleNet, Table 5 (vs. MobileNet): the scaled models it reports.
    figure("ShuffleNet Table 5", "shufflenetv1", 524, width_mult=2.0, groups=3),
    figure("ShuffleNet Table 5", "shufflenetv1", 292, width_mult=1.5, groups=3),
    figure("ShuffleNet Table 5", "shufflenetv1", 140, width_mult=1.0, groups=8),
    figure("ShuffleNet Table 5", "shufflenetv1", 38, width_mult=0.5, groups=4),
    # ShuffleNet V2 (Ma et al. 2018), Table 5: FLOPs and weights of 0.5×, 1×, 1.5×, 2×.
    figure("ShuffleNet V2 Table 5", "shufflenetv2", 41, 1.4, width_mult=0.5),
    figure("ShuffleNet V2 Table 5", "shufflenetv2", 146, 2.3, width_mult=1.0),
    figure("ShuffleNet V2 Table 5", "shufflenetv2", 299, 3.5, width_mult=1.5),
    figure("ShuffleNet V2 Table 5", "shufflenetv2", 591, 7.4, width_mult=2.0),
]


@pytest.mark.parametrize("name,options,paper_macs,paper_params", PAPER_FIGURES)
def test_matches_the_papers(name, options, paper_macs, paper_params):
    complexity = count_complexity(create_model(name, settle_batchnorm=False, **options))
    assert abs(complexity.macs - paper_macs * M) <= MACS_TOLERANCE * paper_macs * M, (
        f"{complexity.macs / M:.1f}M MACs vs the paper's {paper_macs}M"
    )
    if paper_params is not None:
        assert abs(complexity.params - paper_params * M) <= PRINTED_PARAMS_STEP / 2, (
            f"{complexity.params / M:.3f}M parameters vs the paper's {paper_params}M"
        )


@pytest.mark.parametrize("name", list_models())
def test_counter_agrees_with_torch_flop_counter(name):
    """An independent count: torch's dispatcher-level FLOP counter (2 FLOPs per MAC)."""
    fixed = get_entry(name).fixed_resolution  # SSD300 takes 300×300 only
    model = create_model(name, resolution=fixed or 96, width_mult=1.0, settle_batchnorm=False)
    counter = FlopCounterMode(display=False)
    # A detector's MACs are its network's: decoding and NMS hold no convolution.
    forward = getattr(model, "forward_raw", model)
    with counter, torch.no_grad():
        forward(torch.zeros(1, 3, *(fixed or (96, 96))))
    complexity = count_complexity(model)
    assert 2 * complexity.macs == counter.get_total_flops()
    assert complexity.params == sum(p.numel() for p in model.parameters())


def test_per_layer_breakdown_and_model_left_untouched():
    model = create_model("mobilenetv2", width_mult=0.5, resolution=64).train()
    complexity = count_complexity(model, input_shape=(2, 3, 64, 64))
    assert complexity.input_shape == (2, 3, 64, 64)
    assert sum(layer.macs for layer in complexity.per_layer) == complexity.macs
    first, last = complexity.per_layer[0], complexity.per_layer[-1]
    assert (first.name, first.kind, first.output_shape) == ("features.0.0", "Conv2d", (2, 16, 32, 32))
    assert first.macs == 3 * 3 * 3 * 16 * 32 * 32 * 2  # K·K·Cin·Cout·H·W per image, batch of 2
    assert (last.name, last.kind, last.macs) == ("classifier.1", "Linear", 1280 * 1000 * 2)
    assert model.training  # restored
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_macs_scale_with_batch_and_default_to_the_input_spec():
    model = create_model("shufflenetv2", width_mult=0.5, resolution=64)
    single = count_complexity(model)
    assert single.input_shape == (1, 3, 64, 64)
    assert count_complexity(model, (3, 3, 64, 64)).macs == 3 * single.macs
