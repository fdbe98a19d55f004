"""The table of model families: what each is called, its aliases and options, and its builder.

The family modules fill it with ``@register_model`` when they are imported; :mod:`edgecv.models.registry`
imports them on first use and builds models from it. Kept apart from the registry so a family module
imports only this table, never the module that imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about a model family before building it."""

    name: str
    builder: Builder
    family: str
    description: str
    task: str = "classification"
    default_resolution: int = 224
    # None: any float > 0 is accepted; otherwise the discrete set the architecture defines.
    width_mults: tuple[float, ...] | None = None
    default_width_mult: float = 1.0
    # Extra keyword options (name -> allowed values) such as ShuffleNet V1's ``groups``.
    variant_options: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    default_variant_options: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    paper: str = ""
    # Input sizes the architecture takes: sides that are multiples of ``resolution_stride`` from
    # ``min_resolution`` up, or exactly ``fixed_resolution`` (SSD300's default boxes fit 300×300).
    resolution_stride: int = 32
    min_resolution: int = 32
    fixed_resolution: tuple[int, int] | None = None
    # Classes of the head when the user names none (background included where the model has one).
    default_num_classes: int = 1000

    def variants_text(self) -> str:
        parts = []
        if self.width_mults is None:
            parts.append("α: any > 0")
        else:
            parts.append("α: " + "/".join(f"{w:g}" for w in self.width_mults))
        for key, values in self.variant_options.items():
            parts.append(f"{key}: " + "/".join(str(v) for v in values))
        return "; ".join(parts)


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}
# Options an alias stands for: torchvision's ``shufflenet_v2_x0_5`` is shufflenetv2 at α 0.5.
_ALIAS_OPTIONS: dict[str, dict[str, Any]] = {}
Alias = "str | tuple[str, dict[str, Any]]"


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.\s]", "", name.strip().lower())


def register_model(
    name: str,
    *,
    family: str,
    description: str,
    task: str = "classification",
    default_resolution: int = 224,
    width_mults: tuple[float, ...] | None = None,
    default_width_mult: float = 1.0,
    variant_options: dict[str, tuple[Any, ...]] | None = None,
    default_variant_options: dict[str, Any] | None = None,
    aliases: tuple[Alias, ...] = (),
    paper: str = "",
    resolution_stride: int = 32,
    min_resolution: int = 32,
    fixed_resolution: tuple[int, int] | None = None,
    default_num_classes: int = 1000,
) -> Callable[[Builder], Builder]:
    """Register ``builder(num_classes=, width_mult=, resolution=, **variant_options) -> nn.Module``.

    An alias is a name, or ``(name, {"width_mult": 0.5, ...})`` for a name that also fixes options."""
    alias_options = {a[0]: dict(a[1]) for a in aliases if not isinstance(a, str)}
    aliases = tuple(a if isinstance(a, str) else a[0] for a in aliases)

    def wrap(builder: Builder) -> Builder:
        entry = ModelEntry(
            name=name,
            builder=builder,
            family=family,
            description=description,
            task=task,
            default_resolution=default_resolution,
            width_mults=width_mults,
            default_width_mult=default_width_mult,
            variant_options=dict(variant_options or {}),
            default_variant_options=dict(default_variant_options or {}),
            aliases=aliases,
            paper=paper,
            resolution_stride=resolution_stride,
            min_resolution=min_resolution,
            fixed_resolution=fixed_resolution,
            default_num_classes=default_num_classes,
        )
        _REGISTRY[name] = entry
        for alias in (name, *aliases):
            _ALIASES[normalize_name(alias)] = name
            if alias in alias_options:
                _ALIAS_OPTIONS[normalize_name(alias)] = alias_options[alias]
        return builder

    return wrap
