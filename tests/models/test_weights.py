"""Weight files: round trips, the checkpoint shapes found in the wild, and every way a file can be wrong."""

from __future__ import annotations

import argparse
import random
import warnings

import pytest
import torch

from edgecv.errors import WeightsError
from edgecv.models import create_model
from edgecv.models.weights import HeadReinitializedWarning, load_weights, read_state_dict, save_weights

NAME, WIDTH, RES = "mobilenetv2", 0.35, 32


def small_model(num_classes=10, **kwargs):
    return create_model(NAME, num_classes=num_classes, width_mult=WIDTH, resolution=RES, **kwargs)


def trained_state(num_classes=10):
    """A state_dict that differs from any fresh initialisation."""
    torch.manual_seed(1)
    model = small_model(num_classes)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.state_dict()


def logits(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, RES, RES))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_gives_identical_outputs(tmp_path, suffix):
    source = small_model()
    source.load_state_dict(trained_state())
    path = save_weights(source, tmp_path / "nested" / f"weights{suffix}")
    assert path.is_file() and not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    loaded = small_model(weights=path)
    assert torch.equal(logits(loaded), logits(source))


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: {"state_dict": sd, "epoch": 7}, id="state_dict"),
        pytest.param(lambda sd: {"model": sd, "args": {"lr": 0.1}}, id="model"),
        pytest.param(
            lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {"param_groups": [{"lr": 0.1}]}},
            id="model_state_dict",
        ),
        pytest.param(lambda sd: {f"module.{k}": v for k, v in sd.items()}, id="DataParallel-prefix"),
        pytest.param(
            lambda sd: {"state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}}, id="DDP-and-compile-prefix"
        ),
    ],
)
def test_checkpoint_forms(tmp_path, wrap):
    state = trained_state()
    torch.save(wrap(state), tmp_path / "ckpt.pth")
    model = small_model()
    result = load_weights(model, tmp_path / "ckpt.pth")
    assert result.tensors == len(state) and result.reinitialized == ()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_other_class_count_loads_backbone_and_reinitialises_head(tmp_path):
    torch.save(trained_state(num_classes=1000), tmp_path / "imagenet.pth")
    with pytest.warns(HeadReinitializedWarning, match="1000 classes, the model 10") as record:
        model = small_model(num_classes=10, weights=tmp_path / "imagenet.pth")
    assert "classifier.1.weight" in str(record[0].message)
    reference = small_model(num_classes=1000)
    reference.load_state_dict(trained_state(num_classes=1000))
    torch.manual_seed(0)
    x = torch.randn(1, 3, RES, RES)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), reference.eval().forward_features(x))
        assert model(x).shape == (1, 10)
    head = model.classifier[1].weight
    assert head.shape == (10, reference.num_features) and head.std() < 0.05  # fresh N(0, 0.01) init


def test_num_classes_argument_resizes_the_head_to_the_checkpoint(tmp_path):
    torch.save(trained_state(num_classes=5), tmp_path / "five.pth")
    model = small_model(num_classes=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the head fits after the resize: nothing to warn about
        result = load_weights(model, tmp_path / "five.pth", num_classes=5)
    assert result.reinitialized == () and model.num_classes == 5
    assert torch.equal(model.classifier[1].bias, trained_state(num_classes=5)["classifier.1.bias"])


def test_wrong_width_names_shape_mismatches(tmp_path):
    torch.save(small_model().state_dict(), tmp_path / "narrow.pth")
    wide = create_model(NAME, num_classes=10, width_mult=1.0, resolution=RES)
    with pytest.raises(WeightsError) as info:
        load_weights(wide, tmp_path / "narrow.pth")
    message = str(info.value)
    assert "shape mismatches (features.0.0.weight: checkpoint 16×3×3×3, model 32×3×3×3" in message
    assert "more" in message and "another width_mult" in message


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = trained_state()
    dropped = [k for k in state if k.startswith("features.1.")]
    for key in dropped:
        del state[key]
    state["extra.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(WeightsError) as info:
        load_weights(small_model(), tmp_path / "partial.pth")
    message = str(info.value)
    assert f"{len(dropped)} missing keys (features.1.conv.0.0.weight" in message
    assert f"and {len(dropped) - 4} more" in message
    assert "1 unexpected keys (extra.weight)" in message


def test_checkpoint_of_another_architecture(tmp_path):
    other = create_model("shufflenetv2", width_mult=0.5, resolution=RES)
    torch.save(other.state_dict(), tmp_path / "shufflenet.pth")
    with pytest.raises(WeightsError, match="none of its .* keys matches .* another architecture"):
        load_weights(small_model(), tmp_path / "shufflenet.pth")


def write_bytes(name, data):
    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


def truncated_checkpoint(tmp_path):
    path = tmp_path / "truncated.pth"
    torch.save(trained_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def saved(obj, name="ckpt.pth"):
    def make(tmp_path):
        torch.save(obj, tmp_path / name)
        return tmp_path / name

    return make


UNREADABLE = "not a readable PyTorch checkpoint"


@pytest.mark.parametrize(
    "make,fragment",
    [
        pytest.param(lambda tmp: tmp / "absent.pth", "weights file not found", id="missing"),
        pytest.param(lambda tmp: tmp, "not a file", id="directory"),
        pytest.param(write_bytes("empty.pth", b""), UNREADABLE, id="empty"),
        pytest.param(write_bytes("random.pth", random.Random(0).randbytes(4096)), UNREADABLE, id="random-bytes"),
        pytest.param(write_bytes("notes.pth", b"epochs: 90\nlr: 0.1\n"), UNREADABLE, id="text"),
        pytest.param(truncated_checkpoint, UNREADABLE, id="truncated"),
        pytest.param(
            write_bytes("bad.safetensors", b"\x10" + bytes(7) + b"{not json}"), UNREADABLE, id="corrupt-safetensors"
        ),
        pytest.param(saved([torch.zeros(3)]), "not a state_dict: it holds a list", id="list"),
        pytest.param(
            saved({"epoch": 3, "best_acc": 0.7}), "not a state_dict: it holds epoch, best_acc", id="metadata-only"
        ),
        pytest.param(saved({}), "not a state_dict: it holds nothing", id="empty-dict"),
    ],
)
def test_unusable_files_raise_one_clear_weights_error(tmp_path, make, fragment):
    with pytest.raises(WeightsError) as info:
        load_weights(small_model(), make(tmp_path))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_pickled_objects_are_refused_unless_trusted(tmp_path):
    path = tmp_path / "lightning-style.ckpt"
    torch.save({"state_dict": trained_state(), "hparams": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(WeightsError, match=r"argparse\.Namespace.*trust_pickle=True"):
        read_state_dict(path)
    model = small_model()
    load_weights(model, path, trust_pickle=True)
    assert torch.equal(model.classifier[1].bias, trained_state()["classifier.1.bias"])


def test_save_weights_refuses_a_directory(tmp_path):
    from edgecv.errors import OutputPathError

    with pytest.raises(OutputPathError, match="is a directory"):
        save_weights(small_model(), tmp_path)
