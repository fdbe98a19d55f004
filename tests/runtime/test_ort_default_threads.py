"""ONNX Runtime sessions get an explicit intra-op thread count (ORT's own default pins its threads to
cores and ignores taskset/container limits), and the count is what the runtime reports."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgecv.runtime import load
from edgecv.runtime.onnxruntime import default_intra_threads


def _tiny(path):
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_default_threads_fit_the_cores_this_process_may_use():
    threads = default_intra_threads()
    assert 1 <= threads <= len(os.sched_getaffinity(0))


def test_a_session_without_threads_reports_the_count_it_was_given(tmp_path):
    with load(_tiny(tmp_path / "m.onnx"), backend="onnxruntime") as rt:
        assert rt.threads == default_intra_threads()
        out = rt.infer({"x": np.ones((1, 3, 4, 4), np.float32)})
        assert np.allclose(next(iter(out.values())), 1.0)
    with load(tmp_path / "m.onnx", backend="onnxruntime", threads=1) as rt:
        assert rt.threads == 1
