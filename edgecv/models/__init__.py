"""Model zoo: definitions, registry, input specs, weight loading, complexity counting.

``InputSpec`` imports without PyTorch (a Jetson that benchmarks a TensorRT engine has none); the
registry, which builds models, is imported on first use of its names.
"""

from typing import Any

from .spec import InputSpec, OutputSpec

__all__ = ["InputSpec", "OutputSpec", "create_model", "get_entry", "list_models", "register_model", "resolve_name"]

_REGISTRY_NAMES = {"create_model", "get_entry", "list_models", "register_model", "resolve_name"}


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'edgecv.models' has no attribute {name!r}")
