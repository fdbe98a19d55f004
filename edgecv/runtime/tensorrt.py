"""TensorRT backend: runs a serialized engine (``.engine``/``.plan``) on an NVIDIA GPU.

Uses TensorRT 10's name-based I/O API (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``), one CUDA stream, pinned host buffers and device buffers from cuda-python,
all allocated once at load for the largest shapes the engine's optimization profile allows, so a
call only copies in, enqueues and copies out. Engines only run on the GPU model and TensorRT
version that built them [TRT docs]; the ``.json`` sidecar the export writes names both, and a plan
whose sidecar names another TensorRT release or GPU is refused before TensorRT is asked to load it.

Imports only TensorRT, cuda-python and numpy: a Jetson board that benchmarks engines needs neither
PyTorch, ONNX Runtime nor OpenVINO (a test runs this module with those blocked).
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from edgecv.errors import ArtifactError, BackendUnavailableError, InvalidOptionError, StageError
from edgecv.tensorrt.installation import cuda_gpu, cuda_runtime_module, plan_mismatch

from .base import Runtime, TensorInfo, require_file

# cuda-python ≥ 12.6 moved the runtime bindings to cuda.bindings.runtime; older ones have cuda.cudart.
cudart = cuda_runtime_module()


def _cuda(result: tuple) -> Any:
    """Unwrap cuda-python's ``(error, value...)`` tuples, raising on an error code."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise StageError("tensorrt", f"CUDA call failed: {name.decode() if isinstance(name, bytes) else name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_device_index(device: str | None) -> int:
    """``None``/``cuda``/``cuda:N``/``N`` → N."""
    if device is None or device in ("cuda", "gpu"):
        return 0
    text = str(device).lower().removeprefix("cuda:").removeprefix("gpu:")
    if not text.isdigit():
        raise InvalidOptionError(f"TensorRT device must be cuda or cuda:N, got {device!r}")
    return int(text)


def read_sidecar(engine_path: Path) -> dict[str, Any]:
    """The export's ``.json`` sidecar next to an engine, or ``{}``."""
    sidecar = engine_path.with_suffix(".json")
    try:
        return json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def dims_to_shape(dims: Any) -> tuple[int | None, ...]:
    """TensorRT marks a dynamic dimension with -1; edgecv with None."""
    return tuple(None if int(d) < 0 else int(d) for d in dims)


class _PinnedBuffer:
    """Page-locked host memory and device memory of the same size, for one I/O tensor."""

    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self.host_ptr = _cuda(cudart.cudaMallocHost(self.nbytes))
        self.device_ptr = _cuda(cudart.cudaMalloc(self.nbytes))
        self.host = np.ctypeslib.as_array((ctypes.c_uint8 * self.nbytes).from_address(int(self.host_ptr)))

    def view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        return self.host[: count * dtype.itemsize].view(dtype).reshape(shape)

    def free(self) -> None:
        cudart.cudaFree(self.device_ptr)
        cudart.cudaFreeHost(self.host_ptr)


class TensorRTRuntime(Runtime):
    """``device``: ``cuda:N`` (default ``cuda:0``). ``threads`` does not apply to a GPU engine."""

    backend = "tensorrt"
    options = frozenset()

    def _load_impl(self, source: Any, precision: str | None) -> None:
        path = require_file(source, (".engine", ".plan"))
        self.path, self.name = path, path.name
        if self.threads is not None:
            raise InvalidOptionError("threads do not apply to a TensorRT engine (it runs on the GPU)")
        index = cuda_device_index(self.device)
        err, count = cudart.cudaGetDeviceCount()
        if err != cudart.cudaError_t.cudaSuccess or count == 0:
            raise BackendUnavailableError("tensorrt", None, "no CUDA device or driver found on this machine")
        if index >= count:
            raise InvalidOptionError(f"cuda:{index} asked for, this machine has {count} CUDA device(s)")
        _cuda(cudart.cudaSetDevice(index))
        self.device = f"cuda:{index}"
        sidecar = read_sidecar(path)
        gpu = cuda_gpu(index)
        mismatch = plan_mismatch(sidecar, trt.__version__, gpu)
        if mismatch:
            # [TRT docs] a plan is tied to the TensorRT release and the GPU that built it; deserializing
            # it elsewhere fails or, across GPUs of one compute capability, runs untuned.
            raise ArtifactError(
                f"{path.name} was {mismatch}: rebuild it on this machine (build_engine.sh or edgecv export)"
            )
        if sidecar.get("gpu") and gpu and sidecar["gpu"] != gpu.get("gpu"):
            self.notes.append(
                f"{path.name} was built on {sidecar['gpu']}, runs on {gpu.get('gpu')}: same compute "
                "capability, but TensorRT tuned it for the other GPU"
            )
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._trt_runtime = trt.Runtime(self._logger)
        self._engine = self._trt_runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            built = (
                (
                    f" (built with TensorRT {sidecar.get('tensorrt')} for {sidecar.get('gpu')}, compute capability "
                    f"{sidecar.get('compute_capability')})"
                )
                if sidecar
                else " (no .json sidecar says what built it)"
            )
            raise ArtifactError(
                f"TensorRT {trt.__version__} could not deserialize {path.name}{built}; "
                "engines only run on the GPU model and TensorRT version that built them"
            )
        self.precision = sidecar.get("precision")
        self._require_fixed_precision(precision)
        self._context = self._engine.create_execution_context()
        self._buffers: dict[str, _PinnedBuffer] = {}
        self._stream = None
        try:
            self._allocate()
        except BaseException:
            self._close_impl()
            raise

    def _allocate(self) -> None:
        engine, context = self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._dynamic_inputs = set()
        for name in names:
            if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                continue
            shape = dims_to_shape(engine.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            low = high = None
            if None in shape:
                low, _, high = (tuple(int(d) for d in dims) for dims in engine.get_tensor_profile_shape(name, 0))
                self._dynamic_inputs.add(name)
                context.set_input_shape(name, high)
            self.inputs.append(TensorInfo(name, shape, dtype, low, high))
        # With every input at its largest shape, the outputs have theirs: size the buffers once.
        for info in self.inputs:
            self._bind(info.name, info.max_shape or info.shape, info.dtype)
        for name in names:
            if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                continue
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            largest = dims_to_shape(context.get_tensor_shape(name))
            if None in largest:
                raise ArtifactError(
                    f"output '{name}' of {self.name} has a data-dependent shape, which edgecv cannot run"
                )
            self.outputs.append(TensorInfo(name, dims_to_shape(engine.get_tensor_shape(name)), dtype))
            self._bind(name, largest, dtype)
        self._stream = _cuda(cudart.cudaStreamCreate())

    def _bind(self, name: str, shape: tuple, dtype: np.dtype) -> None:
        buffer = _PinnedBuffer(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        self._buffers[name] = buffer
        self._context.set_tensor_address(name, int(buffer.device_ptr))

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, array in feed.items():
            if name in self._dynamic_inputs:
                self._context.set_input_shape(name, array.shape)
            buffer = self._buffers[name]
            np.copyto(buffer.view(array.shape, array.dtype), array)
            _cuda(cudart.cudaMemcpyAsync(buffer.device_ptr, buffer.host_ptr, array.nbytes, h2d, self._stream))
        if not self._context.execute_async_v3(int(self._stream)):
            raise StageError("tensorrt", f"TensorRT failed to enqueue {self.name}")
        results = {}
        for info in self.outputs:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(info.name))
            buffer = self._buffers[info.name]
            results[info.name] = buffer.view(shape, info.dtype)
            _cuda(
                cudart.cudaMemcpyAsync(buffer.host_ptr, buffer.device_ptr, results[info.name].nbytes, d2h, self._stream)
            )
        _cuda(cudart.cudaStreamSynchronize(self._stream))
        # Copies: the pinned buffers are overwritten by the next call.
        return {name: array.copy() for name, array in results.items()}

    def _close_impl(self) -> None:
        for buffer in self._buffers.values():
            buffer.free()
        self._buffers = {}
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = None
        self._engine = None
