"""edgecv: PyTorch vision models to verified, calibrated edge engines, with latency reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgecv.version import __version__

__all__ = ["__version__", "create_model", "list_models", "export_model", "load"]

if TYPE_CHECKING:  # pragma: no cover
    from edgecv.export.pipeline import export as export_model
    from edgecv.models.registry import create_model, list_models
    from edgecv.runtime import load


def __getattr__(name: str) -> Any:
    # Lazy: `import edgecv` must not import torch, onnx or OpenVINO until they are used.
    if name in ("create_model", "list_models"):
        from edgecv.models import registry

        return getattr(registry, name)
    if name == "export_model":
        from edgecv.export.pipeline import export

        return export
    if name == "load":
        from edgecv.runtime import load

        return load
    raise AttributeError(f"module 'edgecv' has no attribute {name!r}")
