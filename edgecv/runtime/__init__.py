"""One API over every backend: ``load(path)`` → a :class:`Runtime` with ``inputs``, ``outputs`` and
``infer()``; and the latency benchmark (:mod:`edgecv.runtime.benchmark`).

    with edgecv.runtime.load("runs/mobilenetv2-w1.0-r224/openvino/model.xml", precision="f32") as rt:
        logits = rt(image_batch)["logits"]

Backends are imported on first use; see :mod:`edgecv.runtime.registry`.
"""

from __future__ import annotations

from typing import Any

from .base import Runtime, TensorInfo, normalize_precision
from .registry import BACKENDS, backend_class, backend_name, is_installed, resolve_backend

__all__ = [
    "BACKENDS",
    "Runtime",
    "TensorInfo",
    "available_backends",
    "backend_class",
    "backend_name",
    "load",
    "normalize_precision",
    "resolve_backend",
]


def load(
    path_or_model: Any,
    backend: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    precision: str | None = None,
    **options: Any,
) -> Runtime:
    """Load an artifact (or a PyTorch model) into the backend that runs it.

    ``backend`` defaults from the file: ``.onnx`` → onnxruntime, ``.xml`` → openvino,
    ``.engine``/``.plan`` → tensorrt, ``.pt``/``.pth``, an ``nn.Module`` or a zoo model name → torch.
    ``device``: ``cpu``/``cuda``/``tensorrt`` for ONNX Runtime; ``CPU``/``GPU``/``NPU``/``AUTO`` for
    OpenVINO; ``cuda:N`` for TensorRT and PyTorch. ``threads``: intra-op threads (the backend's
    default when ``None``). ``precision`` (``fp32``/``f32``, ``bf16``, ``fp16``): OpenVINO's
    inference precision hint; other backends run the precision the artifact was built in and
    reject a different one. Backend options: ONNX Runtime ``providers``; OpenVINO ``cache_dir``,
    ``performance_hint``, ``config``; PyTorch ``input_spec`` and zoo options (``width_mult``, …).
    """
    return backend_class(resolve_backend(path_or_model, backend))(
        path_or_model, device=device, threads=threads, precision=precision, **options
    )


def available_backends() -> dict[str, bool]:
    """Backend name → whether its Python packages are installed (devices are checked at load)."""
    return {name: is_installed(name) for name in BACKENDS}
