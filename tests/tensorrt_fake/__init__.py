"""A fake ``tensorrt`` (10.x or 11.x) and a fake ``cuda`` (cuda-python's runtime bindings).

Neither TensorRT's builder nor a GPU exists on the machines the tests run on, so the builder and
runtime code meet these instead. The fakes follow the public API of the real packages closely enough
that code written against them runs on the real ones, and they are strict where the real ones are:

* every call is recorded (``fake.calls``) and its arguments' types are checked (a ``TypeError`` like
  pybind11's for a wrong one), so a test can assert exactly what the builder asked TensorRT for;
* the enums hold the members each major has (read from TensorRT's Python bindings source,
  ``python/src/infer/pyCore.cpp`` at v10.3.0 and at 11.1): ``BuilderFlag.FP16``/``INT8``/``BF16``/
  ``FP8``/``INT4`` and the precision-constraint flags do not exist on 11, so reaching for one raises
  ``AttributeError`` as it does there; ``IBuilderConfig.int8_calibrator`` is gone on 11 too;
* ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is bit 1 on 10.x (opt-in) and bit 0 on 11, where
  it is deprecated and ignored (``NvInfer.h`` 11: "Strongly typed mode is always enabled"); passing
  it on 11 emits a ``DeprecationWarning`` here;
* the parser refuses the operators the preflight's table (:mod:`edgecv.tensorrt.operators`) says
  this version does not import;
* a strongly typed network refuses the weak-typing precision flags at build time (TensorRT's
  developer guide, "Strong Typing"), a network with dynamic inputs and no optimization profile
  fails to build, and a plan deserializes only under the TensorRT version and GPU that built it.

Install with :func:`install` (monkeypatch) or, in a subprocess, by putting ``tests/tensorrt_fake/site``
on ``PYTHONPATH`` with ``EDGECV_FAKE_TRT=<version>`` set (see ``site/sitecustomize.py``).
"""

from __future__ import annotations

import ctypes
import enum
import json
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgecv.tensorrt.operators import unsupported_ops

PLAN_MAGIC = b"FAKETRT\x00"

# The fake GPU: what cuda-python's cudaGetDeviceProperties answers.
DEFAULT_GPU = {"name": "NVIDIA Fake GPU", "major": 8, "minor": 7, "count": 1, "dla_cores": 0}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def find(self, name: str) -> list[tuple]:
        return [c[1] for c in self.calls if c[0] == name]


def _check(value: Any, types_: type | tuple[type, ...], what: str) -> None:
    # pybind11 rejects a wrong argument type with TypeError ("incompatible function arguments").
    if isinstance(value, bool) and bool not in (types_ if isinstance(types_, tuple) else (types_,)):
        raise TypeError(f"{what}: incompatible function arguments (got bool)")
    if not isinstance(value, types_):
        raise TypeError(f"{what}: incompatible function arguments (got {type(value).__name__})")


def _shape(value: Any, what: str) -> tuple[int, ...]:
    _check(value, (tuple, list), what)
    for d in value:
        _check(d, (int, np.integer), what)
    return tuple(int(d) for d in value)


def make_tensorrt(version: str = "10.3.0", gpu: dict[str, Any] | None = None, record: Recorder | None = None):
    """A fresh fake ``tensorrt`` module of ``version`` (10.x or 11.x) on the fake ``gpu``."""
    major = int(version.split(".")[0])
    if major not in (10, 11):
        raise ValueError("the fake covers TensorRT 10.x and 11.x")
    gpu = {**DEFAULT_GPU, **(gpu or {})}
    rec = record or Recorder()
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.__file__ = __file__
    trt._fake = types.SimpleNamespace(calls=rec, major=major, gpu=gpu, version=version)

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3
        BOOL = 4
        UINT8 = 5
        INT64 = 8
        BF16 = 7

    trt.DataType = DataType
    trt.float32, trt.float16, trt.int8, trt.int32, trt.bool, trt.uint8, trt.int64, trt.bfloat16 = (
        DataType.FLOAT,
        DataType.HALF,
        DataType.INT8,
        DataType.INT32,
        DataType.BOOL,
        DataType.UINT8,
        DataType.INT64,
        DataType.BF16,
    )
    _np = {
        DataType.FLOAT: np.float32,
        DataType.HALF: np.float16,
        DataType.INT8: np.int8,
        DataType.INT32: np.int32,
        DataType.BOOL: np.bool_,
        DataType.UINT8: np.uint8,
        DataType.INT64: np.int64,
    }

    def nptype(dt):
        _check(dt, DataType, "nptype()")
        return _np[dt]

    trt.nptype = nptype

    # Members per major, from pyCore.cpp of each release (see the module doc).
    common_flags = [
        "DEBUG",
        "GPU_FALLBACK",
        "REFIT",
        "DISABLE_TIMING_CACHE",
        "TF32",
        "SPARSE_WEIGHTS",
        "SAFETY_SCOPE",
        "DIRECT_IO",
        "VERSION_COMPATIBLE",
        "EXCLUDE_LEAN_RUNTIME",
        "ERROR_ON_TIMING_CACHE_MISS",
        "DISABLE_COMPILATION_CACHE",
        "STRIP_PLAN",
        "REFIT_IDENTICAL",
        "WEIGHT_STREAMING",
        "REFIT_INDIVIDUAL",
    ]
    weak_typing_flags = [
        "FP16",
        "BF16",
        "INT8",
        "FP8",
        "INT4",
        "OBEY_PRECISION_CONSTRAINTS",
        "PREFER_PRECISION_CONSTRAINTS",
        "REJECT_EMPTY_ALGORITHMS",
        "WEIGHTLESS",
    ]
    flags = (
        (weak_typing_flags + common_flags)
        if major == 10
        else (common_flags + ["EDITABLE_TIMING_CACHE", "STRICT_NANS", "MONITOR_MEMORY"])
    )
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", {name: i for i, name in enumerate(flags)})
    if major == 10:
        trt.NetworkDefinitionCreationFlag = enum.IntEnum(
            "NetworkDefinitionCreationFlag",
            {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2, "PREFER_AOT_PYTHON_PLUGINS": 3},
        )
    else:
        trt.NetworkDefinitionCreationFlag = enum.IntEnum(
            "NetworkDefinitionCreationFlag",
            {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2},
        )
    trt.MemoryPoolType = enum.IntEnum(
        "MemoryPoolType",
        {
            "WORKSPACE": 0,
            "DLA_MANAGED_SRAM": 1,
            "DLA_LOCAL_DRAM": 2,
            "DLA_GLOBAL_DRAM": 3,
            "TACTIC_DRAM": 4,
            "TACTIC_SHARED_MEMORY": 5,
        },
    )
    trt.DeviceType = enum.IntEnum("DeviceType", {"GPU": 0, "DLA": 1})
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})

    class Logger:
        class Severity(enum.IntEnum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = Severity

        def __init__(self, min_severity=Severity.WARNING):
            _check(min_severity, Logger.Severity, "Logger()")
            self.min_severity = min_severity
            self.messages: list[str] = []

        def log(self, severity, msg):
            self.messages.append(msg)
            rec("log", int(severity), msg)

    trt.Logger = Logger
    trt.ILogger = Logger

    def _logger(obj):
        _check(obj, Logger, "logger")
        return obj

    class ITensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, tuple(shape), dtype

    class INetworkDefinition:
        def __init__(self, flags):
            self.flags = flags
            self.inputs: list[ITensor] = []
            self.outputs: list[ITensor] = []
            self.source: str | None = None
            self.source_sha = None

        @property
        def strongly_typed(self):
            if major == 11:  # always, per NvInfer.h 11
                return True
            return bool(self.flags & (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))

        @property
        def num_inputs(self):
            return len(self.inputs)

        @property
        def num_outputs(self):
            return len(self.outputs)

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class OnnxParser:
        # What this version's parser refuses: the preflight's operator table, so the fake and the
        # preflight cannot disagree (the contract suite holds the real parser to the same list).
        UNSUPPORTED = unsupported_ops(version)

        def __init__(self, network, logger):
            _check(network, INetworkDefinition, "OnnxParser()")
            _logger(logger)
            self.network = network
            self.errors: list[str] = []
            rec("OnnxParser", network)

        def parse_from_file(self, path):
            _check(path, str, "OnnxParser.parse_from_file()")
            rec("parse_from_file", path)
            import onnx

            model = onnx.load(path, load_external_data=False)
            self.network.source = path
            for node in model.graph.node:
                if node.domain in ("", "ai.onnx") and node.op_type in self.UNSUPPORTED:
                    self.errors.append(
                        f"In node {node.name} (importFallbackPluginImporter): UNSUPPORTED_NODE: "
                        f"Could not find a plugin for {node.op_type}"
                    )
            if self.errors:
                return False
            init = {t.name for t in model.graph.initializer}
            onnx_to_trt = {
                1: DataType.FLOAT,
                10: DataType.HALF,
                3: DataType.INT8,
                6: DataType.INT32,
                7: DataType.INT64,
                9: DataType.BOOL,
                2: DataType.UINT8,
            }

            def dims(vi):
                return [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]

            for vi in model.graph.input:
                if vi.name not in init:
                    self.network.inputs.append(ITensor(vi.name, dims(vi), onnx_to_trt[vi.type.tensor_type.elem_type]))
            for vi in model.graph.output:
                self.network.outputs.append(ITensor(vi.name, dims(vi), onnx_to_trt[vi.type.tensor_type.elem_type]))
            self.network.has_qdq = any(n.op_type == "QuantizeLinear" for n in model.graph.node)
            self.network.has_fp16 = any(t.data_type == 10 for t in model.graph.initializer)
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    trt.OnnxParser = OnnxParser

    class IOptimizationProfile:
        def __init__(self):
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, input, min, opt, max):  # noqa: A002 - TensorRT's keyword names
            _check(input, str, "IOptimizationProfile.set_shape()")
            lo, mid, hi = (_shape(s, "IOptimizationProfile.set_shape()") for s in (min, opt, max))
            if not all(a <= b <= c for a, b, c in zip(lo, mid, hi)):
                raise ValueError("set_shape: min <= opt <= max violated")
            rec("set_shape", input, lo, mid, hi)
            self.shapes[input] = (lo, mid, hi)

        def get_shape(self, input):  # noqa: A002
            return self.shapes[input]

    class ITimingCache:
        def __init__(self, blob: bytes):
            try:
                self.entries = json.loads(blob.decode()) if blob else {}
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.entries = {}
            self.loaded = len(self.entries)

        def serialize(self):
            return IHostMemory(json.dumps(self.entries).encode())

    class IHostMemory(bytes):
        @property
        def nbytes(self):
            return len(self)

    class IBuilderConfig:
        # __slots__: assigning an attribute the real class lacks fails, as on a pybind11 class.
        __slots__ = ("pools", "flags", "profiles", "timing_cache", "_dla_core", "_device_type")

        def __init__(self):
            self.pools, self.flags, self.profiles = {}, set(), []
            self.timing_cache = None
            self._dla_core, self._device_type = -1, trt.DeviceType.GPU

        def set_memory_pool_limit(self, pool, pool_size):
            _check(pool, trt.MemoryPoolType, "set_memory_pool_limit()")
            _check(pool_size, int, "set_memory_pool_limit()")
            rec("set_memory_pool_limit", pool, pool_size)
            self.pools[pool] = pool_size

        def set_flag(self, flag):
            _check(flag, trt.BuilderFlag, "set_flag()")
            rec("set_flag", flag.name)
            self.flags.add(flag.name)

        def clear_flag(self, flag):
            _check(flag, trt.BuilderFlag, "clear_flag()")
            self.flags.discard(flag.name)

        def get_flag(self, flag):
            _check(flag, trt.BuilderFlag, "get_flag()")
            return flag.name in self.flags

        def add_optimization_profile(self, profile):
            _check(profile, IOptimizationProfile, "add_optimization_profile()")
            self.profiles.append(profile)
            rec("add_optimization_profile", dict(profile.shapes))
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):
            _check(serialized_timing_cache, (bytes, bytearray, memoryview), "create_timing_cache()")
            rec("create_timing_cache", len(serialized_timing_cache))
            return ITimingCache(bytes(serialized_timing_cache))

        def set_timing_cache(self, cache, ignore_mismatch):
            _check(cache, ITimingCache, "set_timing_cache()")
            _check(ignore_mismatch, bool, "set_timing_cache()")
            rec("set_timing_cache", cache.loaded, ignore_mismatch)
            self.timing_cache = cache
            return True

        def get_timing_cache(self):
            return self.timing_cache

        @property
        def DLA_core(self):  # noqa: N802 - TensorRT's name
            return self._dla_core

        @DLA_core.setter
        def DLA_core(self, value):  # noqa: N802
            _check(value, int, "DLA_core")
            rec("DLA_core", value)
            self._dla_core = value

        @property
        def default_device_type(self):
            return self._device_type

        @default_device_type.setter
        def default_device_type(self, value):
            _check(value, trt.DeviceType, "default_device_type")
            rec("default_device_type", value.name)
            self._device_type = value

    if major == 10:

        class IBuilderConfig10(IBuilderConfig):
            __slots__ = ("_calibrator",)

            def __init__(self):
                super().__init__()
                self._calibrator = None

            @property
            def int8_calibrator(self):
                return self._calibrator

            @int8_calibrator.setter
            def int8_calibrator(self, value):
                # Deprecated in 10.1 (explicit Q/DQ replaces implicit calibration), removed in 11.
                warnings.warn("IInt8Calibrator is deprecated", DeprecationWarning, stacklevel=2)
                rec("int8_calibrator", value)
                self._calibrator = value

        config_class = IBuilderConfig10
    else:
        config_class = IBuilderConfig
    trt.IBuilderConfig = config_class

    def _plan(network, config) -> bytes:
        header = {
            "version": version,
            "gpu": gpu["name"],
            "cc": f"{gpu['major']}.{gpu['minor']}",
            "strongly_typed": network.strongly_typed,
            "flags": sorted(config.flags),
            "inputs": [[t.name, list(t.shape), int(t.dtype)] for t in network.inputs],
            "outputs": [[t.name, list(t.shape), int(t.dtype)] for t in network.outputs],
            "profiles": [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in config.profiles],
            "device": config.default_device_type.name,
            "dla_core": config.DLA_core,
            "source": network.source,
        }
        return PLAN_MAGIC + json.dumps(header).encode()

    class Builder:
        def __init__(self, logger):
            self.logger = _logger(logger)
            rec("Builder", version)

        @property
        def num_DLA_cores(self):  # noqa: N802
            return gpu["dla_cores"]

        def create_network(self, flags=0):
            _check(flags, int, "create_network()")
            if major == 11 and flags & (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)):
                warnings.warn(
                    "NetworkDefinitionCreationFlag.STRONGLY_TYPED is deprecated in TensorRT 11 "
                    "(strongly typed is always on)",
                    DeprecationWarning,
                    stacklevel=2,
                )
            rec("create_network", flags)
            return INetworkDefinition(flags)

        def create_builder_config(self):
            rec("create_builder_config")
            return config_class()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            _check(network, INetworkDefinition, "build_serialized_network()")
            _check(config, IBuilderConfig, "build_serialized_network()")
            rec("build_serialized_network", network.strongly_typed, sorted(config.flags))
            precision_flags = {"FP16", "INT8", "BF16", "FP8", "INT4"} & config.flags
            if network.strongly_typed and precision_flags:
                # TensorRT's developer guide (Strong Typing): precision flags are not allowed.
                self.logger.log(
                    Logger.ERROR, f"precision flags {sorted(precision_flags)} set on a strongly typed network"
                )
                return None
            if any(-1 in t.shape for t in network.inputs) and not config.profiles:
                self.logger.log(
                    Logger.ERROR, "Network has dynamic or shape inputs, but no optimization profile has been defined."
                )
                return None
            if config.default_device_type == trt.DeviceType.DLA and not (0 <= config.DLA_core < gpu["dla_cores"]):
                self.logger.log(
                    Logger.ERROR, f"DLA core {config.DLA_core} asked for; this device has {gpu['dla_cores']}"
                )
                return None
            if config.timing_cache is not None:
                config.timing_cache.entries[network.source or "network"] = len(config.timing_cache.entries) + 1
            return IHostMemory(_plan(network, config))

    trt.Builder = Builder

    class ICudaEngine:
        def __init__(self, header):
            self.header = header
            self.tensors = [(n, s, DataType(d), trt.TensorIOMode.INPUT) for n, s, d in header["inputs"]]
            self.tensors += [(n, s, DataType(d), trt.TensorIOMode.OUTPUT) for n, s, d in header["outputs"]]

        @property
        def num_io_tensors(self):
            return len(self.tensors)

        def _find(self, name):
            _check(name, str, "ICudaEngine")
            return next(t for t in self.tensors if t[0] == name)

        def get_tensor_name(self, i):
            _check(i, int, "get_tensor_name()")
            return self.tensors[i][0]

        def get_tensor_mode(self, name):
            return self._find(name)[3]

        def get_tensor_shape(self, name):
            return tuple(self._find(name)[1])

        def get_tensor_dtype(self, name):
            return self._find(name)[2]

        def get_tensor_profile_shape(self, name, profile_index):
            _check(profile_index, int, "get_tensor_profile_shape()")
            return [tuple(s) for s in self.header["profiles"][profile_index][name]]

        def create_execution_context(self):
            return IExecutionContext(self)

    class IExecutionContext:
        def __init__(self, engine):
            self.engine = engine
            self.shapes = {t[0]: list(t[1]) for t in engine.tensors}
            self.addresses: dict[str, int] = {}

        def set_input_shape(self, name, shape):
            _check(name, str, "set_input_shape()")
            shape = _shape(shape, "set_input_shape()")
            self.shapes[name] = list(shape)
            batch = shape[0]
            for n, s, _, mode in self.engine.tensors:
                if mode == trt.TensorIOMode.OUTPUT and s and s[0] == -1:
                    self.shapes[n] = [batch, *s[1:]]
            return True

        def get_tensor_shape(self, name):
            return tuple(self.shapes[name])

        def set_tensor_address(self, name, memory):
            _check(name, str, "set_tensor_address()")
            _check(memory, int, "set_tensor_address()")
            self.addresses[name] = memory
            return True

        def _view(self, name, dtype):
            count = int(np.prod(self.shapes[name]))
            raw = (ctypes.c_char * (count * np.dtype(_np[dtype]).itemsize)).from_address(self.addresses[name])
            return np.frombuffer(raw, dtype=_np[dtype]).reshape(self.shapes[name])

        def _session(self):
            # The ONNX the plan was built from, run by ONNX Runtime where it can be imported (so export
            # verification means something); where it cannot (a "board" test), a stand-in network.
            source = self.engine.header.get("source")
            if not source or not Path(source).is_file():
                return None
            try:
                import onnxruntime as ort
            except ImportError:
                return None
            if not hasattr(self, "_ort"):
                options = ort.SessionOptions()
                options.log_severity_level = 3
                self._ort = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
            return self._ort

        def execute_async_v3(self, stream_handle):
            _check(stream_handle, int, "execute_async_v3()")
            rec("execute_async_v3")
            inputs = {
                n: self._view(n, dt).copy() for n, _, dt, mode in self.engine.tensors if mode == trt.TensorIOMode.INPUT
            }
            outputs = [(n, dt) for n, _, dt, mode in self.engine.tensors if mode == trt.TensorIOMode.OUTPUT]
            session = self._session()
            if session is not None:
                results = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
                for n, dt in outputs:
                    self._view(n, dt)[...] = results[n]
                return True
            # The stand-in network: every output element is the mean of the first input.
            first = next(iter(inputs.values()))
            value = float(first.mean()) if first.size else 0.0
            for n, dt in outputs:
                self._view(n, dt)[...] = value
            return True

    class Runtime:
        def __init__(self, logger):
            self.logger = _logger(logger)

        def deserialize_cuda_engine(self, serialized_engine):
            _check(serialized_engine, (bytes, bytearray, memoryview), "deserialize_cuda_engine()")
            blob = bytes(serialized_engine)
            rec("deserialize_cuda_engine", len(blob))
            if not blob.startswith(PLAN_MAGIC):
                self.logger.log(Logger.ERROR, "Magic tag does not match")
                return None
            header = json.loads(blob[len(PLAN_MAGIC) :].decode())
            if header["version"] != version:
                self.logger.log(Logger.ERROR, "The engine plan file is not compatible with this version of TensorRT")
                return None
            if header["cc"] != f"{gpu['major']}.{gpu['minor']}":
                self.logger.log(Logger.ERROR, "The engine plan file is generated on an incompatible device")
                return None
            return ICudaEngine(header)

    trt.Runtime = Runtime
    return trt


def make_cuda(gpu: dict[str, Any] | None = None, record: Recorder | None = None):
    """A fake ``cuda`` package with ``cuda.bindings.runtime`` (cuda-python ≥ 12.6) backed by host memory."""
    gpu = {**DEFAULT_GPU, **(gpu or {})}
    rec = record or Recorder()
    cudart = types.ModuleType("cuda.bindings.runtime")
    cudart.cudaError_t = enum.IntEnum(
        "cudaError_t", {"cudaSuccess": 0, "cudaErrorNoDevice": 100, "cudaErrorInvalidDevice": 101}
    )
    cudart.cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", {"cudaMemcpyHostToDevice": 1, "cudaMemcpyDeviceToHost": 2})
    ok = cudart.cudaError_t.cudaSuccess
    buffers: dict[int, Any] = {}

    def alloc(nbytes):
        buf = ctypes.create_string_buffer(int(nbytes))
        buffers[ctypes.addressof(buf)] = buf
        return ok, ctypes.addressof(buf)

    def free(ptr):
        buffers.pop(int(ptr), None)
        return (ok,)

    cudart.cudaGetErrorName = lambda err: (ok, cudart.cudaError_t(err).name.encode())
    cudart.cudaGetDeviceCount = lambda: (
        (ok, gpu["count"]) if gpu["count"] else (cudart.cudaError_t.cudaErrorNoDevice, 0)
    )
    cudart.cudaSetDevice = lambda i: (ok,) if i < gpu["count"] else (cudart.cudaError_t.cudaErrorInvalidDevice,)

    def props(index):
        if index >= gpu["count"]:
            return cudart.cudaError_t.cudaErrorInvalidDevice, None
        return ok, types.SimpleNamespace(
            name=gpu["name"].encode(),
            major=gpu["major"],
            minor=gpu["minor"],
            totalGlobalMem=8 << 30,
            multiProcessorCount=16,
        )

    cudart.cudaGetDeviceProperties = props
    cudart.cudaDriverGetVersion = lambda: (ok, 12060)
    cudart.cudaRuntimeGetVersion = lambda: (ok, 12060)
    cudart.cudaMallocHost = alloc
    cudart.cudaMalloc = alloc
    cudart.cudaFree = free
    cudart.cudaFreeHost = free
    cudart.cudaStreamCreate = lambda: (ok, 1)
    cudart.cudaStreamDestroy = lambda s: (ok,)
    cudart.cudaStreamSynchronize = lambda s: (ok,)

    def memcpy(dst, src, count, kind, stream):
        ctypes.memmove(int(dst), int(src), int(count))
        rec("cudaMemcpyAsync", kind.name, int(count))
        return (ok,)

    cudart.cudaMemcpyAsync = memcpy
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []  # a package
    bindings = types.ModuleType("cuda.bindings")
    bindings.__path__ = []
    bindings.runtime = cudart
    cuda.bindings = bindings
    cuda._fake = types.SimpleNamespace(calls=rec, gpu=gpu, buffers=buffers)
    return cuda


def modules(version: str = "10.3.0", gpu: dict[str, Any] | None = None) -> dict[str, types.ModuleType]:
    """``sys.modules`` entries for the fakes (one shared call record)."""
    import importlib.machinery

    rec = Recorder()
    cuda = make_cuda(gpu, rec)
    found = {
        "tensorrt": make_tensorrt(version, gpu, rec),
        "cuda": cuda,
        "cuda.bindings": cuda.bindings,
        "cuda.bindings.runtime": cuda.bindings.runtime,
    }
    for name, module in found.items():
        # importlib.util.find_spec (edgecv's "is it installed?") reads a module's __spec__.
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=__file__, is_package=name != "tensorrt")
    return found


def install(monkeypatch, version: str = "10.3.0", gpu: dict[str, Any] | None = None):
    """Put the fakes in ``sys.modules`` for one test; returns the fake ``tensorrt``.

    Modules that imported the real (absent) ones earlier are dropped so they import the fakes."""
    for name, module in modules(version, gpu).items():
        monkeypatch.setitem(sys.modules, name, module)
    # edgecv.runtime.tensorrt binds ``tensorrt`` at import: drop it now so it imports the fakes, and
    # have monkeypatch remove the copy imported during the test, so later tests never see the fakes.
    monkeypatch.setitem(sys.modules, "edgecv.runtime.tensorrt", None)
    del sys.modules["edgecv.runtime.tensorrt"]
    return sys.modules["tensorrt"]


SITE_DIR = Path(__file__).parent / "site"
