"""quantize_run end to end on a tiny MobileNetV2-like CNN: both ONNX flavours and OpenVINO INT8 run
and follow FP32 on held-out inputs, the report is written, ranges are cached and reused, and layers
can be kept in float."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from edgecv.calibration import quantize_run
from edgecv.calibration.fidelity import collect
from edgecv.calibration.runners import openvino_runner, ort_runner
from edgecv.errors import InvalidOptionError
from edgecv.tensorrt.rules import check_tensorrt_qdq


def _run_dir(tmp_path, tiny_onnx, tiny_ir=None):
    shutil.copy(tiny_onnx, tmp_path / "model.onnx")
    if tiny_ir is not None:
        (tmp_path / "openvino").mkdir()
        for suffix in (".xml", ".bin"):
            shutil.copy(tiny_ir.with_suffix(suffix), tmp_path / "openvino" / f"model{suffix}")
    return tmp_path


@pytest.fixture(scope="module")
def full_run(tiny_onnx, tiny_ir, tiny_calib, tmp_path_factory):
    run = _run_dir(tmp_path_factory.mktemp("run"), tiny_onnx, tiny_ir)
    return run, quantize_run(run / "model.onnx", run, tiny_calib, openvino_xml=run / "openvino" / "model.xml")


def test_every_artifact_is_written_and_follows_fp32(full_run, tiny_calib):
    run, result = full_run
    assert set(result.artifacts) == {"onnx-int8", "onnx-int8-cpu", "openvino-int8"}
    assert result.artifacts["onnx-int8"] == run / "model.int8.onnx"
    assert result.artifacts["onnx-int8-cpu"] == run / "model.int8.cpu.onnx"
    assert (run / "openvino" / "model.int8.xml").is_file() and (run / "openvino" / "model.int8.bin").is_file()
    assert not list(run.rglob(".partial-*")), "temporary files left behind"
    holdout = list(tiny_calib.holdout.batches(1))
    reference = collect(ort_runner(run / "model.onnx"), holdout)["logits"]
    for name, path in result.artifacts.items():
        fid = result.fidelity[name]
        assert fid.inputs == len(tiny_calib.holdout) and not fid.in_sample
        assert fid.headline.cosine_mean > 0.99, (name, fid.to_dict())
        assert fid.headline.top1_agreement >= 0.9, (name, fid.to_dict())
        # The figures are about the artifact on disk: recompute one from a fresh session.
        runner = openvino_runner(path) if path.suffix == ".xml" else ort_runner(path)
        actual = collect(runner, holdout)["logits"]
        agree = float(np.mean(actual.argmax(1) == reference.argmax(1)))
        assert agree == pytest.approx(fid.headline.top1_agreement)


def test_flavours_have_the_types_their_engines_need(full_run):
    run, result = full_run

    def quantized_types(path):
        model = onnx.load(str(path))
        inits = {i.name: i.data_type for i in model.graph.initializer}
        return {inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}

    assert quantized_types(run / "model.int8.onnx") == {onnx.TensorProto.INT8}
    assert onnx.TensorProto.UINT8 in quantized_types(run / "model.int8.cpu.onnx")
    assert check_tensorrt_qdq(run / "model.int8.onnx") == []
    assert result.flavours["tensorrt"]["tensorrt_rules"] == "passed"


def test_report_json_holds_fidelity_calibration_and_timings(full_run):
    run, result = full_run
    report = json.loads((run / "calibration" / "report.json").read_text())
    assert report == json.loads(json.dumps(result.to_dict()))
    assert set(report["fidelity"]) == set(result.artifacts)
    for fid in report["fidelity"].values():
        assert {"top1_agreement", "top5_agreement", "cosine", "sqnr_db", "max_abs"} <= set(fid)
    assert report["calibration"]["calibration"] == 96 and report["calibration"]["kind"] == "default"
    assert {"pre_process", "ranges", "quantize_tensorrt", "quantize_cpu", "nncf_openvino", "fidelity"} <= set(
        report["timings_s"]
    )
    assert report["ranges"]["reused"] is False and report["method"] == "percentile"


def test_rerun_reuses_the_cached_ranges(full_run, tiny_calib):
    run, first = full_run
    again = quantize_run(run / "model.onnx", run, tiny_calib, flavours=("tensorrt",))
    assert again.ranges["reused"] is True and again.ranges["key"] == first.ranges["key"]
    assert again.fidelity["onnx-int8"].to_dict() == first.fidelity["onnx-int8"].to_dict()


def test_a_different_method_recomputes_the_ranges(tiny_onnx, tiny_calib, tmp_path):
    run = _run_dir(tmp_path, tiny_onnx)
    results = {
        m: quantize_run(run / "model.onnx", run, tiny_calib, m, flavours=("cpu",)) for m in ("minmax", "entropy")
    }
    assert results["minmax"].ranges["key"] != results["entropy"].ranges["key"]
    assert not results["entropy"].ranges["reused"]
    for r in results.values():
        assert r.fidelity["onnx-int8-cpu"].headline.cosine_mean > 0.99


def test_keep_fp32_leaves_the_most_sensitive_layer_in_float(tiny_onnx, tiny_calib, tmp_path):
    run = _run_dir(tmp_path, tiny_onnx)
    result = quantize_run(run / "model.onnx", run, tiny_calib, keep_fp32=1, sensitivity_inputs=8)
    ranking = result.sensitivity
    graph = onnx.load(str(tiny_onnx)).graph
    assert {layer.node for layer in ranking.layers} == {n.name for n in graph.node if n.op_type in ("Conv", "Gemm")}
    gains = [layer.gain_db for layer in ranking.layers]
    assert gains == sorted(gains, reverse=True)
    assert result.excluded == [ranking.layers[0].node]
    for path in (run / "model.int8.onnx", run / "model.int8.cpu.onnx"):
        model = onnx.load(str(path))
        producer = {o: n for n in model.graph.node for o in n.output}
        kept = next(n for n in model.graph.node if n.name == result.excluded[0])
        assert all(getattr(producer.get(i), "op_type", None) != "DequantizeLinear" for i in kept.input), path
    assert check_tensorrt_qdq(run / "model.int8.onnx", exempt=tuple(result.excluded)) == []


def test_a_layer_kept_in_float_still_sees_its_activation(full_run, tiny_onnx, tiny_calib, tmp_path):
    """The CPU flavour's quantizer folds a ReLU6 in front of a U8 Q/DQ pair into the pair; a layer
    kept in float must get the clipped tensor back, not the raw convolution output."""
    from edgecv.calibration.quantize_onnx import prepare_for_quantization

    prepared = tmp_path / "prepared.onnx"
    prepare_for_quantization(tiny_onnx, prepared)
    fp32 = onnx.load(str(prepared)).graph
    producers = {o: n for n in fp32.node for o in n.output}
    after_activation = [
        n.name
        for n in fp32.node
        if n.op_type == "Conv" and getattr(producers.get(n.input[0]), "op_type", None) in ("Clip", "Relu")
    ]
    assert after_activation, "the tiny net should have a convolution after a ReLU6"
    (tmp_path / "run").mkdir()
    run = _run_dir(tmp_path / "run", tiny_onnx)
    result = quantize_run(run / "model.onnx", run, tiny_calib, exclude=after_activation[:1], flavours=("cpu",))
    graph = onnx.load(str(run / "model.int8.cpu.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    kept = next(n for n in graph.node if n.name == after_activation[0])
    assert producer[kept.input[0]].op_type in ("Clip", "Relu")
    # Keeping a layer in float may not make the artifact follow FP32 worse than keeping none.
    _, everything = full_run
    assert (
        result.fidelity["onnx-int8-cpu"].headline.sqnr_db >= everything.fidelity["onnx-int8-cpu"].headline.sqnr_db - 1.0
    )


def test_bad_options_are_user_errors(tiny_onnx, tiny_calib, tmp_path):
    run = _run_dir(tmp_path, tiny_onnx)
    with pytest.raises(InvalidOptionError, match="calibration method"):
        quantize_run(run / "model.onnx", run, tiny_calib, "kl")
    with pytest.raises(InvalidOptionError, match="no node named /stem/0/Cnv"):
        quantize_run(run / "model.onnx", run, tiny_calib, exclude=["/stem/0/Cnv"])
    with pytest.raises(InvalidOptionError, match="only 6 quantizable layers"):
        quantize_run(run / "model.onnx", run, tiny_calib, keep_fp32=99)
    with pytest.raises(InvalidOptionError, match="flavour"):
        quantize_run(run / "model.onnx", run, tiny_calib, flavours=("gpu",))
    assert not (run / "model.int8.onnx").exists()
