"""ONNX Runtime backend: the CPU execution provider here, CUDA/TensorRT providers where the installed
build has them (``onnxruntime-gpu``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from edgecv.errors import ArtifactError, BackendUnavailableError, InvalidOptionError
from edgecv.int8_kernels import configure_onnxruntime

from .base import Runtime, TensorInfo, first_line, require_file

# ONNX Runtime's type strings for the tensor types a vision model has at its boundary.
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

# Providers per device, best first; ONNX Runtime falls back along the list for unsupported nodes.
_DEVICE_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
_PROVIDER_DEVICES = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "tensorrt",
}

# Operators that make a graph an integer-quantized one (QDQ, or QOperator after ORT's own quantizer).
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}


def graph_precision(model: onnx.ModelProto) -> str:
    """``int8`` for a quantized graph, ``fp16`` for one with FP16 weights, else ``fp32``: ONNX
    Runtime computes what the graph says, so this is what runs."""
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        if any(node.op_type in _QUANT_OPS for node in graph.node):
            return "int8"
        graphs.extend(a.g for node in graph.node for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


def default_intra_threads() -> int:
    """The cores this process may use (affinity mask, container quota), physical ones only."""
    from edgecv.sysinfo import machine_info

    cores = machine_info()["cores"]
    usable = cores["usable"] or 1
    if cores.get("cgroup_limit"):
        usable = min(usable, max(1, int(cores["cgroup_limit"])))
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or usable
    except ImportError:
        physical = usable
    return max(1, min(usable, physical))


def _tensor_info(node_arg: Any) -> TensorInfo:
    if node_arg.type not in _DTYPES:
        raise ArtifactError(f"tensor '{node_arg.name}' has type {node_arg.type}, which edgecv does not feed")
    # ONNX Runtime reports a dynamic dimension as None or its symbolic name.
    shape = tuple(d if isinstance(d, int) and d >= 0 else (d if isinstance(d, str) else None) for d in node_arg.shape)
    return TensorInfo(node_arg.name, shape, np.dtype(_DTYPES[node_arg.type]))


class OnnxRuntimeRuntime(Runtime):
    """``device``: ``cpu`` (default, or ``cuda`` where onnxruntime-gpu is installed), ``cuda``,
    ``tensorrt``; ``providers`` overrides the list. ``threads`` sets intra_op_num_threads (default:
    :func:`default_intra_threads`)."""

    backend = "onnxruntime"
    options = frozenset({"providers"})

    def _load_impl(self, source: Any, precision: str | None, providers: list[str] | None = None) -> None:
        path = require_file(source, (".onnx",))
        self.path, self.name = path, path.name
        providers = list(providers) if providers else self._default_providers()
        options = ort.SessionOptions()
        # Warnings about unused initializers and the like are noise in a benchmark's output.
        options.log_severity_level = 3
        # Always an explicit count: ORT's own default (0) takes every physical core of the machine,
        # ignoring taskset/cgroup limits, and pins its threads to cores, which on a shared or
        # virtualised CPU stalls a whole operator behind one busy core.
        if self.threads is None:
            self.threads = default_intra_threads()
        options.intra_op_num_threads = self.threads
        try:
            # Parsed once here, for the kernel settings and the precision label.
            graph = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx's parser on a corrupt file: ORT would refuse it too
            raise ArtifactError(f"ONNX Runtime cannot load {path}: {first_line(exc)}") from None
        # A CPU-kernel setting: other providers compute Q/DQ their own way.
        if providers[0] == "CPUExecutionProvider" and configure_onnxruntime(options, graph):
            self.notes.append(
                "signed-INT8 activations on a CPU without VNNI: ran ONNX Runtime's S8×S8 kernels "
                "(its default U8×S8 rewrite saturates and loses accuracy there)"
            )
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own pybind types (Fail, InvalidGraph, InvalidProtobuf, …)
            raise ArtifactError(f"ONNX Runtime cannot load {path}: {first_line(exc)}") from None
        used = self._session.get_providers()
        self._check_provider(providers[0], used[0])
        self.device = _PROVIDER_DEVICES.get(used[0], used[0])
        self.providers = used
        self.precision = graph_precision(graph)
        self._require_fixed_precision(precision)
        self.inputs = [_tensor_info(a) for a in self._session.get_inputs()]
        self.outputs = [_tensor_info(a) for a in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def _default_providers(self) -> list[str]:
        available = ort.get_available_providers()
        device = (self.device or "").lower()
        if not device:
            device = "cuda" if "CUDAExecutionProvider" in available else "cpu"
        if device not in _DEVICE_PROVIDERS:
            raise InvalidOptionError(
                f"ONNX Runtime device must be one of {', '.join(_DEVICE_PROVIDERS)}, got {self.device!r}"
            )
        wanted = _DEVICE_PROVIDERS[device]
        if wanted[0] not in available:
            raise BackendUnavailableError(
                f"onnxruntime on {device}",
                "onnxruntime-gpu",
                f"this onnxruntime build has only {', '.join(available)}",
            )
        return [p for p in wanted if p in available]

    def _check_provider(self, wanted: str, used: str) -> None:
        """ONNX Runtime falls back to the next provider when one fails to start (CUDA libraries
        missing): a benchmark asked to run on a device must not quietly time the CPU instead."""
        if self.device is not None and wanted != used:
            raise BackendUnavailableError(
                f"onnxruntime on {self.device}",
                None,
                f"{wanted} did not start (ONNX Runtime fell back to {used}); check the CUDA libraries it needs",
            )

    def _infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._output_names, self._session.run(self._output_names, feed)))

    def _close_impl(self) -> None:
        del self._session
