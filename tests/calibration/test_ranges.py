"""Activation ranges: the same figures as ONNX Runtime's own calibrators, memory that does not grow
with the number of inputs, and a cache that is only reused when it fits."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from onnxruntime.quantization import create_calibrator

from edgecv.calibration.quantize_onnx import prepare_for_quantization
from edgecv.calibration.ranges import (
    DEFAULT_CHUNK,
    SampleReader,
    cached_ranges,
    compute_ranges,
    method_of,
    read_cached,
)
from edgecv.errors import InvalidOptionError


@pytest.fixture(scope="module")
def prepared(tiny_onnx, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "prepared.onnx"
    prepare_for_quantization(tiny_onnx, out)
    return out


def _ort_reference(prepared, samples, method, tmp_path):
    """ONNX Runtime's calibrator, fed the same chunks as edgecv's statistics."""
    calibrator = create_calibrator(
        prepared, augmented_model_path=str(tmp_path / "aug.onnx"), calibrate_method=method_of(method)
    )
    reader = SampleReader(samples, "input")
    for start in range(0, len(samples), DEFAULT_CHUNK):
        reader.set_range(start, start + DEFAULT_CHUNK)
        calibrator.collect_data(reader)
    return calibrator.compute_data()


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_ranges_match_onnx_runtime_calibrators(prepared, tiny_calib, method, tmp_path, capsys):
    samples = tiny_calib.calibration[:48]
    ours = compute_ranges(prepared, samples, "input", method, samples_per_tensor=1 << 20)
    assert "Collecting" not in capsys.readouterr().out  # ORT's prints stay off stdout (--json)
    theirs = _ort_reference(prepared, samples, method, tmp_path)
    assert set(ours.data) == set(theirs.data)
    for name in theirs.data:
        np.testing.assert_allclose(
            np.ravel(ours[name].range_value), np.ravel(theirs[name].range_value), rtol=1e-3, atol=1e-5, err_msg=name
        )


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_memory_does_not_grow_with_the_number_of_inputs(prepared, tiny_calib, method):
    def peak(n: int) -> int:
        samples = [tiny_calib.calibration[i % len(tiny_calib.calibration)] for i in range(n)]
        tracemalloc.start()
        compute_ranges(prepared, samples, "input", method)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(DEFAULT_CHUNK), peak(12 * DEFAULT_CHUNK)
    assert large < 1.5 * small + (1 << 20), (small, large)


def test_cache_is_reused_only_for_the_same_key(prepared, tiny_calib, tmp_path):
    cache = tmp_path / "ranges.json"
    samples = tiny_calib.calibration[:16]
    first, info = cached_ranges(prepared, samples, "input", "minmax", data_fingerprint="a", cache_path=cache)
    assert info["reused"] is False and cache.is_file() and cache.with_suffix(".meta.json").is_file()
    again, info2 = cached_ranges(prepared, samples, "input", "minmax", data_fingerprint="a", cache_path=cache)
    assert info2["reused"] is True and info2["key"] == info["key"]
    for name in first.data:
        assert again[name].range_value == pytest.approx(first[name].range_value)
    assert read_cached(cache, "another key") is None
    _, info3 = cached_ranges(prepared, samples, "input", "minmax", data_fingerprint="b", cache_path=cache)
    assert info3["reused"] is False and info3["key"] != info["key"]


def test_an_edited_or_half_written_cache_is_not_used(prepared, tiny_calib, tmp_path):
    cache = tmp_path / "ranges.json"
    _, info = cached_ranges(
        prepared, tiny_calib.calibration[:8], "input", "minmax", data_fingerprint="a", cache_path=cache
    )
    data = json.loads(cache.read_text())
    cache.write_text(json.dumps(data).replace("1", "2", 1))
    assert read_cached(cache, info["key"]) is None
    cache.with_suffix(".meta.json").unlink()
    assert read_cached(cache, info["key"]) is None


def test_reader_wraps_the_last_batch_and_honours_ranges():
    samples = [np.full((3, 2, 2), i, np.float32) for i in range(5)]
    reader = SampleReader(samples, "x", batch_size=2)
    batches = [feed["x"][:, 0, 0, 0].tolist() for feed in iter(reader.get_next, None)]
    assert batches == [[0, 1], [2, 3], [4, 0]]
    reader.set_range(2, 4)
    assert [feed["x"][:, 0, 0, 0].tolist() for feed in iter(reader.get_next, None)] == [[2, 3]]


def test_unknown_method():
    with pytest.raises(InvalidOptionError, match="minmax, entropy, percentile"):
        method_of("kl")
