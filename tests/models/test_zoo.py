"""Every registered model, in every width and variant it offers: shapes, the shared classifier
surface, training, and the registry's handling of names and bad options.

Parametrised over ``list_models()``, so a newly registered model is tested without new code here.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from edgecv.errors import InvalidOptionError, UnknownModelError
from edgecv.models import InputSpec, create_model, get_entry, list_models, resolve_name
from edgecv.models._layers import channel_shuffle, make_divisible

# Widths tried for models that accept any α: the paper's smallest, an α that forces rounding to
# multiples of 8, the default, and a widened network.
FREE_WIDTHS = (0.25, 0.35, 1.0, 1.4)


def classifiers():
    # The classifier surface (features, head, reset_classifier); detectors have their own tests.
    return [n for n in list_models() if get_entry(n).task == "classification"]


def configurations():
    for name in classifiers():
        entry = get_entry(name)
        widths = entry.width_mults or FREE_WIDTHS
        option_values = [[(k, v) for v in values] for k, values in entry.variant_options.items()]
        for width, options in itertools.product(widths, itertools.product(*option_values)):
            config = {"width_mult": width, **dict(options)}
            yield pytest.param(name, config, id=f"{name}-" + "-".join(f"{k}={v}" for k, v in config.items()))


@pytest.mark.parametrize("name,config", list(configurations()))
def test_forward_shapes(name, config):
    model = create_model(name, num_classes=7, resolution=64, **config)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
        pooled = model.forward_head(features, pre_logits=True)
    assert features.shape == (2, model.num_features, 2, 2)  # the network downsamples by 32
    assert pooled.shape == (2, model.num_features)
    assert logits.shape == (2, 7)
    assert torch.equal(model.forward_head(features), logits)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", classifiers())
@pytest.mark.parametrize("resolution", [32, 96, 160])
def test_resolution_sets_the_input_spec_and_feature_map(name, resolution):
    narrowest = (get_entry(name).width_mults or FREE_WIDTHS)[0]
    model = create_model(name, resolution=resolution, width_mult=narrowest, settle_batchnorm=False)
    spec = model.input_spec
    assert isinstance(spec, InputSpec)
    assert spec.shape == (1, 3, resolution, resolution)
    assert (spec.mean, spec.std, spec.channel_order) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB")
    with torch.no_grad():
        features = model.forward_features(torch.zeros(spec.shape))
    assert features.shape[-2:] == (resolution // 32, resolution // 32)
    assert model.model_config["resolution"] == resolution


@pytest.mark.parametrize("name", classifiers())
def test_classifier_keys_and_reset(name):
    model = create_model(name, num_classes=10, resolution=32)
    state = model.state_dict()
    head = {k: v for k, v in state.items() if k.startswith(tuple(model.classifier_keys))}
    assert sorted(k.rsplit(".", 1)[1] for k in head) == ["bias", "weight"]
    assert all(v.shape[0] == 10 for v in head.values())

    model.reset_classifier(3)
    assert model.num_classes == 3
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    # Only the head changed.
    new_state = model.state_dict()
    assert set(new_state) == set(state)
    for key in state:
        if key not in head:
            assert torch.equal(new_state[key], state[key]), key


@pytest.mark.parametrize("name", classifiers())
def test_training_step_reaches_every_parameter(name):
    torch.manual_seed(0)
    narrowest = (get_entry(name).width_mults or FREE_WIDTHS)[0]
    model = create_model(name, num_classes=4, width_mult=narrowest, resolution=32).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    # A parameter without gradient would be a branch the forward pass skips or detaches.
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.num_batches_tracked.item() == 1 for m in bn)


def conv_widths(name, width_mult):
    model = create_model(name, width_mult=width_mult, resolution=32)
    return [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def test_mobilenetv1_keeps_paper_channels_and_rounds_others_to_8():
    paper = conv_widths("mobilenetv1", 0.25)
    assert paper[0] == 8 and paper[-1] == 256  # 32·0.25 and 1024·0.25, as in the paper
    odd = conv_widths("mobilenetv1", 0.3)
    assert all(c % 8 == 0 for c in odd)
    assert odd[-1] == 304  # 1024·0.3 = 307.2 → nearest multiple of 8


def test_make_divisible_never_drops_more_than_ten_percent():
    assert make_divisible(32 * 0.25) == 8
    assert make_divisible(3.2) == 8  # never below the divisor
    assert make_divisible(100, 8) == 104  # ties round up
    for value in (9.0, 17.0, 44.0, 1000.0 / 3):
        assert make_divisible(value) >= 0.9 * value


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 8])
def test_shufflenetv1_groups_every_pointwise_conv_but_the_first(groups):
    model = create_model("shufflenetv1", groups=groups, resolution=32)
    pointwise = [m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert pointwise[0].groups == 1  # Stage 2's first 1×1 conv (section 3.3 of the paper)
    assert all(conv.groups == groups for conv in pointwise[1:])


@pytest.mark.parametrize(
    "alias,canonical",
    [
        ("mobilenet_v2", "mobilenetv2"),
        ("MobileNet-V2", "mobilenetv2"),
        (" MOBILENETV1 ", "mobilenetv1"),
        ("shufflenet_v1", "shufflenetv1"),
        ("ShuffleNet_V2", "shufflenetv2"),
        ("mobilenet", "mobilenetv1"),
    ],
)
def test_forgiving_names(alias, canonical):
    assert resolve_name(alias) == canonical
    assert create_model(alias, resolution=32, width_mult=1.0).model_name == canonical


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="mobilenetv2"):
        create_model("mobilenetv2x")


@pytest.mark.parametrize(
    "name,kwargs,fragment",
    [
        ("mobilenetv2", {"width_mult": 0}, "width_mult must be a number > 0"),
        ("mobilenetv2", {"width_mult": -0.5}, "width_mult must be a number > 0"),
        ("mobilenetv2", {"width_mult": math.nan}, "width_mult must be a number > 0"),
        ("mobilenetv2", {"width_mult": "wide"}, "width_mult must be a number"),
        ("shufflenetv2", {"width_mult": 0.75}, "takes width_mult in {0.5, 1, 1.5, 2}"),
        ("mobilenetv1", {"resolution": 100}, "multiple of 32"),
        ("mobilenetv1", {"resolution": 0}, "positive integers"),
        ("mobilenetv1", {"resolution": 224.0}, "an integer or HxW"),
        ("shufflenetv1", {"groups": 5}, "takes groups in {1, 2, 3, 4, 8}"),
        ("mobilenetv2", {"groups": 2}, "has no option 'groups'"),
        ("mobilenetv2", {"num_classes": 0}, "num_classes must be a positive integer"),
    ],
)
def test_invalid_options_raise_one_clear_error(name, kwargs, fragment):
    with pytest.raises(InvalidOptionError) as info:
        create_model(name, **kwargs)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)
