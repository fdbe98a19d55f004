"""`edgecv data shapes`: the same seed writes the same bytes, boxes are the drawn pixels' extent,
and the output reads back as COCO and as an ImageFolder."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from edgecv.evaluate.datasets import CocoDataset, ImageFolderDataset, open_dataset
from edgecv.evaluate.shapes import CATEGORY_IDS, CLASSES, generate_shapes, make_image
from tests.conftest import assert_user_error, assert_user_error_in_process, run_cli


def digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path):
    a = generate_shapes(tmp_path / "a", images=12, size=64, seed=5)
    generate_shapes(tmp_path / "b", images=12, size=64, seed=5)
    generate_shapes(tmp_path / "c", images=12, size=64, seed=6)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    assert a.images == {"train": 10, "val": 2}


def test_boxes_are_the_drawn_extent():
    # Boxes come from the drawn mask's pixel extent: inside the picture, of the shape's class, and
    # holding the shape's pixel count.
    for index in range(6):
        image, objects = make_image(3, "train", index, 96)
        assert 1 <= len(objects) <= 4
        for obj in objects:
            x, y, w, h = obj["bbox"]
            assert 0 <= x and 0 <= y and x + w <= image.width and y + h <= image.height
            assert obj["category_id"] == CATEGORY_IDS[CLASSES.index(obj["class"])]
            assert 0 < obj["area"] <= w * h


def test_reads_back_as_coco_and_imagefolder(tmp_path):
    generate_shapes(tmp_path, images=10, size=64, seed=0)
    coco = open_dataset(tmp_path / "val")
    assert isinstance(coco, CocoDataset)
    assert coco.category_ids == [1, 3, 5, 7] and len(coco) == 2
    coco.check_images()
    folder = open_dataset(tmp_path / "crops" / "train")
    assert isinstance(folder, ImageFolderDataset)
    assert folder.classes == list(CLASSES)  # labels.txt order (= category id order), not alphabetical
    path, label = folder.samples[0]
    assert path.parent.name == CLASSES[label]
    doc = json.loads((tmp_path / "train" / "annotations.json").read_text())
    first = doc["annotations"][0]
    img = np.asarray(Image.open(tmp_path / "train" / "images" / "000000.png"))
    assert img.shape[1] == 64 and 48 <= img.shape[0] <= 64
    assert first["image_id"] == 1


def test_cli(tmp_path):
    proc = run_cli("data", "shapes", "--out", tmp_path / "s", "--images", "5", "--size", "48", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["images"] == {"train": 4, "val": 1}
    assert_user_error(run_cli("data", "shapes", "--out", tmp_path / "t", "--images", "1"), "--images")
    (tmp_path / "file").write_text("x")
    assert_user_error(run_cli("data", "shapes", "--out", tmp_path / "file"), "not a folder")


def test_a_rerun_replaces_the_set_whole(tmp_path):
    # A smaller second set into the same folder: byte for byte a fresh one, no earlier picture or
    # crop left beside what its annotations list, and no staging folder left behind.
    generate_shapes(tmp_path / "s", images=20, size=48, seed=1)
    generate_shapes(tmp_path / "s", images=5, size=48, seed=2)
    generate_shapes(tmp_path / "fresh", images=5, size=48, seed=2)
    assert digest(tmp_path / "s") == digest(tmp_path / "fresh")
    (tmp_path / "made").mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "made", "s"]
    assert (tmp_path / "s").stat().st_mode == (tmp_path / "made").stat().st_mode


def test_an_interrupted_run_leaves_the_earlier_set(tmp_path):
    generate_shapes(tmp_path / "s", images=10, size=48, seed=1)
    before = digest(tmp_path / "s")

    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_shapes(tmp_path / "s", images=10, size=48, seed=2, progress=interrupt)
    assert digest(tmp_path / "s") == before
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


@pytest.mark.parametrize("extra", ["notes.txt", "train/images/mine.png"])
def test_a_folder_holding_other_files_is_refused_untouched(tmp_path, extra):
    # Another folder's files, or a shapes set with a file added to it: replacing it would delete them.
    folder = tmp_path / "s"
    if extra.startswith("train"):
        generate_shapes(folder, images=4, size=48)
    (folder / extra).parent.mkdir(parents=True, exist_ok=True)
    (folder / extra).write_text("keep")
    before = digest(folder)
    assert_user_error_in_process(
        "data", "shapes", "--out", folder, "--images", "4", fragments=("not a shapes data set",)
    )
    assert digest(folder) == before
