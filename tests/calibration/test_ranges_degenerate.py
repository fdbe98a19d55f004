"""Activation statistics of tensors a detector produces and ONNX Runtime's collectors refuse: a
nearly constant one (an untrained objectness head) and an empty one (NMS outputs of a picture with
no detection). Both failed `edgecv export --int8` of a YOLOX before."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.calibration.ranges import RangeStatistics


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_near_constant_and_empty_tensors_calibrate(method):
    rng = np.random.default_rng(0)
    stats = RangeStatistics(method, chunk=2)
    for _ in range(5):
        stats.update(
            {
                # |x| from 4.59198 to 4.59215: fewer float32 steps than 2048 histogram bins.
                "obj": (-4.59198 - 1.7e-4 * rng.random((1, 1, 20, 20))).astype(np.float32),
                "nms": np.zeros((0, 3), np.int64),
                "act": rng.normal(size=(1, 8, 4, 4)).astype(np.float32),
            }
        )
    ranges = stats.result()
    lo, hi = (float(v) for v in ranges["obj"].range_value)
    assert np.isfinite([lo, hi]).all()
    assert 4.5 < max(abs(lo), abs(hi)) <= 4.6, (lo, hi)
    assert "act" in ranges.data
    assert "nms" not in ranges.data
