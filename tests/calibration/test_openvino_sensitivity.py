"""NNCF for OpenVINO on its own, the layer-sensitivity graph edit, and atomic artifact writes."""

from __future__ import annotations

import numpy as np
import onnx
import openvino as ov
import pytest

from edgecv.calibration.fidelity import collect, compare
from edgecv.calibration.openvino_int8 import openvino_names_for, quantize_openvino
from edgecv.calibration.passes import bypass_input_qdq
from edgecv.calibration.runners import openvino_runner, ort_runner
from edgecv.calibration.sensitivity import quantized_layers, with_float_inputs
from edgecv.runfolder import atomic_path

from .test_tensorrt_rules import qdq_model


def test_nncf_quantizes_the_ir_and_keeps_excluded_layers_in_float(tiny_onnx, tiny_ir, tiny_calib, tmp_path):
    conv = next(n.name for n in onnx.load(str(tiny_onnx)).graph.node if n.op_type == "Conv")
    info = quantize_openvino(tiny_ir, tmp_path / "int8.xml", tiny_calib.calibration, exclude=[conv, "/not/there"])
    assert info["subset_size"] == len(tiny_calib.calibration)
    assert info["excluded_not_found"] == ["/not/there"]
    model = ov.Core().read_model(str(tmp_path / "int8.xml"))
    fake_quantized = {
        t.get_node().get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() == "FakeQuantize"
        for out in op.outputs()
        for t in out.get_target_inputs()
    }
    assert f"{conv}/WithoutBiases" not in fake_quantized and fake_quantized, fake_quantized
    holdout = list(tiny_calib.holdout.batches(1))
    report = compare(
        collect(ort_runner(tiny_onnx), holdout), collect(openvino_runner(tmp_path / "int8.xml"), holdout), artifact="ov"
    )
    assert report.headline.top1_agreement >= 0.9


def test_onnx_node_names_map_to_openvino_operations(tiny_onnx):
    model = ov.convert_model(str(tiny_onnx))
    names = [n.name for n in onnx.load(str(tiny_onnx)).graph.node if n.op_type in ("Conv", "Gemm")]
    matched, missing = openvino_names_for(names, model)
    assert not missing and all(any(m == n or m.startswith(n + "/") for m in matched) for n in names)


def test_bypass_feeds_the_float_tensor_and_drops_orphaned_pairs():
    model = qdq_model()
    assert bypass_input_qdq(model, ["conv"]) == 2  # activation and weight
    conv = next(n for n in model.graph.node if n.name == "conv")
    assert list(conv.input) == ["x", "W", "B"]
    assert not {"q_x", "dq_x", "q_w", "dq_w"} & {n.name for n in model.graph.node}
    assert {"q_x2", "dq_x2", "q_y", "dq_y"} <= {n.name for n in model.graph.node}
    onnx.checker.check_model(model, full_check=True)


def test_sensitivity_variants_touch_one_layer_only():
    model = qdq_model()
    assert [n.name for n in quantized_layers(model)] == ["conv"]
    variant = with_float_inputs(model, "conv")
    assert len(variant.graph.node) == len(model.graph.node) - 4 and len(model.graph.node) == 10


def test_an_interrupted_write_leaves_nothing_that_looks_finished(tmp_path):
    final = tmp_path / "openvino" / "model.int8.xml"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(final, companions=(".bin",)) as tmp:
            tmp.write_text("<xml/>")
            tmp.with_suffix(".bin").write_bytes(b"\0")
            raise RuntimeError("killed")
    assert list(tmp_path.rglob("*")) == [tmp_path / "openvino"]
    with atomic_path(final, companions=(".bin",)) as tmp:
        tmp.write_text("<xml/>")
        tmp.with_suffix(".bin").write_bytes(np.zeros(4, np.uint8).tobytes())
    assert sorted(p.name for p in final.parent.iterdir()) == ["model.int8.bin", "model.int8.xml"]


def test_unknown_activation_range_estimator(tiny_ir, tiny_calib, tmp_path):
    from edgecv.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="minmax, mean_minmax, histogram"):
        quantize_openvino(tiny_ir, tmp_path / "x.xml", tiny_calib.calibration, activation_ranges="kl")
