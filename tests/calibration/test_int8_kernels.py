"""The CPU-dependent INT8 settings: which graphs need ONNX Runtime's S8×S8 kernels on CPUs without
VNNI, what each --target-cpu builds, the benchmark's note for an artifact built for another CPU, and
that the TensorRT flavour runs as its graph says."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from edgecv import int8_kernels
from edgecv.calibration import quantize_run
from edgecv.calibration.fidelity import collect
from edgecv.calibration.runners import ort_runner
from edgecv.errors import InvalidOptionError
from edgecv.int8_kernels import (
    artifact_target_note,
    has_signed_activations,
    mismatch_note,
    onnxruntime_int8_config,
    target_cpu,
)

from .test_quantize_run import _run_dir


@pytest.fixture(scope="module")
def flavours(tiny_onnx, tiny_calib, tmp_path_factory):
    run = _run_dir(tmp_path_factory.mktemp("kernels"), tiny_onnx)
    quantize_run(run / "model.onnx", run, tiny_calib)
    return run


@pytest.fixture
def without_vnni(monkeypatch):
    monkeypatch.setattr(int8_kernels, "cpu_has_vnni", lambda: False)
    monkeypatch.setattr(int8_kernels, "cpu_int8_target", lambda: "x86-avx2")


@pytest.fixture
def with_vnni(monkeypatch):
    monkeypatch.setattr(int8_kernels, "cpu_has_vnni", lambda: True)
    monkeypatch.setattr(int8_kernels, "cpu_int8_target", lambda: "x86-vnni")


def test_signed_activations_are_told_apart(flavours, tiny_onnx):
    assert has_signed_activations(flavours / "model.int8.onnx")  # TensorRT flavour: S8 activations
    assert not has_signed_activations(flavours / "model.int8.cpu.onnx")  # U8 activations
    assert not has_signed_activations(tiny_onnx)  # no Q/DQ at all
    assert has_signed_activations((flavours / "model.int8.onnx").read_bytes())


def test_onnxruntime_config_follows_the_cpu(flavours, without_vnni):
    assert onnxruntime_int8_config(flavours / "model.int8.onnx") == {"session.qdqisint8allowed": "1"}
    assert onnxruntime_int8_config(flavours / "model.int8.cpu.onnx") == {}


def test_vnni_cpus_need_nothing(flavours, with_vnni):
    assert onnxruntime_int8_config(flavours / "model.int8.onnx") == {}


def test_targets_decide_the_7bit_weights(monkeypatch):
    assert (target_cpu("x86-avx2").reduce_range, target_cpu("x86-avx2").overflow_fix) == (True, "enable")
    assert (target_cpu("x86-vnni").reduce_range, target_cpu("x86-vnni").overflow_fix) == (False, "first_layer_only")
    assert (target_cpu("arm64").reduce_range, target_cpu("arm64").overflow_fix) == (False, "disable")
    monkeypatch.setattr(int8_kernels, "cpu_int8_target", lambda: "x86-avx2")
    assert target_cpu("auto").name == "x86-avx2"
    assert "this machine's CPU" in int8_kernels.describe_target("auto")
    with pytest.raises(InvalidOptionError, match="--target-cpu must be one of auto, x86-vnni"):
        target_cpu("riscv")


def test_built_for_another_cpu_is_noted():
    risk = mismatch_note("openvino-int8", "x86-vnni", "x86-avx2")
    assert "saturating 16-bit" in risk and "accuracy risk" in risk and "--target-cpu x86-avx2" in risk
    small = mismatch_note("onnx-int8-cpu", "x86-avx2", "x86-vnni")
    assert "7-bit weights" in small and "accuracy risk" not in small
    assert mismatch_note("onnx-int8-cpu", "arm64", "arm64") is None


def test_a_target_built_for_avx2_is_stamped_and_noted(flavours, tiny_onnx, tiny_ir, tiny_calib, tmp_path, monkeypatch):
    """--target-cpu x86-avx2 on any machine: 7-bit weights in the CPU flavour, NNCF's fix on every
    layer, the target in the report; an artifact carrying that target is noted on a VNNI CPU."""
    from edgecv.artifact_metadata import stamp_onnx

    run = _run_dir(tmp_path, tiny_onnx, tiny_ir)
    result = quantize_run(
        run / "model.onnx",
        run,
        tiny_calib,
        flavours=("cpu",),
        target_cpu="x86-avx2",
        openvino_xml=run / "openvino" / "model.xml",
    )
    assert result.target_cpu == "x86-avx2" and result.flavours["cpu"]["reduce_range"] is True
    assert result.flavours["openvino"]["overflow_fix"] == "enable"
    stamp_onnx(run / "model.int8.cpu.onnx", {"edgecv.target_cpu": "x86-avx2"})
    monkeypatch.setattr(int8_kernels, "cpu_int8_target", lambda: "x86-vnni")
    assert "built for x86-avx2, running on x86-vnni" in artifact_target_note("cpu", run / "model.int8.cpu.onnx")
    assert artifact_target_note("trt", flavours / "model.int8.onnx") is None  # carries no target
    assert artifact_target_note("rec", flavours / "model.int8.onnx", {"extra": {"target_cpu": "x86-vnni"}}) is None


def test_the_tensorrt_flavour_runs_as_written(flavours, tiny_calib):
    """The configured session computes what the graph says: the same outputs as ONNX Runtime with
    its Q/DQ fusions off (Q and DQ as float ops), whatever the CPU."""
    holdout = list(tiny_calib.holdout.batches(1))
    path = flavours / "model.int8.onnx"
    ours = collect(ort_runner(path), holdout)["logits"]
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    emulated = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = emulated.get_inputs()[0].name
    reference = np.concatenate([emulated.run(None, {name: b})[0] for b in holdout])
    sqnr = 10 * np.log10((reference**2).sum() / max(((reference - ours) ** 2).sum(), 1e-30))
    assert sqnr > 30, f"the TensorRT flavour in ONNX Runtime departs from its graph ({sqnr:.1f} dB)"


def test_the_runtime_says_when_it_changed_kernels(flavours, without_vnni):
    from edgecv.runtime import load

    with load(flavours / "model.int8.onnx") as rt:
        assert any("S8×S8" in n for n in rt.notes)
    with load(flavours / "model.int8.cpu.onnx") as rt:
        assert rt.notes == []
