"""Fidelity figures against hand-computed values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgecv.calibration.fidelity import OutputFidelity, collect, compare


def test_identical_outputs():
    ref = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
    report = compare({"logits": ref}, {"logits": ref.copy()}, artifact="same")
    head = report.headline
    assert (head.top1_agreement, head.top5_agreement, head.max_abs) == (1.0, 1.0, 0.0)
    assert head.cosine_mean == pytest.approx(1.0) and math.isinf(head.sqnr_db)
    d = report.to_dict()
    assert d["sqnr_db"] is None  # JSON has no infinity
    json.dumps(d, allow_nan=False)


def test_sqnr_cosine_and_agreement_by_hand():
    ref = np.array([[3.0, 1.0, 0.0, 0.0, 0.0, -1.0], [0.0, 2.0, 1.0, 0.0, 0.0, 0.0]])
    noise = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.5], [0.0, -1.5, 0.0, 0.0, 0.0, 0.0]])
    fid = OutputFidelity.compare("logits", ref, ref + noise)
    assert fid.sqnr_db == pytest.approx(10 * math.log10(np.sum(ref**2) / np.sum(noise**2)))
    # Row 2's top class moves from 1 to 2: top-1 agreement ½; class 1 is still in its top 5.
    assert fid.top1_agreement == 0.5 and fid.top5_agreement == 1.0
    cos = [np.dot(r, r + n) / np.linalg.norm(r) / np.linalg.norm(r + n) for r, n in zip(ref, noise)]
    assert fid.cosine_mean == pytest.approx(np.mean(cos)) and fid.cosine_min == pytest.approx(min(cos))
    assert (fid.max_abs, fid.mean_abs) == (1.5, pytest.approx(2.0 / 12))


def test_top5_is_absent_with_fewer_than_five_classes_and_top1_for_feature_maps():
    two = OutputFidelity.compare("p", np.eye(2), np.eye(2))
    assert two.top1_agreement == 1.0 and two.top5_agreement is None
    maps = OutputFidelity.compare("f", np.ones((2, 4, 3, 3)), np.ones((2, 4, 3, 3)))
    assert maps.top1_agreement is None


def test_every_output_is_compared_and_the_first_is_the_headline():
    rng = np.random.default_rng(1)
    ref = {"logits": rng.standard_normal((4, 10)), "boxes": rng.standard_normal((4, 5, 4))}
    report = compare(ref, {k: v + 0.01 for k, v in ref.items()}, artifact="two")
    assert [o.name for o in report.outputs] == ["logits", "boxes"]
    assert set(report.to_dict()["outputs"]) == {"logits", "boxes"}


def test_mismatches_raise():
    with pytest.raises(ValueError, match="shapes differ"):
        OutputFidelity.compare("x", np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="lacks the output"):
        compare({"logits": np.zeros((1, 3))}, {"other": np.zeros((1, 3))}, artifact="a")


def test_collect_concatenates_batches():
    out = collect(lambda b: {"y": b * 2}, [np.ones((2, 3)), np.zeros((1, 3))])
    np.testing.assert_array_equal(out["y"], np.array([[2.0] * 3, [2.0] * 3, [0.0] * 3]))
