"""The CPU-dependent INT8 settings: which graphs need ONNX Runtime's S8×S8 kernels on CPUs without
VNNI, NNCF's overflow fix, and that with them the TensorRT flavour runs as its graph says."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from edgecv.calibration import int8_kernels, quantize_run
from edgecv.calibration.fidelity import collect
from edgecv.calibration.int8_kernels import has_signed_activations, nncf_overflow_fix, onnxruntime_int8_config
from edgecv.calibration.runners import ort_runner

from .test_quantize_run import _run_dir


@pytest.fixture(scope="module")
def flavours(tiny_onnx, tiny_calib, tmp_path_factory):
    run = _run_dir(tmp_path_factory.mktemp("kernels"), tiny_onnx)
    quantize_run(run / "model.onnx", run, tiny_calib)
    return run


@pytest.fixture
def without_vnni(monkeypatch):
    monkeypatch.setattr(int8_kernels, "cpu_has_vnni", lambda: False)


@pytest.fixture
def with_vnni(monkeypatch):
    monkeypatch.setattr(int8_kernels, "cpu_has_vnni", lambda: True)


def test_signed_activations_are_told_apart(flavours, tiny_onnx):
    assert has_signed_activations(flavours / "model.int8.onnx")  # TensorRT flavour: S8 activations
    assert not has_signed_activations(flavours / "model.int8.cpu.onnx")  # U8 activations
    assert not has_signed_activations(tiny_onnx)  # no Q/DQ at all
    assert has_signed_activations((flavours / "model.int8.onnx").read_bytes())


def test_onnxruntime_config_follows_the_cpu(flavours, without_vnni):
    assert onnxruntime_int8_config(flavours / "model.int8.onnx") == {"session.qdqisint8allowed": "1"}
    assert onnxruntime_int8_config(flavours / "model.int8.cpu.onnx") == {}
    assert nncf_overflow_fix() == "enable"


def test_vnni_cpus_need_nothing(flavours, with_vnni):
    assert onnxruntime_int8_config(flavours / "model.int8.onnx") == {}
    assert nncf_overflow_fix() == "first_layer_only"


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
