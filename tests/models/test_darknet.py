"""Darknet ``.weights`` files: the byte layout, a round trip through yolov3-tiny, and refusals."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from edgecv.errors import InvalidOptionError, WeightsError
from edgecv.models import create_model
from edgecv.models.darknet import read_darknet_file
from edgecv.models.weights import load_weights
from tests.conftest import assert_user_error

YOLOV3_TINY_VALUES = 8_858_734  # parameters (8,852,366) + BatchNorm running mean/var (2 × 3,184)


def _randomized(num_classes: int = 80, seed: int = 1):
    """A yolov3-tiny whose every tensor (BatchNorm statistics included) is random and distinct."""
    model = create_model("yolov3-tiny", num_classes=num_classes, settle_batchnorm=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def model():
    return _randomized()


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 128, 160, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("version, header_bytes", [((0, 2, 0), 20), ((0, 1, 0), 16)])
def test_round_trip_both_header_versions(model, image, tmp_path, version, header_bytes):
    path = model.save_darknet_weights(tmp_path / "tiny.weights", version=version, seen=123_456)
    assert path.stat().st_size == header_bytes + 4 * YOLOV3_TINY_VALUES
    header, values = read_darknet_file(path)
    assert (header.major, header.minor, header.revision, header.seen) == (
        *version,
        123_456,
    )
    assert values.size == YOLOV3_TINY_VALUES

    fresh = create_model("yolov3-tiny", weights=path, resolution="128x160")
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.equal(fresh.state_dict()[key], tensor), key
    model.eval()
    with torch.no_grad():
        for ours, theirs in zip(fresh.forward_raw(image), model.forward_raw(image)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_64_bit_seen_counter(model, tmp_path):
    path = model.save_darknet_weights(tmp_path / "big.weights", version=(0, 2, 5), seen=2**40 + 7)
    major, minor, revision, seen = struct.unpack_from("<3iq", path.read_bytes())
    assert (major, minor, revision, seen) == (0, 2, 5, 2**40 + 7)
    assert read_darknet_file(path)[0].seen == 2**40 + 7


def test_byte_layout_follows_darknet(model, tmp_path):
    """Per conv in cfg order: BN beta, gamma, mean, var (or the conv bias), then the kernel."""
    _, values = read_darknet_file(model.save_darknet_weights(tmp_path / "t.weights"))
    first = model.module_list["0"]
    expected = (
        torch.cat(
            [
                first.BatchNorm2d.bias,
                first.BatchNorm2d.weight,
                first.BatchNorm2d.running_mean,
                first.BatchNorm2d.running_var,
                first.Conv2d.weight.flatten(),
            ]
        )
        .detach()
        .numpy()
    )
    np.testing.assert_array_equal(values[: expected.size], expected)
    # The last conv (22) is a prediction conv: bias then kernel, ending the file.
    last = model.module_list["22"].Conv2d
    tail = torch.cat([last.bias, last.weight.flatten()]).detach().numpy()
    np.testing.assert_array_equal(values[-tail.size :], tail)


def test_truncated_file_refused_with_counts(model, tmp_path):
    good = model.save_darknet_weights(tmp_path / "good.weights").read_bytes()
    cut = tmp_path / "cut.weights"
    cut.write_bytes(good[: len(good) - 4 * 1000])
    with pytest.raises(WeightsError, match=r"holds 8,857,734 weight values.*needs 8,858,734.*truncated"):
        create_model("yolov3-tiny", weights=cut)


def test_oversized_file_refused_with_counts(model, tmp_path):
    big = tmp_path / "big.weights"
    big.write_bytes(model.save_darknet_weights(tmp_path / "g.weights").read_bytes() + b"\0" * 8)
    with pytest.raises(WeightsError, match=r"holds 8,858,736 weight values.*needs 8,858,734.*too many"):
        create_model("yolov3-tiny", weights=big)


def test_other_class_count_named(tmp_path):
    path = _randomized(num_classes=3).save_darknet_weights(tmp_path / "three.weights")
    with pytest.raises(WeightsError, match=r"with 80 classes.*fits yolov3-tiny with 3 classes"):
        create_model("yolov3-tiny", weights=path)
    assert create_model("yolov3-tiny", num_classes=3, weights=path).num_classes == 3


def test_garbage_and_foreign_models_refused(model, tmp_path):
    stub = tmp_path / "stub.weights"
    stub.write_bytes(b"\1\2\3")
    with pytest.raises(WeightsError, match="shorter than its header"):
        create_model("yolov3-tiny", weights=stub)
    odd = tmp_path / "odd.weights"
    odd.write_bytes(struct.pack("<3iq", 0, 2, 0, 0) + b"\0" * 6)
    with pytest.raises(WeightsError, match="whole number of float32"):
        create_model("yolov3-tiny", weights=odd)
    path = model.save_darknet_weights(tmp_path / "tiny.weights")
    with pytest.raises(WeightsError, match="follows no Darknet cfg"):
        create_model("yolox", weights=path)
    with pytest.raises(WeightsError, match="mobilenetv2 backbone"):
        create_model("yolov3-tiny", backbone="mobilenetv2", weights=path)
    with pytest.raises(InvalidOptionError, match="num_classes=3"):
        load_weights(create_model("yolov3-tiny", settle_batchnorm=False), path, num_classes=3)


def test_cli_refuses_truncated_file_with_exit_2(model, tmp_path, cli):
    path = model.save_darknet_weights(tmp_path / "t.weights")
    path.write_bytes(path.read_bytes()[:-400])
    proc = cli("export", "yolov3-tiny", "--weights", str(path), "--out", str(tmp_path / "run"))
    assert_user_error(proc, "8,858,634", "8,858,734")
