"""Calibration data sources, sampling, skipping, hold-out and every bad-input path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgecv.calibration.data import (
    RECOMMENDED_MIN,
    CalibrationWarning,
    load_calibration,
    split_counts,
)
from edgecv.errors import CalibrationDataError
from edgecv.preprocess import preprocess

from .conftest import quiet_calibration, tiny_spec, write_image

SPEC = tiny_spec()


@pytest.fixture
def photo_folder(tmp_path):
    """12 good images in nested folders (every suffix), 2 corrupt ones and a stray text file."""
    root = tmp_path / "photos"
    suffixes = [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".PNG"]
    for i in range(12):
        write_image(root / f"set{i % 3}" / "deeper" / f"img{i}{suffixes[i % len(suffixes)]}", seed=i)
    (root / "broken.jpg").write_bytes(b"this is not a JPEG")
    good = write_image(tmp_path / "whole.png", seed=99).read_bytes()
    (root / "set1" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_is_searched_recursively_and_unreadable_files_are_counted(photo_folder):
    with pytest.warns(CalibrationWarning) as caught:
        calib = load_calibration(photo_folder, SPEC, size=8, holdout=4)
    assert any("skipped 2 unusable files: " in str(w.message) for w in caught)
    r = calib.report
    assert (r.kind, r.candidates, r.calibration, r.holdout) == ("folder", 14, 8, 4)
    assert sorted(s["item"] for s in r.skipped) == ["broken.jpg", "set1/truncated.png"]
    assert all("not a readable image" in s["reason"] for s in r.skipped)
    assert r.skipped_count == 2 and "1 files without an image suffix ignored" in r.notes
    assert not set(calib.calibration.labels) & set(calib.holdout.labels)
    # Each tensor is exactly what the shared preprocessing makes of that file.
    first = calib.calibration.samples[0]
    np.testing.assert_array_equal(calib.calibration[0], preprocess(first.path, SPEC))
    assert calib.calibration[0].shape == (3, 32, 32) and calib.calibration[0].dtype == np.float32


def test_sampling_is_deterministic_per_seed(photo_folder):
    a = quiet_calibration(photo_folder, SPEC, size=5, holdout=2, seed=1)
    b = quiet_calibration(photo_folder, SPEC, size=5, holdout=2, seed=1)
    c = quiet_calibration(photo_folder, SPEC, size=5, holdout=2, seed=2)
    assert a.calibration.labels == b.calibration.labels and a.fingerprint == b.fingerprint
    assert a.calibration.labels != c.calibration.labels and a.fingerprint != c.fingerprint


def test_fingerprint_follows_image_content(photo_folder):
    before = quiet_calibration(photo_folder, SPEC, size=12, holdout=0)
    fingerprint = before.fingerprint
    target = next(s.path for s in before.calibration.samples if s.path.suffix == ".png")
    write_image(target, seed=1234)
    after = quiet_calibration(photo_folder, SPEC, size=12, holdout=0)
    assert before.calibration.labels == after.calibration.labels
    assert fingerprint != after.fingerprint


def test_list_file_paths_are_relative_to_the_file(photo_folder, tmp_path):
    images = sorted(p for p in photo_folder.rglob("img*"))[:6]
    listing = tmp_path / "lists" / "calib.txt"
    listing.parent.mkdir()
    lines = [
        "# calibration images",
        "",
        *[f"../photos/{p.relative_to(photo_folder).as_posix()}" for p in images[:5]],
        str(images[5]),
        "../photos/missing.jpg",
    ]
    listing.write_text("\n".join(lines) + "\n")
    calib = quiet_calibration(listing, SPEC, size=4, holdout=2)
    r = calib.report
    assert (r.kind, r.candidates, r.calibration, r.holdout) == ("list", 7, 4, 2)
    assert r.skipped == [{"item": "../photos/missing.jpg", "reason": "listed but not found"}]


def test_npy_rows_are_used_as_is(tmp_path):
    arr = np.random.default_rng(0).standard_normal((40, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "calib.npy", arr)
    calib = quiet_calibration(tmp_path / "calib.npy", SPEC, size=30, holdout=10)
    assert (calib.report.kind, calib.report.calibration, calib.report.holdout) == ("array", 30, 10)
    rows = [int(label.split("[")[1].rstrip("]")) for label in calib.calibration.labels]
    np.testing.assert_array_equal(calib.calibration.array(), arr[rows])
    held = {int(label.split("[")[1].rstrip("]")) for label in calib.holdout.labels}
    assert not held & set(rows)


def test_npz_picks_the_input_named_array_and_converts_float64(tmp_path):
    arr = np.random.default_rng(1).standard_normal((12, 3, 32, 32))
    np.savez(tmp_path / "calib.npz", input=arr, labels=np.arange(12))
    calib = quiet_calibration(tmp_path / "calib.npz", SPEC, size=8, holdout=4)
    assert calib.calibration[0].dtype == np.float32
    assert "float64 array converted to float32" in calib.report.notes


def test_default_photographs_warn_and_hold_out_whole_photos():
    with pytest.warns(CalibrationWarning, match="INT8 accuracy on your task needs"):
        calib = load_calibration(None, SPEC, size=40, holdout=12)
    r = calib.report
    assert (r.kind, r.calibration, r.holdout, r.holdout_in_sample) == ("default", 40, 12, False)
    photo = lambda label: label.split(" ")[0]  # noqa: E731
    assert not {photo(x) for x in calib.calibration.labels} & {photo(x) for x in calib.holdout.labels}
    assert len(set(calib.calibration.labels)) == 40, "crops must be distinct inputs"
    assert any("crops and mirror images" in note for note in r.notes)


def test_fewer_images_than_asked_warns_with_the_count(photo_folder):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calib = load_calibration(photo_folder, SPEC, size=300, holdout=64)
    messages = [str(w.message) for w in caught if w.category is CalibrationWarning]
    assert calib.report.calibration == 12 and calib.report.holdout_in_sample
    assert any("asked for 300 calibration inputs" in m and "has only 12 usable (2 skipped)" in m for m in messages)
    assert any("INT8 accuracy at risk" in m for m in messages)


def test_a_set_too_small_to_split_measures_fidelity_in_sample(tmp_path):
    for i in range(3):
        write_image(tmp_path / "few" / f"{i}.png", seed=i)
    calib = quiet_calibration(tmp_path / "few", SPEC, size=300, holdout=64)
    assert calib.report.holdout_in_sample and calib.report.calibration == 3
    assert calib.holdout.labels == calib.calibration.labels


@pytest.mark.parametrize(
    ("available", "size", "holdout", "expected"),
    [
        (1000, 300, 64, (300, 64, False)),  # plenty
        (330, 300, 64, (300, 30, False)),  # what is left over is held out
        (100, 300, 64, (80, 20, False)),  # fewer than asked: a fifth held out
        (20, 300, 64, (20, 20, True)),  # too few to spare any
        (500, 300, 0, (300, 64, True)),  # no hold-out asked: in-sample figures
    ],
)
def test_split_counts(available, size, holdout, expected):
    assert split_counts(available, size, holdout) == expected


def test_recommended_minimum_is_a_few_hundred():
    assert 100 <= RECOMMENDED_MIN <= 500


def test_tensors_are_preprocessed_lazily_within_the_cache_budget(photo_folder):
    calib = quiet_calibration(photo_folder, SPEC, size=6, holdout=2, cache_bytes=3 * 3 * 32 * 32 * 4)
    batches = list(calib.calibration.batches(4))
    assert [b.shape for b in batches] == [(4, 3, 32, 32), (4, 3, 32, 32)]
    # The short last batch is filled from the start: a fixed-batch graph takes no other size.
    np.testing.assert_array_equal(batches[1][2:], batches[0][:2])
    assert calib.calibration._cache.used == 3 * 3 * 32 * 32 * 4  # three kept, the rest recomputed
    reader = calib.ort_reader(batch_size=2)
    feeds = list(iter(reader.get_next, None))
    assert len(feeds) == 3 and feeds[0]["input"].shape == (2, 3, 32, 32)


# --- bad input -------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(CalibrationDataError, match="not found"):
        load_calibration(tmp_path / "nope", SPEC)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("x")
    with pytest.raises(CalibrationDataError, match=r"no images .*1 other files"):
        load_calibration(tmp_path / "empty", SPEC)


def test_folder_without_a_readable_image(tmp_path):
    (tmp_path / "bad").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "bad" / name).write_bytes(b"\x00garbage")
    with pytest.raises(CalibrationDataError, match="none of the 2 images"):
        load_calibration(tmp_path / "bad", SPEC)


def test_list_file_whose_paths_are_all_missing(tmp_path):
    (tmp_path / "l.txt").write_text("a.jpg\nb.jpg\n")
    with pytest.raises(CalibrationDataError, match="none of the 2 paths"):
        load_calibration(tmp_path / "l.txt", SPEC)


def test_binary_file_that_is_no_list(tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    with pytest.raises(CalibrationDataError, match="not UTF-8 text"):
        load_calibration(tmp_path / "blob.bin", SPEC)


def test_single_image_is_refused(tmp_path):
    with pytest.raises(CalibrationDataError, match="single image"):
        load_calibration(write_image(tmp_path / "one.jpg", seed=0), SPEC)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((4, 3, 64, 64), np.float32), r"shape \(4, 3, 64, 64\); expected \(N, 3, 32, 32\)"),
        (np.zeros((3, 32, 32), np.float32), "shape"),
        (np.zeros((4, 3, 32, 32), np.uint8), "uint8 values"),
        (np.zeros((0, 3, 32, 32), np.float32), "empty"),
        (np.full((2, 3, 32, 32), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_arrays(tmp_path, array, match):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(CalibrationDataError, match=match):
        load_calibration(tmp_path / "x.npy", SPEC, size=2, holdout=0)


def test_npz_with_several_unnamed_arrays(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros((2, 3, 32, 32)), b=np.zeros((2, 3, 32, 32)))
    with pytest.raises(CalibrationDataError, match="several arrays"):
        load_calibration(tmp_path / "x.npz", SPEC)


def test_corrupt_npy(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(CalibrationDataError, match="cannot read"):
        load_calibration(tmp_path / "x.npy", SPEC)


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_size_must_be_positive(size):
    with pytest.raises(CalibrationDataError, match="positive"):
        load_calibration(None, SPEC, size=size)


def test_holdout_must_not_be_negative():
    with pytest.raises(CalibrationDataError, match="hold-out"):
        load_calibration(None, SPEC, holdout=-1)


def test_calibration_data_error_is_a_user_error():
    assert CalibrationDataError("x").exit_code == 2


@pytest.mark.parametrize("size", [1, 2])
def test_a_tiny_default_set_still_calibrates_on_a_photo(size):

    calib = quiet_calibration(None, SPEC, size=size)
    assert len(calib.calibration) == size and len(calib.holdout) >= 1
    assert not calib.report.holdout_in_sample
