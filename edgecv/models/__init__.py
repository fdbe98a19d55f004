"""Model zoo: definitions, registry, input specs, weight loading, complexity counting."""

from .registry import create_model, get_entry, list_models, register_model, resolve_name
from .spec import InputSpec

__all__ = ["InputSpec", "create_model", "get_entry", "list_models", "register_model", "resolve_name"]
