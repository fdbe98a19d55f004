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

from .spec import InputSpec, format_resolution, parse_resolution, resolution_hw

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


def _ensure_loaded() -> None:
    # Importing the families registers them; done lazily to keep `import edgecv` cheap.
    from . import mobilenetv1, mobilenetv2, mobilenetv3, shufflenetv1, shufflenetv2, ssd, yolov3_tiny, yolox  # noqa: F401


def resolve_name(name: str) -> str:
    """Canonical registry name for ``name``, or :class:`UnknownModelError` with suggestions."""
    _ensure_loaded()
    key = normalize_name(name)
    if key in _ALIASES:
        return _ALIASES[key]
    # A family name without its version ("shufflenet") names several models: never pick one silently.
    family = sorted(n for n in _REGISTRY if re.fullmatch(re.escape(key) + r"v\d+", normalize_name(n)))
    if len(family) > 1:
        raise InvalidOptionError(
            f"'{name}' is ambiguous: it could be {' or '.join(family)}; name one (see `edgecv models`)"
        )
    close = difflib.get_close_matches(key, list(_ALIASES), n=3, cutoff=0.5)
    suggestions = sorted({_ALIASES[c] for c in close}) or sorted(_REGISTRY)
    raise UnknownModelError(name, suggestions)


def get_entry(name: str) -> ModelEntry:
    return _REGISTRY[resolve_name(name)]


def apply_alias(name: str, width_mult: Any, variant: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``width_mult`` and ``variant`` with the options ``name`` stands for filled in
    (``shufflenet_v2_x0_5`` → α 0.5); a given value that contradicts the name is an error."""
    implied = dict(_ALIAS_OPTIONS.get(normalize_name(name), {}))
    implied_width = implied.pop("width_mult", None)
    if implied_width is not None:
        if width_mult is not None and width_mult != implied_width:
            raise InvalidOptionError(f"{name} is α={implied_width:g}, got width_mult {width_mult}")
        width_mult = implied_width
    for key, value in implied.items():
        if variant.get(key, value) != value:
            raise InvalidOptionError(f"{name} is {key}={value}, got {key}={variant[key]}")
    return width_mult, {**implied, **variant}


@dataclass(frozen=True)
class ModelOptions:
    """What a model name and the options given with it come to: every option set and checked."""

    entry: ModelEntry
    num_classes: int
    width_mult: float
    resolution: int | tuple[int, int]
    variant: dict[str, Any]


def resolve_options(
    name: str,
    *,
    num_classes: int | None = None,
    width_mult: float | None = None,
    resolution: Any = None,
    **variant: Any,
) -> ModelOptions:
    """The one place a name's implied options (``mobilenet_v3_small`` → variant small), the
    entry's defaults and the given options meet; ``create_model``, ``export`` and ``models`` all
    build from its answer. Raises :class:`InvalidOptionError` for a value the model does not take."""
    entry = get_entry(name)
    width_mult, variant = apply_alias(name, width_mult, variant)
    width_mult = entry.default_width_mult if width_mult is None else width_mult
    resolution = entry.default_resolution if resolution is None else resolution
    num_classes = entry.default_num_classes if num_classes is None else num_classes
    variant = {**entry.default_variant_options, **variant}
    validate_options(entry, num_classes, width_mult, resolution, variant)
    return ModelOptions(entry, num_classes, float(width_mult), check_resolution(resolution, entry), variant)


def list_models(filter: str | None = None) -> list[str]:
    """Registered model names, sorted; ``filter`` is a substring or glob on the normalised name."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if filter:
        import fnmatch

        pat = normalize_name(filter)
        names = [n for n in names if fnmatch.fnmatch(normalize_name(n), pat) or pat in normalize_name(n)]
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


def check_resolution(resolution: Any, entry: ModelEntry | None = None) -> int | tuple[int, int]:
    """``resolution`` (int, ``"HxW"`` or (h, w)) as an int (square) or (h, w), or
    :class:`InvalidOptionError` unless ``entry``'s strides take it (classifiers: multiples of 32)."""
    try:
        parsed = parse_resolution(resolution)
    except ValueError as exc:
        raise InvalidOptionError(str(exc)) from None
    h, w = resolution_hw(parsed)
    name = entry.name if entry is not None else "the network"
    if entry is not None and entry.fixed_resolution is not None:
        if (h, w) != tuple(entry.fixed_resolution):
            fh, fw = entry.fixed_resolution
            raise InvalidOptionError(
                f"{entry.name} takes only {format_resolution((fh, fw))} (its default boxes are laid out "
                f"for that size), got {format_resolution(parsed)}"
            )
        return parsed
    stride = entry.resolution_stride if entry is not None else 32
    low = entry.min_resolution if entry is not None else 32
    if h < low or w < low or h % stride or w % stride:
        raise InvalidOptionError(
            f"resolution must be a multiple of {stride} on each side, from {low} up ({name} "
            f"downsamples by {stride}), got {format_resolution(parsed)}"
        )
    return parsed


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
    check_resolution(resolution, entry)
    for key, value in variant.items():
        if key not in entry.variant_options:
            known = ", ".join(entry.variant_options) or "none"
            raise InvalidOptionError(f"{entry.name} has no option '{key}' (options: {known})")
        if value not in entry.variant_options[key]:
            allowed = ", ".join(str(v) for v in entry.variant_options[key])
            raise InvalidOptionError(f"{entry.name} takes {key} in {{{allowed}}}, got {value!r}")


def create_model(
    name: str,
    num_classes: int | None = None,
    width_mult: float | None = None,
    resolution: int | None = None,
    weights: str | Path | None = None,
    *,
    settle_batchnorm: bool = True,
    postprocess: Any = None,
    **variant: Any,
) -> nn.Module:
    """Build a zoo model in eval mode with an ``input_spec`` attribute.

    ``weights`` is a path to a state_dict or a checkpoint dict holding one; see
    :func:`edgecv.models.weights.load_weights`. ``resolution`` is a side or ``(height, width)``.
    ``postprocess`` (:class:`~edgecv.models.detection.DetectionOptions`) sets a detector's
    thresholds and NMS; a classifier refuses it.
    """
    options = resolve_options(name, num_classes=num_classes, width_mult=width_mult, resolution=resolution, **variant)
    entry, num_classes, width_mult = options.entry, options.num_classes, options.width_mult
    resolution, variant = options.resolution, options.variant
    if postprocess is not None and entry.task != "detection":
        raise InvalidOptionError(
            f"{entry.name} is a {entry.task} model: --conf-thres, --iou-thres, --max-det, --no-nms "
            "and --agnostic-nms apply to detectors only"
        )
    # Random weights are seeded: two exports of an untrained model time and quantize the same net.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = entry.builder(num_classes=num_classes, width_mult=float(width_mult), resolution=resolution, **variant)
    spec = getattr(model, "input_spec", None) or InputSpec()
    height, width = resolution_hw(resolution)
    model.input_spec = spec.with_size(height, width)
    if entry.task == "detection":
        from .detection import DetectionOptions

        model.configure_postprocess(postprocess if postprocess is not None else DetectionOptions())
    model.model_name = entry.name
    model.model_config = {
        "name": entry.name,
        "num_classes": num_classes,
        "width_mult": float(width_mult),
        "resolution": resolution if isinstance(resolution, int) else [height, width],
        **variant,
    }
    if entry.task == "detection":
        model.model_config["postprocess"] = model.detection_options.to_dict()
    if weights is not None:
        from .weights import load_weights

        load_weights(model, weights, num_classes=num_classes)
    model.eval()
    if weights is None and settle_batchnorm:
        from ._layers import settle_batchnorm as settle

        settle(model, (model.input_spec.channels, height, width))
    return model
