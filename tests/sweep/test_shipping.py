"""What travels between the machines of a sweep: folders packed and unpacked whole, inputs unpacked
once per node under their content's name, and a point's driver paths swapped for a node's copies."""

from __future__ import annotations

import dataclasses
import tarfile

import pytest

from edgecv.sweep.point import EvalData, Point
from edgecv.sweep.shipping import (
    PARTIAL,
    driver_paths,
    localize_data,
    localize_point,
    make_parcel,
    pack,
    receive,
    unpack_folder,
)


def test_a_folder_unpacks_whole_over_an_older_copy(tmp_path):
    src = tmp_path / "run"
    (src / "openvino").mkdir(parents=True)
    (src / "manifest.json").write_text("{}")
    (src / "openvino" / "model.xml").write_text("<net/>")
    dest = tmp_path / "driver" / "run"
    dest.mkdir(parents=True)
    (dest / "stale.onnx").write_text("from an older export")

    unpack_folder(pack(src), dest)

    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "manifest.json",
        "openvino",
        "openvino/model.xml",
    ]
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(PARTIAL)]


def test_an_input_unpacks_once_per_node_and_a_broken_one_leaves_nothing(tmp_path):
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    parcel = make_parcel(str(weights))
    cache = tmp_path / "cache"
    fetched = []

    def fetch():
        fetched.append(1)
        return parcel.blob

    first = receive(parcel, fetch, cache)
    again = receive(parcel, fetch, cache)
    assert first == again and first.name == "w.pth" and first.read_bytes() == b"weights"
    assert len(fetched) == 1  # the second task found the complete copy and fetched nothing

    broken = dataclasses.replace(parcel, digest="0" * 64)
    with pytest.raises(tarfile.ReadError):
        receive(broken, lambda: b"not a tar", cache)
    assert sorted(p.name for p in cache.iterdir()) == [parcel.digest[:24]]


def test_a_point_reads_the_nodes_copies_of_the_driver_paths(tmp_path):
    weights, calib, data = tmp_path / "w.pth", tmp_path / "calib", tmp_path / "val.npz"
    weights.write_bytes(b"w")
    calib.mkdir()
    data.write_bytes(b"d")
    options = {"weights": str(weights), "calib": str(calib), "labels": None, "int8": True}
    point = Point("k", "mobilenetv2", 0.35, 32, {}, "int8", 10, str(weights), "run", export_options=options)
    eval_data = EvalData(str(data), images=str(tmp_path / "missing"))

    assert driver_paths([point], eval_data) == [str(weights), str(calib), str(data)]
    local = {str(weights): "/node/w.pth", str(calib): "/node/calib", str(data): "/node/val.npz"}
    moved = localize_point(point, local)
    assert moved.weights == "/node/w.pth" and moved.export_options["calib"] == "/node/calib"
    assert moved.export_options["int8"] is True and point.weights == str(weights)  # the original is untouched
    assert localize_data(eval_data, local) == EvalData("/node/val.npz", str(tmp_path / "missing"))
