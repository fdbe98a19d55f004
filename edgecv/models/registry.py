"""Model registry: ``@register_model`` on a builder, ``create_model(name, ...)``, ``list_models()``.

Names are forgiving: case, ``-``, ``_`` and ``.`` are ignored, so ``mobilenetv2``, ``mobilenet_v2``
and ``MobileNet-V2`` are one model.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecv.errors import InvalidOptionError, UnknownModelError

from .catalog import _ALIAS_OPTIONS, _ALIASES, _REGISTRY, ModelEntry, normalize_name, register_model  # noqa: F401
from .spec import InputSpec, format_resolution, parse_resolution, resolution_hw


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
