"""Model registry: ``@register_model`` on a builder, ``create_model(name, ...)``, ``list_models()``.

Names are forgiving: case, ``-``, ``_`` and ``.`` are ignored, so ``mobilenetv2``, ``mobilenet_v2``
and ``MobileNet-V2`` are one model.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from edgecv.errors import InvalidOptionError, UnknownModelError

from .spec import InputSpec

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
    aliases: tuple[str, ...] = (),
    paper: str = "",
) -> Callable[[Builder], Builder]:
    """Register ``builder(num_classes=, width_mult=, resolution=, **variant_options) -> nn.Module``."""

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
        )
        _REGISTRY[name] = entry
        for alias in (name, *aliases):
            _ALIASES[normalize_name(alias)] = name
        return builder

    return wrap


def _ensure_loaded() -> None:
    # Importing the families registers them; done lazily to keep `import edgecv` cheap.
    from . import mobilenetv1, mobilenetv2, shufflenetv1, shufflenetv2  # noqa: F401


def resolve_name(name: str) -> str:
    """Canonical registry name for ``name``, or :class:`UnknownModelError` with suggestions."""
    _ensure_loaded()
    key = normalize_name(name)
    if key in _ALIASES:
        return _ALIASES[key]
    close = difflib.get_close_matches(key, list(_ALIASES), n=3, cutoff=0.5)
    suggestions = sorted({_ALIASES[c] for c in close}) or sorted(_REGISTRY)
    raise UnknownModelError(name, suggestions)


def get_entry(name: str) -> ModelEntry:
    return _REGISTRY[resolve_name(name)]


def list_models(filter: str | None = None) -> list[str]:
    """Registered model names, sorted; ``filter`` is a substring or glob on the normalised name."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if filter:
        import fnmatch

        pat = normalize_name(filter)
        names = [
            n for n in names if fnmatch.fnmatch(normalize_name(n), pat) or pat in normalize_name(n)
        ]
    return names


def check_width_mult(width_mult: Any) -> float:
    """``width_mult`` as a float, or :class:`InvalidOptionError` unless it is a finite number > 0."""
    try:
        wm = float(width_mult)
    except (TypeError, ValueError):
        raise InvalidOptionError(f"width_mult must be a number, got {width_mult!r}") from None
    if isinstance(width_mult, bool) or not math.isfinite(wm) or wm <= 0:
        raise InvalidOptionError(f"width_mult must be a number > 0, got {width_mult!r}")
    return wm


def check_resolution(resolution: Any) -> int:
    """``resolution`` unchanged, or :class:`InvalidOptionError` unless it is a multiple of 32 ≥ 32."""
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < 32
        or resolution % 32
    ):
        raise InvalidOptionError(
            f"resolution must be a multiple of 32 from 32 up (the network downsamples by 32), "
            f"got {resolution!r}"
        )
    return resolution


def offers_width_mult(entry: ModelEntry, width_mult: float) -> bool:
    return entry.width_mults is None or any(math.isclose(width_mult, w) for w in entry.width_mults)


def validate_options(
    entry: ModelEntry,
    num_classes: int,
    width_mult: float,
    resolution: int,
    variant: dict[str, Any],
) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidOptionError(f"num_classes must be a positive integer, got {num_classes!r}")
    wm = check_width_mult(width_mult)
    if not offers_width_mult(entry, wm):
        allowed = ", ".join(f"{w:g}" for w in entry.width_mults or ())
        raise InvalidOptionError(f"{entry.name} takes width_mult in {{{allowed}}}, got {wm:g}")
    check_resolution(resolution)
    for key, value in variant.items():
        if key not in entry.variant_options:
            known = ", ".join(entry.variant_options) or "none"
            raise InvalidOptionError(f"{entry.name} has no option '{key}' (options: {known})")
        if value not in entry.variant_options[key]:
            allowed = ", ".join(str(v) for v in entry.variant_options[key])
            raise InvalidOptionError(f"{entry.name} takes {key} in {{{allowed}}}, got {value!r}")


def create_model(
    name: str,
    num_classes: int = 1000,
    width_mult: float | None = None,
    resolution: int | None = None,
    weights: str | Path | None = None,
    *,
    settle_batchnorm: bool = True,
    **variant: Any,
) -> nn.Module:
    """Build a zoo model in eval mode with an ``input_spec`` attribute.

    ``weights`` is a path to a state_dict or a checkpoint dict holding one; see
    :func:`edgecv.models.weights.load_weights`.
    """
    entry = get_entry(name)
    width_mult = entry.default_width_mult if width_mult is None else width_mult
    resolution = entry.default_resolution if resolution is None else resolution
    variant = {**entry.default_variant_options, **variant}
    validate_options(entry, num_classes, width_mult, resolution, variant)
    # Random weights are seeded: two exports of an untrained model time and quantize the same net.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = entry.builder(
            num_classes=num_classes, width_mult=float(width_mult), resolution=resolution, **variant
        )
    spec = getattr(model, "input_spec", None) or InputSpec()
    model.input_spec = _with_resolution(spec, resolution)
    model.model_name = entry.name
    model.model_config = {
        "name": entry.name,
        "num_classes": num_classes,
        "width_mult": float(width_mult),
        "resolution": resolution,
        **variant,
    }
    if weights is not None:
        from .weights import load_weights

        load_weights(model, weights, num_classes=num_classes)
    model.eval()
    if weights is None and settle_batchnorm:
        from ._layers import settle_batchnorm as settle

        settle(model, (model.input_spec.channels, resolution, resolution))
    return model


def _with_resolution(spec: InputSpec, resolution: int) -> InputSpec:
    from dataclasses import replace

    return replace(spec, height=resolution, width=resolution)
