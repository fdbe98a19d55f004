"""The INT8 stage's work: calibration data → Q/DQ ONNX in two flavours (TensorRT, fast CPU) →
OpenVINO INT8 through NNCF → fidelity of every INT8 artifact against FP32 on held-out inputs.

Ranges are computed once by ONNX Runtime's calibrator into a JSON cache in ``calibration/`` that the
second flavour (and any rerun with the same model, data and method) loads instead of recalibrating.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgecv.calibration.data import CalibrationData
from edgecv.calibration.fidelity import compare as compare_fidelity
from edgecv.calibration.quantize_onnx import CPU, TENSORRT, Flavour, cpu_has_vnni, prepare_for_quantization
from edgecv.errors import StageError

from .runfolder import atomic_path, sha256_file, sha256_json

# ORT's calibrator keeps every intermediate output of every input unless told to flush: bound it.
MAX_INTERMEDIATE_OUTPUTS = 32


class _Reader:
    """ONNX Runtime CalibrationDataReader over the calibration set, preprocessing lazily."""

    def __init__(self, data: CalibrationData, input_name: str, batch: int, progress: Callable | None):
        self.data, self.input_name, self.batch, self.progress = data, input_name, batch, progress
        self._it: Iterator[np.ndarray] | None = None
        self._seen = 0

    def get_next(self):
        if self._it is None:
            self._it = iter(self.data.calibration.batches(self.batch))
        batch = next(self._it, None)
        if batch is None:
            return None
        self._seen += len(batch)
        if self.progress:
            self.progress("calibrating", self._seen, len(self.data.calibration))
        return {self.input_name: batch}

    def rewind(self):
        self._it, self._seen = None, 0


def _calibration_batch(onnx_path: Path) -> int:
    from edgecv.calibration.runners import fixed_batch

    return fixed_batch(onnx_path) or 1


def quantize_flavour(
    prepared: Path, out: Path, flavour: Flavour, reader: _Reader | None, cache: Path, method: str,
    exclude: tuple[str, ...],
) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    # Without VNNI, ORT's U8S8 kernels can overflow int16 accumulators: 7-bit weights avoid that.
    reduce_range = flavour.name == "cpu" and not cpu_has_vnni()
    extra = {**flavour.extra_options, "CalibMaxIntermediateOutputs": MAX_INTERMEDIATE_OUTPUTS}
    quantize_static(
        str(prepared), str(out), calibration_data_reader=reader, calibration_cache_path=str(cache),
        quant_format=flavour.quant_format, per_channel=True, reduce_range=reduce_range,
        activation_type=flavour.activation_type, weight_type=flavour.weight_type,
        nodes_to_exclude=list(exclude), calibrate_method=methods[method], extra_options=extra,
    )
    return {**flavour.to_dict(), "reduce_range": reduce_range, "excluded": list(exclude)}


def quantize_openvino(xml: Path, out_xml: Path, data: CalibrationData, exclude: tuple[str, ...]) -> dict[str, Any]:
    """NNCF PTQ of the OpenVINO FP32 model: the OpenVINO INT8 path (NNCF's ONNX output has UINT8
    activations, which TensorRT rejects, so NNCF is not used for model.int8.onnx)."""
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    batch = model.inputs[0].get_partial_shape()[0]
    n = batch.get_length() if batch.is_static else 1
    dataset = nncf.Dataset(list(data.calibration.batches(n)))
    kwargs: dict[str, Any] = {"subset_size": len(data.calibration) // n or 1}
    if exclude:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(exclude), validate=False)
    quantized = nncf.quantize(model, dataset, **kwargs)
    ov.save_model(quantized, str(out_xml), compress_to_fp16=False)
    return {"nncf": nncf.__version__, "subset_size": kwargs["subset_size"], "excluded": list(exclude)}


def _tensorrt_violations(path: Path) -> list[str]:
    """The TensorRT Q/DQ rule checker, where the calibration package provides one."""
    try:
        from edgecv.calibration.tensorrt_rules import check_tensorrt_qdq
    except ImportError:
        return []
    return [str(v) for v in check_tensorrt_qdq(str(path))]


def run_int8(
    run_dir: Path, onnx_path: Path, data: CalibrationData, *, method: str, exclude: tuple[str, ...],
    openvino_xml: Path | None, progress: Callable | None = None,
) -> dict[str, Any]:
    """Write the INT8 artifacts into ``run_dir``; returns the stage's info for the manifest."""
    from edgecv.calibration.fidelity import collect
    from edgecv.calibration.runners import openvino_runner, ort_runner

    calib_dir = run_dir / "calibration"
    calib_dir.mkdir(exist_ok=True)
    batch = _calibration_batch(onnx_path)
    timings: dict[str, float] = {}
    info: dict[str, Any] = {"method": method, "calibration": data.report.to_dict(), "flavours": {}}
    key = sha256_json({"model": sha256_file(onnx_path), "data": data.fingerprint, "method": method,
                       "exclude": list(exclude)})[:16]
    cache = calib_dir / f"ranges-{method}-{key}.json"
    info["ranges_cache"] = {"path": cache.relative_to(run_dir).as_posix(), "reused": cache.is_file()}
    with tempfile.TemporaryDirectory(prefix="edgecv-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        start = time.perf_counter()
        # Simplified graph + ORT's pre-processing first: on the raw export, unfused Clip/ReLU6
        # patterns keep Q/DQ pairs ORT cannot fold (measured slower than FP32).
        prepare_for_quantization(onnx_path, prepared)
        timings["pre_process"] = time.perf_counter() - start
        reader = None if cache.is_file() else _Reader(data, prepared_input(prepared), batch, progress)
        for flavour in (TENSORRT, CPU):
            start = time.perf_counter()
            with atomic_path(run_dir / flavour.filename) as out:
                info["flavours"][flavour.name] = quantize_flavour(
                    prepared, out, flavour, reader if not cache.is_file() else None, cache, method, exclude
                )
                if flavour is TENSORRT:
                    problems = _tensorrt_violations(out)
                    if problems:
                        raise StageError("int8", "the TensorRT-flavour Q/DQ graph breaks TensorRT's rules: "
                                         + "; ".join(problems[:5]))
            timings[f"quantize_{flavour.name}"] = time.perf_counter() - start
    artifacts = {TENSORRT.artifact: run_dir / TENSORRT.filename, CPU.artifact: run_dir / CPU.filename}
    if openvino_xml is not None:
        start = time.perf_counter()
        final = run_dir / "openvino" / "model.int8.xml"
        with atomic_path(final, companions=(".bin",)) as out:
            info["openvino"] = quantize_openvino(openvino_xml, out, data, exclude)
        timings["nncf_openvino"] = time.perf_counter() - start
        artifacts["openvino-int8"] = final

    start = time.perf_counter()
    holdout = list(data.holdout.batches(batch))
    reference = collect(ort_runner(onnx_path), holdout)
    fidelity = {}
    for name, path in artifacts.items():
        run = openvino_runner(path) if path.suffix == ".xml" else ort_runner(path)
        report = compare_fidelity(reference, collect(run, holdout), artifact=name,
                                  in_sample=data.report.holdout_in_sample)
        fidelity[name] = report.to_dict()
    timings["fidelity"] = time.perf_counter() - start
    info["fidelity"] = fidelity
    info["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    info["warnings"] = list(data.report.warnings)
    from .runfolder import write_json_atomic

    write_json_atomic(calib_dir / "report.json", {
        "method": method, "calibration": data.report.to_dict(), "fidelity": fidelity,
        "flavours": info["flavours"], "timings_s": info["timings_s"],
    })
    return info


def prepared_input(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return next(i.name for i in graph.input if i.name not in inits)
