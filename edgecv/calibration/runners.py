"""Minimal ONNX Runtime and OpenVINO runners for calibration and fidelity figures.

Deliberately smaller than ``edgecv.runtime``'s ``Runtime``: calibration only needs "batch in, named
outputs out" (no devices, timing or batch checks), with OpenVINO pinned to f32 so that an FP32
reference is really FP32 (OpenVINO runs bf16 by default on CPUs with AMX). Outputs are named with
the runtime's own :func:`edgecv.runtime.openvino.port_name`, so fidelity and benchmark figures
name the same tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.int8_kernels import configure_onnxruntime

from .fidelity import RunFn


def ort_session(model: str | Path | bytes, threads: int | None = None):
    """A CPU session of ``model`` (a path, or a serialized graph)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # ORT's warnings about unused initializers are noise here
    configure_onnxruntime(options, model)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def ort_runner(model: str | Path | bytes, threads: int | None = None) -> RunFn:
    session = ort_session(model, threads)
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {input_name: batch})))

    return run


def openvino_runner(xml: str | Path, threads: int | None = None) -> RunFn:
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return compiled_runner(ov.Core().compile_model(str(xml), "CPU", config))


def compiled_runner(compiled) -> RunFn:
    """An OpenVINO compiled model as a runner."""
    from edgecv.runtime.openvino import port_name

    request = compiled.create_infer_request()
    names = [port_name(o) for o in compiled.outputs]

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        result = request.infer({0: batch})
        return {name: np.array(result[out]) for name, out in zip(names, compiled.outputs)}

    return run


def fixed_batch(path: str | Path) -> int:
    """The batch size an ONNX graph's first input demands (1 when the dimension is dynamic)."""
    import onnx

    from edgecv.onnx_graph import first_input

    first = first_input(onnx.load(str(path), load_external_data=False))
    dim = first.type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else 1
