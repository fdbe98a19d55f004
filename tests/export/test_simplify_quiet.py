"""onnxsim prints from C++ straight to the process's stderr; edgecv keeps that out of the terminal
and records what it meant, once."""

from __future__ import annotations

import os

import onnx
from onnx import TensorProto, helper

from edgecv.export.simplify import simplify_onnx

CPP_WARNING = (
    'WARNING: failed to run "Unsqueeze" op (name is "/decode/Unsqueeze_3"), skip... bad axes\n'
    'WARNING: failed to run "Unsqueeze" op (name is "/decode/Unsqueeze_4"), skip... bad axes\n'
    'WARNING: failed to run "Gather" op (name is "/nms/Gather"), skip... index\n'
)


def _tiny_onnx(path):
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_onnxsim_native_warnings_become_one_note(tmp_path, monkeypatch, capfd):
    import onnxsim

    def noisy_simplify(model):
        os.write(2, CPP_WARNING.encode())  # as std::cerr does: below Python's sys.stderr
        os.write(1, b"Checking 0/3...\n")
        return model, True

    monkeypatch.setattr(onnxsim, "simplify", noisy_simplify)
    _tiny_onnx(tmp_path / "raw.onnx")
    info = simplify_onnx(tmp_path / "raw.onnx", tmp_path / "out.onnx")
    printed = capfd.readouterr()
    assert "failed to run" not in printed.err + printed.out and "Checking" not in printed.out
    assert info["simplified"] and info["unfolded_nodes"] == 3
    assert "3 node(s) (Unsqueeze ×2, Gather ×1)" in info["note"]
    assert info["onnxsim_output"] == ["Checking 0/3..."]


def test_a_quiet_onnxsim_leaves_no_note(tmp_path, capfd):
    _tiny_onnx(tmp_path / "raw.onnx")
    info = simplify_onnx(tmp_path / "raw.onnx", tmp_path / "out.onnx")
    assert info["simplified"] and "note" not in info and "onnxsim_output" not in info
    assert capfd.readouterr().err == ""
