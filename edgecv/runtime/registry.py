"""Which backend runs what, imported only when asked for.

A backend is one module under ``edgecv/runtime/`` and one :class:`BackendEntry` line below. Its
module imports its package at the top; a missing package becomes :class:`BackendUnavailableError`
naming what to ``pip install``, so a machine without TensorRT still imports edgecv and runs the rest.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecv.errors import ArtifactError, BackendUnavailableError, InvalidOptionError, UnknownModelError

if TYPE_CHECKING:  # pragma: no cover
    from .base import Runtime


@dataclass(frozen=True)
class BackendEntry:
    name: str
    module: str  # under edgecv.runtime
    class_name: str
    # import name → what to pip install when it is missing
    packages: dict[str, str] = field(default_factory=dict)
    suffixes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    # Whether ``threads`` (CPU intra-op threads) means anything to the backend.
    cpu_threads: bool = True
    # Whether the float compute precision is chosen at load time (OpenVINO's
    # INFERENCE_PRECISION_HINT); elsewhere the artifact fixes it and ``precision=`` must match.
    precision_hint: bool = False
    # The ``device`` names the backend takes (a regular expression over the canonical spelling),
    # how a message lists them, and the case the backend spells them in.
    device_pattern: str = "cpu"
    device_names: str = "cpu"
    device_upper: bool = False


BACKENDS: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry(
            "onnxruntime",
            "onnxruntime",
            "OnnxRuntimeRuntime",
            {"onnxruntime": "onnxruntime"},
            (".onnx",),
            ("ort",),
            device_pattern="cpu|cuda|tensorrt",
            device_names="cpu, cuda, tensorrt",
        ),
        BackendEntry(
            "openvino",
            "openvino",
            "OpenVinoRuntime",
            {"openvino": "openvino"},
            (".xml",),
            ("ov",),
            precision_hint=True,
            device_pattern=r"CPU|GPU(\.\d+)?|NPU|AUTO|(AUTO|MULTI|HETERO):[A-Z0-9.,]+",
            device_names="CPU, GPU[.N], NPU, AUTO",
            device_upper=True,
        ),
        BackendEntry(
            "tensorrt",
            "tensorrt",
            "TensorRTRuntime",
            {"tensorrt": "edgecv[tensorrt]", "cuda": "cuda-python"},
            (".engine", ".plan"),
            ("trt",),
            cpu_threads=False,
            device_pattern=r"cuda(:\d+)?",
            device_names="cuda[:N]",
        ),
        BackendEntry(
            "torch",
            "torch",
            "TorchRuntime",
            {"torch": "torch"},
            (".pt", ".pth"),
            ("pytorch",),
            device_pattern=r"cpu|cuda(:\d+)?",
            device_names="cpu, cuda[:N]",
        ),
    )
}


def backend_name(name: str) -> str:
    """Canonical backend name for ``name`` or an alias (``ort``, ``ov``, ``trt``, ``pytorch``)."""
    key = name.strip().lower()
    for entry in BACKENDS.values():
        if key == entry.name or key in entry.aliases:
            return entry.name
    raise InvalidOptionError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


def canonical_device(backend: str, device: str) -> str:
    """``device`` spelled the way ``backend`` takes it (``gpu`` → ``GPU`` for OpenVINO), or
    :class:`InvalidOptionError` naming the devices it takes. Only the name is checked here; whether
    the machine has that device is known when the backend loads."""
    entry = BACKENDS[backend_name(backend)]
    text = str(device).strip()
    text = text.upper() if entry.device_upper else text.lower()
    if not re.fullmatch(entry.device_pattern, text):
        raise InvalidOptionError(f"{entry.name} cannot run on device {device!r}; it takes {entry.device_names}")
    return text


def is_installed(name: str) -> bool:
    """Whether the backend's packages can be imported (without importing them)."""
    entry = BACKENDS[backend_name(name)]
    return all(importlib.util.find_spec(module) is not None for module in entry.packages)


def backend_class(name: str) -> "type[Runtime]":
    entry = BACKENDS[backend_name(name)]
    try:
        module = importlib.import_module(f"edgecv.runtime.{entry.module}")
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in entry.packages:
            raise
        raise BackendUnavailableError(
            entry.name, entry.packages[root], f"Python package '{root}' is not installed"
        ) from None
    except ImportError as exc:  # installed but broken (missing shared library, ABI mismatch)
        raise BackendUnavailableError(entry.name, None, f"its package failed to import: {exc}") from None
    return getattr(module, entry.class_name)


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _suffix_table() -> str:
    return ", ".join(f"{s} → {e.name}" for e in BACKENDS.values() for s in e.suffixes)


def resolve_backend(source: Any, backend: str | None = None) -> str:
    """The backend for ``source``: ``backend`` if given, else from the file suffix; an ``nn.Module``
    or a zoo model name runs in PyTorch."""
    if backend is not None:
        name = backend_name(backend)
        if _is_torch_module(source) and name != "torch":
            raise InvalidOptionError(f"an nn.Module runs in the torch backend, not {name}")
        return name
    if _is_torch_module(source):
        return "torch"
    if not isinstance(source, (str, Path)):
        raise ArtifactError(f"cannot run a {type(source).__name__}: pass a file path, a zoo model name or an nn.Module")
    path = Path(source).expanduser()
    if path.is_dir():
        from edgecv.runfolder import MANIFEST_NAME

        if (path / MANIFEST_NAME).is_file():
            raise ArtifactError(
                f"{path} is a run folder with several artifacts: pass one of its files, or backend='torch' "
                "for the PyTorch model it was exported from"
            )
        raise ArtifactError(f"{path} is a folder, not an artifact")
    suffix = path.suffix.lower()
    for entry in BACKENDS.values():
        if suffix in entry.suffixes:
            if not path.exists():
                raise ArtifactError(f"{path} does not exist")
            return entry.name
    if path.exists():
        raise ArtifactError(f"{path}: unknown artifact kind '{suffix or path.name}' (known: {_suffix_table()})")
    if isinstance(source, str) and not suffix and "/" not in source:
        from edgecv.models.registry import resolve_name

        try:
            resolve_name(source)
        except UnknownModelError as exc:
            hint = f"; did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
            raise ArtifactError(f"'{source}' is neither an existing file nor a zoo model name{hint}") from None
        return "torch"
    raise ArtifactError(f"{path} does not exist")
