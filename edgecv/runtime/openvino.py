"""OpenVINO backend: ``CPU`` by default, ``GPU``/``NPU``/``AUTO`` by ``device``, the LATENCY
performance hint, an optional compiled-model cache.

OpenVINO chooses the float precision at compile time: on CPUs with AMX or AVX512-BF16 it computes in
bf16 unless told otherwise. ``precision="f32"`` sets INFERENCE_PRECISION_HINT; either way
``runtime.precision`` is read back from the compiled model, so a report says what ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from edgecv.errors import ArtifactError, BackendUnavailableError, InvalidOptionError
from edgecv.sysinfo import normalize_ov_precision

from .base import Runtime, TensorInfo, first_line, require_file

_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
_core: ov.Core | None = None


def core() -> ov.Core:
    """One Core per process: it holds the loaded device plugins."""
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def port_name(port: Any) -> str:
    """The graph's own name of a port. A compiled model's port can carry several names (the ONNX
    output ``num_dets`` and the internal ``/postprocess/ReduceSum_output_0`` it aliases) and
    ``get_any_name`` may return either; the declared output name is the one users and the
    manifest know."""
    names = sorted(port.get_names())
    public = [n for n in names if not n.startswith("/")]
    return (public or names or [port.get_any_name()])[0]


def _tensor_info(port: Any) -> TensorInfo:
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return TensorInfo(port_name(port), shape, np.dtype(port.get_element_type().to_dtype()))


def _property(compiled: Any, name: str) -> Any:
    if name not in compiled.get_property("SUPPORTED_PROPERTIES"):
        return None
    return compiled.get_property(name)


class OpenVinoRuntime(Runtime):
    """``performance_hint``: ``LATENCY`` (default) or ``THROUGHPUT``; ``cache_dir``: where OpenVINO
    keeps compiled blobs (a second load then skips compilation); ``config``: any other properties."""

    backend = "openvino"
    options = frozenset({"cache_dir", "performance_hint", "config"})

    def _load_impl(
        self,
        source: Any,
        precision: str | None,
        cache_dir: str | Path | None = None,
        performance_hint: str = "LATENCY",
        config: dict[str, Any] | None = None,
    ) -> None:
        # OpenVINO also reads ONNX directly: load(path.onnx, backend="openvino").
        path = require_file(source, (".xml", ".onnx"))
        if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
            raise ArtifactError(f"{path} has no weights file {path.with_suffix('.bin').name} next to it")
        self.path, self.name = path, path.name
        device = (self.device or "CPU").upper()
        self._check_device(device)
        if precision == "int8":
            raise InvalidOptionError("int8 is not a compute precision hint; load an INT8 IR instead")
        properties: dict[str, Any] = {"PERFORMANCE_HINT": performance_hint.upper()}
        if precision is not None:
            properties["INFERENCE_PRECISION_HINT"] = _OV_PRECISION[precision]
        if self.threads is not None:
            properties["INFERENCE_NUM_THREADS"] = self.threads
        if cache_dir is not None:
            properties["CACHE_DIR"] = str(cache_dir)
        properties.update(config or {})
        try:
            model = core().read_model(str(path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with C++ messages
            raise ArtifactError(f"OpenVINO cannot read {path}: {first_line(exc)}") from None
        try:
            self._compiled = core().compile_model(model, device, properties)
        except Exception as exc:
            raise InvalidOptionError(
                f"OpenVINO cannot compile {path.name} for {device} with {properties}: {first_line(exc)}"
            ) from None
        executed_on = _property(self._compiled, "EXECUTION_DEVICES")
        self.device = ",".join(executed_on) if executed_on else device
        self.float_precision = normalize_ov_precision(_property(self._compiled, "INFERENCE_PRECISION_HINT"))
        quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        # An INT8 IR computes its quantized layers in int8 and the rest in float_precision.
        self.precision = "int8" if quantized else self.float_precision
        self.threads = _property(self._compiled, "INFERENCE_NUM_THREADS") or self.threads
        self.inputs = [_tensor_info(p) for p in self._compiled.inputs]
        self.outputs = [_tensor_info(p) for p in self._compiled.outputs]
        self._request = self._compiled.create_infer_request()
        self._bound: list[np.ndarray | None] = [None] * len(self.inputs)

    def max_concurrency(self) -> int:
        """OpenVINO's own answer: as many requests as the compiled model has streams to fill."""
        return int(_property(self._compiled, "OPTIMAL_NUMBER_OF_INFER_REQUESTS") or 1)

    def run_concurrently(
        self, feed: dict[str, np.ndarray], requests: int, calls: int | None = None, duration_s: float | None = None
    ) -> tuple[int, float]:
        """OpenVINO's asynchronous API, as benchmark_app uses it: an AsyncInferQueue of ``requests``
        infer requests, each started again as soon as it is free."""
        import time

        if calls is None and duration_s is None:
            raise InvalidOptionError("run_concurrently needs calls or duration_s")
        queue = ov.AsyncInferQueue(self._compiled, max(1, requests))
        inputs = {i: feed[info.name] for i, info in enumerate(self.inputs)}
        start = time.perf_counter()
        deadline = None if duration_s is None else start + duration_s
        sent = 0
        while (calls is None or sent < calls) and (deadline is None or time.perf_counter() < deadline):
            queue.start_async(inputs)  # waits for a free request when all are busy
            sent += 1
        queue.wait_all()
        return sent, time.perf_counter() - start

    @staticmethod
    def _check_device(device: str) -> None:
        available = core().available_devices
        base = device.split(":")[0].split(".")[0]
        if base in _VIRTUAL_DEVICES or device in available or any(d.split(".")[0] == base for d in available):
            return
        raise BackendUnavailableError(
            f"openvino on {device}", None, f"OpenVINO sees no {device} device here (available: {', '.join(available)})"
        )

    def files(self) -> list[Path]:
        if self.path is None or self.path.suffix.lower() != ".xml":
            return super().files()
        return [self.path, self.path.with_suffix(".bin")]

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self._request
        for i, info in enumerate(self.inputs):
            array = feed[info.name]
            # Wrapping an array costs more Python time than a small model's inference; an array
            # already bound (the benchmark loop's) is read in place, in-place edits included.
            if self._bound[i] is not array:
                request.set_input_tensor(i, ov.Tensor(array, shared_memory=True))
                self._bound[i] = array
        request.infer()
        # Copies: the request overwrites its output buffers on the next call.
        return {info.name: request.get_output_tensor(i).data.copy() for i, info in enumerate(self.outputs)}

    def _close_impl(self) -> None:
        self._bound = []
        del self._request
        del self._compiled
